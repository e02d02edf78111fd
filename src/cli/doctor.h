#pragma once

namespace moat::cli {

// Prints what moat will use (QEMU, kernel, initramfs, accelerator and why)
// and returns 0 if a sandbox can start, 1 otherwise.
int run_doctor();

}  // namespace moat::cli
