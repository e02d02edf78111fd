#include "util/write_file_atomic.h"

#include "util/temp_output.h"
#include "util/write_all.h"

namespace moat {

Status write_file_atomic(const std::string& path, std::string_view bytes, mode_t mode) {
  // TempOutput is the one temporary-name-then-rename in util; it unlinks the
  // temporary file on every early return below.
  MOAT_ASSIGN_OR_RETURN(auto out, image::TempOutput::create(path, mode));
  MOAT_TRY(write_all(out.fd(), bytes, "writing temporary file for " + path));
  return out.commit();
}

}  // namespace moat
