// The bodies of the server's POST /v1/sandboxes and POST .../exec, as any
// client may send them: each body is read both as sandbox options and as
// exec options. Each reader either refuses it as bad input (the kind the
// server answers with 400, the message naming the field) or returns options
// that hold what the fields said and that the command-line forms accept.
//
// Two bodies per input: the bytes themselves (the JSON syntax, nesting,
// types), and a well-formed body whose field values are taken from the
// bytes (the paths, names and separators inside the values, which mutations
// of raw JSON seldom reach without breaking the text around them).
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "moat/json.h"
#include "store/guest_path.h"

namespace {

using Json = nlohmann::json;

void require(bool ok) {
  if (!ok) __builtin_trap();
}

bool starts_with(const std::string& s, std::string_view prefix) { return s.rfind(prefix, 0) == 0; }

// A refusal is of the kind the server answers with 400 and names where the
// bad field is.
void require_refusal(const moat::Error& e, std::string_view form) {
  require(e.kind() == moat::ErrorKind::kInvalidArgument);
  require(starts_with(e.message, form) || starts_with(e.message, "network"));
}

// A mount's guest path holds no ".." (moat/sandbox.h).
bool has_dotdot(const std::string& path) {
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (path.compare(start, end - start, "..") == 0) return true;
    start = end + 1;
  }
  return false;
}

// What an accepted sandbox body's fields became: the paths checked, and an
// object-form field carried as given (not re-read as part of another).
void check_sandbox(const moat::SandboxOptions& s, const Json& j) {
  for (std::size_t i = 0; i < s.patches.size(); ++i) {
    const moat::RootPatch& p = s.patches[i];
    // moat/sandbox.h: absolute, not climbing out of "/"; only a copy may
    // target the root itself, and a write names a file.
    auto names = moat::store::split_guest_path(p.guest_path);
    require(names.ok());
    require(p.kind == moat::RootPatch::Kind::kCopy || !names->empty());
    if (p.kind == moat::RootPatch::Kind::kWrite) require(p.guest_path.back() != '/');
    const Json& given = j["patches"][i];
    require(p.text == given.value("text", std::string()));
    require(p.host_path == given.value("host_path", std::string()));
  }
  for (std::size_t i = 0; i < s.volumes.size(); ++i) {
    const moat::VolumeMount& v = s.volumes[i];
    require(!v.guest_path.empty() && v.guest_path[0] == '/' && !has_dotdot(v.guest_path));
    const Json& given = j["volumes"][i];
    if (!given.is_object()) continue;
    require(v.source == given["source"].get<std::string>());
    require(v.guest_path == given["guest_path"].get<std::string>());
    require(v.read_only == given.value("read_only", false));
    require(v.size_bytes == given.value("size_bytes", std::uint64_t{0}));
  }
  for (std::size_t i = 0; i < s.tmpfs.size(); ++i) {
    const moat::TmpfsMount& t = s.tmpfs[i];
    require(!t.guest_path.empty() && t.guest_path[0] == '/' && !has_dotdot(t.guest_path));
    const Json& given = j["tmpfs"][i];
    if (!given.is_object()) continue;
    require(t.guest_path == given["guest_path"].get<std::string>());
    require(t.size_bytes == given.value("size_bytes", std::uint64_t{0}));
  }
  for (std::size_t i = 0; i < s.secrets.size(); ++i) {
    const Json& given = j["secrets"][i];
    require(s.secrets[i].name == given["name"].get<std::string>());
    require(s.secrets[i].hosts == given["hosts"].get<std::vector<std::string>>());
  }
}

void check_body(const std::string& text) {
  auto sandbox = moat::sandbox_options_from_json_text(text);
  if (sandbox.ok()) {
    check_sandbox(*sandbox, Json::parse(text));
  } else {
    require_refusal(sandbox.error(), "sandbox");
  }

  auto exec = moat::exec_options_from_json_text(text);
  if (exec.ok()) {
    require(!exec->argv.empty());
    require(moat::check_exec_options(*exec).ok());
  } else {
    require_refusal(exec.error(), "exec");
  }
}

// One field of the sandbox or exec form, its values from the bytes.
Json structured_body(FuzzedDataProvider& in) {
  auto text = [&] { return in.ConsumeRandomLengthString(256); };
  switch (in.ConsumeIntegralInRange(0, 6)) {
    case 0: {
      static constexpr const char* kKinds[] = {"copy", "mkdir", "write", "remove"};
      Json p{{"kind", kKinds[in.ConsumeIntegralInRange(0, 3)]}, {"path", text()}};
      if (in.ConsumeBool()) p["text"] = text();
      if (in.ConsumeBool()) p["host_path"] = text();
      return Json{{"patches", Json::array({p})}};
    }
    case 1: {
      Json v{{"source", text()}, {"guest_path", text()}};
      if (in.ConsumeBool()) v["read_only"] = in.ConsumeBool();
      if (in.ConsumeBool()) v["size_bytes"] = in.ConsumeIntegral<std::uint64_t>();
      return Json{{"volumes", Json::array({v})}};
    }
    case 2: {
      Json t{{"guest_path", text()}};
      if (in.ConsumeBool()) t["size_bytes"] = in.ConsumeIntegral<std::uint64_t>();
      return Json{{"tmpfs", Json::array({t})}};
    }
    case 3:
      return Json{{"volumes", Json::array({text()})}, {"tmpfs", Json::array({text()})}};
    case 4: {
      Json hosts = Json::array();
      for (int n = in.ConsumeIntegralInRange(0, 3); n > 0; --n) hosts.push_back(text());
      return Json{{"secrets", Json::array({Json{{"name", text()}, {"value", text()}, {"hosts", hosts}}})},
                  {"on_secret_violation", text()}};
    }
    case 5:
      return Json{{"accel", text()}, {"network", Json{{"mode", text()}}}};
    default:
      return Json{{"argv", Json::array({text(), text()})}, {"env", Json::array({text()})}, {"cwd", text()},
                  {"user", text()}};
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  check_body(std::string(reinterpret_cast<const char*>(data), size));
  FuzzedDataProvider in(data, size);
  // Bytes that are not UTF-8 become U+FFFD: JSON text cannot carry them.
  check_body(structured_body(in).dump(-1, ' ', false, Json::error_handler_t::replace));
  return 0;
}
