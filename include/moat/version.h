// The version of libmoat a program runs with (which may differ from the
// headers it was compiled against when libmoat is a shared library).
#pragma once

namespace moat {

// "MAJOR.MINOR.PATCH", from the project's version.
const char* version();

}  // namespace moat
