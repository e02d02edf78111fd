// The host's TSC rate, handed to a TCG guest's kernel (tsc_early_khz=).
//
// Under TCG the guest's RDTSC reads the host's TSC (QEMU's
// cpu_get_host_ticks), so the guest's TSC runs at exactly the host's rate.
// Left to itself the guest kernel measures that rate against the emulated
// PIT over a few milliseconds; a guest starved of CPU on a loaded host (ten
// sandboxes booting on two cores) fails that measurement ("Unable to
// calibrate against PIT", "could not calculate TSC khz"), gives up the TSC
// and keeps time with jiffies, which lose every tick the guest waited for a
// CPU: restored children fell seconds behind the host within a minute.
// Told the rate, the kernel skips the measurement and keeps the TSC.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace moat::vm {

// The host's TSC rate in kHz, or 0 when it is not known: not an x86-64 host,
// a TSC whose rate changes (no constant_tsc and nonstop_tsc in
// /proc/cpuinfo), or a measurement out of any plausible range. Measured
// once per boot of the host (~20 ms against CLOCK_MONOTONIC_RAW) and kept in
// /run/moat/host-tsc-khz when that is writable; each process measures at
// most once.
std::uint32_t host_tsc_khz();

// The cache file's text for a host boot: "BOOT_ID KHZ\n".
std::string tsc_cache_text(std::string_view boot_id, std::uint32_t khz);
// The rate a cache file's text holds for this boot; nothing for another
// boot's file, a malformed one or a rate out of range.
std::optional<std::uint32_t> tsc_from_cache_text(std::string_view text, std::string_view boot_id);
// A rate any x86-64 TSC could have (0.1-20 GHz).
bool plausible_tsc_khz(std::uint64_t khz);

}  // namespace moat::vm
