// The vhost-user wire protocol (QEMU docs/interop/vhost-user.rst), backend
// side: message layout, receiving one message with its file descriptors,
// and sending replies. Only what the devices served here need.
//
// The frontend is trusted more than the guest (it is our own QEMU), but its
// messages are still parsed defensively: bounded payload size and fd count,
// payload sizes checked per request, unexpected fds closed.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::vhost_user {

enum Request : std::uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSetBackendReqFd = 21,
  kGetConfig = 24,
  kSetConfig = 25,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
};

// Name of a request for error messages ("SET_VRING_ADDR").
std::string request_name(std::uint32_t request);

// Header flags: the version in bits 0-1, then REPLY and NEED_REPLY.
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::uint32_t kVersionMask = 3;
inline constexpr std::uint32_t kFlagReply = 1u << 2;
inline constexpr std::uint32_t kFlagNeedReply = 1u << 3;

// Virtio feature bits (GET/SET_FEATURES).
inline constexpr std::uint64_t kFeatureIndirectDesc = 1ull << 28;  // VIRTIO_RING_F_INDIRECT_DESC
inline constexpr std::uint64_t kFeatureEventIdx = 1ull << 29;      // VIRTIO_RING_F_EVENT_IDX
inline constexpr std::uint64_t kFeatureProtocolFeatures = 1ull << 30;  // VHOST_USER_F_PROTOCOL_FEATURES
inline constexpr std::uint64_t kFeatureVersion1 = 1ull << 32;      // VIRTIO_F_VERSION_1
inline constexpr std::uint64_t kFeatureLogAll = 1ull << 26;        // VHOST_F_LOG_ALL (migration)

// Protocol feature bits (GET/SET_PROTOCOL_FEATURES).
inline constexpr std::uint64_t kProtocolMq = 1ull << 0;
inline constexpr std::uint64_t kProtocolReplyAck = 1ull << 3;
inline constexpr std::uint64_t kProtocolConfig = 1ull << 9;

// SET_VRING_KICK/CALL/ERR payload: queue index in bits 0-7, bit 8 = no fd.
inline constexpr std::uint64_t kVringIndexMask = 0xff;
inline constexpr std::uint64_t kVringNoFd = 1ull << 8;

struct Header {
  std::uint32_t request;
  std::uint32_t flags;
  std::uint32_t size;  // payload bytes after the header
};
static_assert(sizeof(Header) == 12);

struct VringState {
  std::uint32_t index;
  std::uint32_t num;
};

struct VringAddr {
  std::uint32_t index;
  std::uint32_t flags;  // bit 0: log writes (refused: no migration)
  std::uint64_t desc_user_addr;
  std::uint64_t used_user_addr;
  std::uint64_t avail_user_addr;
  std::uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

struct MemRegion {
  std::uint64_t guest_phys_addr;
  std::uint64_t memory_size;
  std::uint64_t userspace_addr;
  std::uint64_t mmap_offset;
};
static_assert(sizeof(MemRegion) == 32);

// GET_CONFIG/SET_CONFIG: this header, then `size` bytes of config space.
struct ConfigHeader {
  std::uint32_t offset;
  std::uint32_t size;
  std::uint32_t flags;
};
static_assert(sizeof(ConfigHeader) == 12);
// The largest config space a message carries (VHOST_USER_MAX_CONFIG_SIZE).
inline constexpr std::size_t kMaxConfigSize = 256;

// SET_MEM_TABLE: u32 nregions, u32 padding, then regions.
inline constexpr std::size_t kMemTableHeader = 8;
inline constexpr std::size_t kMaxMemRegions = 8;

// Larger than any message a frontend sends to the devices served here (SET_MEM_TABLE: 264
// bytes; GET/SET_CONFIG: 12 + 256).
inline constexpr std::size_t kMaxPayload = 4096;
// SET_MEM_TABLE carries one fd per region, everything else at most one.
inline constexpr std::size_t kMaxFds = kMaxMemRegions;

struct Message {
  Header header{};
  std::array<std::uint8_t, kMaxPayload> payload{};
  std::vector<UniqueFd> fds;

  std::span<const std::uint8_t> body() const { return {payload.data(), header.size}; }
  bool need_reply() const { return header.flags & kFlagNeedReply; }

  // The payload as T; it must be at least sizeof(T) bytes.
  template <typename T>
  Result<T> as() const {
    if (header.size < sizeof(T))
      return make_error(request_name(header.request) + ": payload of " +
                            std::to_string(header.size) + " bytes, expected " +
                            std::to_string(sizeof(T)),
                        EPROTO);
    T v;
    std::memcpy(&v, payload.data(), sizeof v);
    return v;
  }
};

// Receives one message and its fds (close-on-exec). False on a clean end of
// stream before a header. Oversized payloads, more than kMaxFds fds, a bad
// version or a stream cut inside a message are errors.
Result<bool> receive(int fd, Message& msg);

// Sends the reply to `request` with `payload` (the REPLY flag set).
Status send_reply(int fd, const Header& request, std::span<const std::uint8_t> payload);
Status send_u64(int fd, const Header& request, std::uint64_t value);

}  // namespace moat::vhost_user
