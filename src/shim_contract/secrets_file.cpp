#include "shim_contract/secrets_file.h"

#include <cerrno>
#include <nlohmann/json.hpp>

#include "shim_contract/sandbox_layout.h"
#include "util/read_file.h"
#include "util/write_file_atomic.h"

namespace moat::shim {
namespace {

using Json = nlohmann::json;
constexpr std::size_t kMaxSecretsFile = 4 << 20;

}  // namespace

Status write_secrets(const std::string& dir, const SecretsFile& file) {
  Json list = Json::array();
  for (const auto& s : file.secrets)
    list.push_back({{"name", s.name},
                    {"placeholder", s.placeholder},
                    {"value", s.value},
                    {"hosts", s.hosts},
                    {"query", s.in_query},
                    {"body", s.in_body},
                    {"http", s.plain_http}});
  Json j = {{"on_violation", file.stop_on_violation ? "block-and-stop" : "block"}, {"secrets", std::move(list)}};
  return write_file_atomic(secrets_path(dir), j.dump(), 0600);
}

Result<SecretsFile> read_secrets(const std::string& dir) {
  std::string path = secrets_path(dir);
  auto read = read_file_bounded(path, kMaxSecretsFile);
  if (!read) {
    if (read.error().code == ENOENT) return SecretsFile{};
    return read.error();
  }
  const std::string& text = *read;
  Json j = Json::parse(text, nullptr, false);
  auto bad = [&] { return make_error(path + " is not a secrets file", EINVAL); };
  if (!j.is_object() || !j.contains("secrets") || !j["secrets"].is_array()) return bad();
  SecretsFile out;
  out.stop_on_violation = j.value("on_violation", std::string("block")) == "block-and-stop";
  for (const auto& s : j["secrets"]) {
    if (!s.is_object() || !s.contains("name") || !s["name"].is_string() || !s.contains("placeholder") ||
        !s["placeholder"].is_string() || !s.contains("value") || !s["value"].is_string() || !s.contains("hosts") ||
        !s["hosts"].is_array())
      return bad();
    StoredSecret one{s["name"].get<std::string>(), s["placeholder"].get<std::string>(), s["value"].get<std::string>(),
                     {}};
    one.in_query = s.value("query", false) == true;
    one.in_body = s.value("body", false) == true;
    one.plain_http = s.value("http", false) == true;
    for (const auto& h : s["hosts"]) {
      if (!h.is_string()) return bad();
      one.hosts.push_back(h.get<std::string>());
    }
    out.secrets.push_back(std::move(one));
  }
  return out;
}

}  // namespace moat::shim
