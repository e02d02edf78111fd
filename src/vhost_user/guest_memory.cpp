#include "vhost_user/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

namespace moat::vhost_user {

namespace {

// [a, a + alen) and [b, b + blen) overlap; both are known not to wrap.
bool overlaps(std::uint64_t a, std::uint64_t alen, std::uint64_t b, std::uint64_t blen) {
  return a < b + blen && b < a + alen;
}

bool wraps(std::uint64_t addr, std::uint64_t len) { return addr + len < addr; }

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

Status check_specs(std::span<const GuestRegionSpec> specs) {
  if (specs.empty() || specs.size() > GuestMemory::kMaxRegions)
    return make_error("memory table has " + std::to_string(specs.size()) + " regions (1.." +
                          std::to_string(GuestMemory::kMaxRegions) + ")",
                      EINVAL);
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    if (s.size == 0 || wraps(s.guest_phys, s.size) || wraps(s.user_addr, s.size) ||
        wraps(s.mmap_offset, s.size))
      return make_error("memory region " + std::to_string(i) + " has a bad range", EINVAL);
    for (std::size_t j = 0; j < i; ++j) {
      if (overlaps(s.guest_phys, s.size, specs[j].guest_phys, specs[j].size) ||
          overlaps(s.user_addr, s.size, specs[j].user_addr, specs[j].size))
        return make_error("memory regions " + std::to_string(j) + " and " + std::to_string(i) +
                              " overlap",
                          EINVAL);
    }
  }
  return ok_status();
}

}  // namespace

GuestMemory::~GuestMemory() { unmap_all(); }

GuestMemory::GuestMemory(GuestMemory&& other) noexcept : regions_(std::move(other.regions_)) {
  other.regions_.clear();
}

GuestMemory& GuestMemory::operator=(GuestMemory&& other) noexcept {
  if (this != &other) {
    unmap_all();
    regions_ = std::move(other.regions_);
    other.regions_.clear();
  }
  return *this;
}

void GuestMemory::unmap_all() {
  for (auto& r : regions_)
    if (r.map_len) ::munmap(r.host - r.map_skew, r.map_len);
  regions_.clear();
}

Result<GuestMemory> GuestMemory::map(std::span<const GuestRegionSpec> specs,
                                     std::span<UniqueFd> fds) {
  MOAT_TRY(check_specs(specs));
  if (fds.size() != specs.size())
    return make_error("memory table has " + std::to_string(specs.size()) + " regions but " +
                          std::to_string(fds.size()) + " fds",
                      EINVAL);
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  GuestMemory mem;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    struct stat st {};
    if (::fstat(fds[i].get(), &st) != 0) return errno_error("fstat memory region fd");
    // A region reaching past its file would SIGBUS on access: refuse it here.
    if (s.mmap_offset + s.size > static_cast<std::uint64_t>(st.st_size))
      return make_error("memory region " + std::to_string(i) + " extends past its file (" +
                            hex(s.mmap_offset + s.size) + " > " + hex(st.st_size) + ")",
                        EINVAL);
    std::uint64_t skew = s.mmap_offset % page;
    std::uint64_t len = s.size + skew;
    if (len > SIZE_MAX) return make_error("memory region too large", EINVAL);
    void* p = ::mmap(nullptr, static_cast<std::size_t>(len), PROT_READ | PROT_WRITE, MAP_SHARED,
                     fds[i].get(), static_cast<off_t>(s.mmap_offset - skew));
    if (p == MAP_FAILED) return errno_error("mmap memory region " + std::to_string(i));
    mem.regions_.push_back(Region{s, static_cast<std::uint8_t*>(p) + skew,
                                  static_cast<std::size_t>(len), static_cast<std::size_t>(skew)});
  }
  return mem;
}

Result<GuestMemory> GuestMemory::borrow(std::span<std::uint8_t> bytes, std::uint64_t guest_phys,
                                        std::uint64_t user_addr) {
  GuestRegionSpec spec{guest_phys, bytes.size(), user_addr, 0};
  MOAT_TRY(check_specs(std::span<const GuestRegionSpec>(&spec, 1)));
  GuestMemory mem;
  mem.regions_.push_back(Region{spec, bytes.data(), 0, 0});
  return mem;
}

Result<std::uint8_t*> GuestMemory::guest(std::uint64_t addr, std::uint64_t len) const {
  return translate(addr, len, false);
}

Result<std::uint8_t*> GuestMemory::frontend(std::uint64_t addr, std::uint64_t len) const {
  return translate(addr, len, true);
}

Result<std::uint8_t*> GuestMemory::translate(std::uint64_t addr, std::uint64_t len,
                                             bool frontend) const {
  if (wraps(addr, len))
    return make_error("address range " + hex(addr) + "+" + hex(len) + " wraps", EFAULT);
  for (const auto& r : regions_) {
    std::uint64_t base = frontend ? r.spec.user_addr : r.spec.guest_phys;
    // Both subtractions are safe: addr >= base is checked first.
    if (addr >= base && addr - base <= r.spec.size && len <= r.spec.size - (addr - base))
      return r.host + (addr - base);
  }
  return make_error(std::string(frontend ? "frontend" : "guest") + " address range " + hex(addr) +
                        "+" + hex(len) + " is outside guest memory",
                    EFAULT);
}

}  // namespace moat::vhost_user
