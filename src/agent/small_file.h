// Reading small files (/proc/cmdline, sysfs attributes, /etc/passwd) with
// plain system calls. The agent avoids iostreams: constructing the first
// stream initialises the C++ locale machinery, a measurable cost at boot
// under TCG.
#pragma once

#include <cstddef>
#include <string>

namespace moat::agent {

// Up to max_bytes of the file; empty if it cannot be read.
std::string read_small_file(const std::string& path, std::size_t max_bytes = 1 << 20);

// The first line, without its newline.
std::string read_first_line(const std::string& path);

}  // namespace moat::agent
