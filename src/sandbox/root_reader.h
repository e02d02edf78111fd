// Runs `moat-shim --read-root` (shim/root_reader_process.h) over a sandbox's
// two disks and hands its output on: the guest-written disk is parsed in
// that confined process, never in the caller's.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "util/result.h"

namespace moat::sandbox {

// `mode` is what to read ("diff"). `on_output` gets stdout as it comes and
// may stop the reader by returning an error. A non-zero exit is an error
// carrying the reader's own message.
Status run_root_reader(const std::string& mode, const std::string& upper_disk, const std::string& lower_disk,
                       const std::function<Status(std::string_view)>& on_output);

}  // namespace moat::sandbox
