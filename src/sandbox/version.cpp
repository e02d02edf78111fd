#include "moat/version.h"

namespace moat {

const char* version() { return MOAT_VERSION; }

}  // namespace moat
