// Parsing of the mount flags of `moat run` / `moat create`:
//   -v, --volume SOURCE:GUEST[:OPTIONS]  SOURCE: a host directory or a volume name;
//                                        OPTIONS: ro, rw, size=SIZE, comma-separated
//   --tmpfs GUEST[:SIZE]                 SIZE: bytes, or with k/m/g/t (64m), or size=64m
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "moat/sandbox.h"

namespace moat::cli {

Result<VolumeMount> parse_volume_flag(const std::string& text);
Result<TmpfsMount> parse_tmpfs_flag(const std::string& text);
// "4096", "64k", "64m", "2g", "1t" (binary units; upper case too).
Result<std::uint64_t> parse_byte_size(std::string_view text);

}  // namespace moat::cli
