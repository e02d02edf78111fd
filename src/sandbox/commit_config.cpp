#include "sandbox/commit_config.h"

#include <cerrno>

namespace moat::sandbox {
namespace {

using Json = nlohmann::json;

constexpr std::size_t kMaxInstruction = 64 * 1024;

std::string trim(const std::string& s) {
  std::size_t a = s.find_first_not_of(" \t");
  if (a == std::string::npos) return "";
  std::size_t b = s.find_last_not_of(" \t");
  return s.substr(a, b - a + 1);
}

// CMD/ENTRYPOINT: a JSON array of strings (exec form), else the shell form.
Result<Json> command_form(const std::string& arg, const std::string& what) {
  if (!arg.empty() && arg[0] == '[') {
    auto j = Json::parse(arg, nullptr, false);
    if (!j.is_array()) return make_error(what + ": not a JSON array: " + arg, EINVAL);
    for (const auto& v : j)
      if (!v.is_string()) return make_error(what + ": the array must hold strings", EINVAL);
    return j;
  }
  if (arg.empty()) return make_error(what + " needs a command", EINVAL);
  return Json::array({"/bin/sh", "-c", arg});
}

// KEY=VALUE pairs separated by blanks (no quoting), or the legacy "KEY VALUE".
Result<std::vector<std::pair<std::string, std::string>>> pairs(const std::string& arg, const std::string& what) {
  std::vector<std::pair<std::string, std::string>> out;
  if (arg.find('=') == std::string::npos) {
    std::size_t sp = arg.find_first_of(" \t");
    if (sp == std::string::npos) return make_error(what + " needs KEY=VALUE", EINVAL);
    out.emplace_back(arg.substr(0, sp), trim(arg.substr(sp)));
    return out;
  }
  std::size_t i = 0;
  while (i < arg.size()) {
    std::size_t end = arg.find_first_of(" \t", i);
    if (end == std::string::npos) end = arg.size();
    std::string word = arg.substr(i, end - i);
    i = arg.find_first_not_of(" \t", end);
    if (i == std::string::npos) i = arg.size();
    std::size_t eq = word.find('=');
    if (eq == std::string::npos || eq == 0) return make_error(what + ": expected KEY=VALUE, not " + word, EINVAL);
    out.emplace_back(word.substr(0, eq), word.substr(eq + 1));
  }
  return out;
}

void set_env(Json& config, const std::string& key, const std::string& value) {
  Json& env = config["Env"];
  if (!env.is_array()) env = Json::array();
  std::string entry = key + "=" + value;
  for (auto& e : env) {
    if (e.is_string() && e.get<std::string>().rfind(key + "=", 0) == 0) {
      e = entry;
      return;
    }
  }
  env.push_back(entry);
}

}  // namespace

Status apply_change(const std::string& instruction, Json& config) {
  if (instruction.size() > kMaxInstruction) return make_error("a --change is too long", EINVAL);
  std::string text = trim(instruction);
  std::size_t sp = text.find_first_of(" \t");
  std::string word = text.substr(0, sp);
  std::string arg = sp == std::string::npos ? "" : trim(text.substr(sp));
  for (auto& c : word) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (word == "CMD") {
    MOAT_ASSIGN_OR_RETURN(config["Cmd"], command_form(arg, "CMD"));
  } else if (word == "ENTRYPOINT") {
    MOAT_ASSIGN_OR_RETURN(config["Entrypoint"], command_form(arg, "ENTRYPOINT"));
  } else if (word == "ENV") {
    MOAT_ASSIGN_OR_RETURN(auto kv, pairs(arg, "ENV"));
    for (const auto& [k, v] : kv) set_env(config, k, v);
  } else if (word == "LABEL") {
    MOAT_ASSIGN_OR_RETURN(auto kv, pairs(arg, "LABEL"));
    if (!config["Labels"].is_object()) config["Labels"] = Json::object();
    for (const auto& [k, v] : kv) config["Labels"][k] = v;
  } else if (word == "WORKDIR") {
    if (arg.empty() || arg[0] != '/') return make_error("WORKDIR needs an absolute path", EINVAL);
    config["WorkingDir"] = arg;
  } else if (word == "USER") {
    if (arg.empty()) return make_error("USER needs a user", EINVAL);
    config["User"] = arg;
  } else {
    return make_error("--change \"" + word + "\": expected CMD, ENTRYPOINT, ENV, LABEL, WORKDIR or USER", EINVAL);
  }
  return ok_status();
}

Result<Json> commit_config(const Json& base, const std::string& diff_id, const CommitOptions& o,
                           const std::string& created, const std::string& created_by) {
  if (!base.is_object()) return make_error("the base image's config is not an object", EIO);
  Json j = base;
  if (!j["config"].is_object()) j["config"] = Json::object();
  for (const auto& c : o.changes) MOAT_TRY(apply_change(c, j["config"]));
  for (const auto& e : o.env) {
    std::size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0) return make_error("--env " + e + ": expected KEY=VALUE", EINVAL);
    set_env(j["config"], e.substr(0, eq), e.substr(eq + 1));
  }
  if (!o.workdir.empty()) {
    if (o.workdir[0] != '/') return make_error("--workdir needs an absolute path", EINVAL);
    j["config"]["WorkingDir"] = o.workdir;
  }
  if (!j["rootfs"].is_object() || !j["rootfs"]["diff_ids"].is_array())
    return make_error("the base image's config has no rootfs.diff_ids", EIO);
  j["rootfs"]["diff_ids"].push_back(diff_id);
  if (!j["history"].is_array()) j["history"] = Json::array();
  Json h = {{"created", created}, {"created_by", created_by}};
  if (!o.message.empty()) h["comment"] = o.message;
  j["history"].push_back(std::move(h));
  j["created"] = created;
  return j;
}

}  // namespace moat::sandbox
