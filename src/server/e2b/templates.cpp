#include "server/e2b/templates.h"

#include <cerrno>
#include <fstream>
#include <sstream>

#include "util/json_object.h"

namespace moat::server::e2b {
namespace {

constexpr std::size_t kMaxMapBytes = 1 << 20;

Result<Template> template_of(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return make_error(where + ": expected an object", EINVAL);
  Template t;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& key = it.key();
    const auto& v = it.value();
    if (key == "image" && v.is_string()) {
      t.image = v.get<std::string>();
    } else if (key == "user" && v.is_string()) {
      t.user = v.get<std::string>();
    } else if (key == "cpus" && v.is_number_integer() && v.get<long long>() >= 1 && v.get<long long>() <= 64) {
      t.cpus = v.get<int>();
    } else if (key == "memory_mib" && v.is_number_integer() && v.get<long long>() >= 64 &&
               v.get<long long>() <= (1 << 20)) {
      t.memory_mib = v.get<int>();
    } else if (key == "insecure_registry" && v.is_boolean()) {
      t.insecure_registry = v.get<bool>();
    } else {
      return make_error(where + "." + key + ": unknown field or bad value", EINVAL);
    }
  }
  if (t.image.empty()) return make_error(where + ".image: missing", EINVAL);
  if (t.user.empty()) return make_error(where + ".user: empty", EINVAL);
  return t;
}

}  // namespace

Result<TemplateMap> TemplateMap::parse(std::string_view json_text, const std::string& where) {
  MOAT_ASSIGN_OR_RETURN(nlohmann::json j, parse_json_object(json_text, where, kMaxMapBytes));
  TemplateMap map;
  map.source_ = where;
  if (!j.contains("templates") || !j["templates"].is_object())
    return make_error(where + ": expected {\"templates\": {ID: {\"image\": ...}}}", EINVAL);
  for (auto it = j["templates"].begin(); it != j["templates"].end(); ++it) {
    MOAT_ASSIGN_OR_RETURN(Template t, template_of(it.value(), where + ": templates." + it.key()));
    map.templates_[it.key()] = std::move(t);
  }
  return map;
}

Result<TemplateMap> TemplateMap::load(const std::string& path) {
  if (path.empty()) return TemplateMap{};
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("open the E2B template map " + path, ENOENT);
  std::ostringstream text;
  text << in.rdbuf();
  return parse(text.str(), path);
}

Result<Template> TemplateMap::find(const std::string& id) const {
  auto it = templates_.find(id);
  if (it != templates_.end()) return it->second;
  if (source_.empty())
    return make_error("template '" + id + "' is unknown: start moat serve with --e2b-templates FILE mapping it to an image",
                      ENOENT);
  return make_error("template '" + id + "' is not in the template map " + source_, ENOENT);
}

}  // namespace moat::server::e2b
