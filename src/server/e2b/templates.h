// E2B template ids ("base", "my-agent") to what moat boots for them: an
// image reference and the settings E2B keeps with a template. Read from a
// JSON file (`moat serve --e2b-templates FILE`, docs/e2b.md):
//   {"templates": {"base": {"image": "registry.local/e2b-base:1",
//                           "user": "user", "cpus": 2, "memory_mib": 1024,
//                           "insecure_registry": false}}}
// "user" is the account commands and file calls use when the SDK names
// none (E2B's templates have a "user"; an image without one says "root").
#pragma once

#include <map>
#include <string>

#include "moat/result.h"

namespace moat::server::e2b {

struct Template {
  std::string image;
  std::string user = "root";
  int cpus = 1;
  int memory_mib = 512;
  bool insecure_registry = false;
};

class TemplateMap {
 public:
  // The map in `path`; an empty path gives an empty map (every create
  // then fails with a message that says how to add one).
  static Result<TemplateMap> load(const std::string& path);
  static Result<TemplateMap> parse(std::string_view json_text, const std::string& where);

  // ENOENT naming the map when `id` is not in it.
  Result<Template> find(const std::string& id) const;

 private:
  std::string source_;  // the file, for messages
  std::map<std::string, Template> templates_;
};

}  // namespace moat::server::e2b
