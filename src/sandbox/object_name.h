// Names users give sandboxes and volumes: Docker's rule (a letter or digit,
// then letters, digits, '_', '.', '-'; at most 64), so a name is safe in a
// path and a shell line.
#pragma once

#include <string>

namespace moat::sandbox {

bool valid_object_name(const std::string& name);

}  // namespace moat::sandbox
