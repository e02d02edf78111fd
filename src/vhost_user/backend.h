// The backend side of a vhost-user connection, for any device type: QEMU
// (the frontend) connects to a unix socket, hands over the guest's memory
// and the virtqueues, and the device (device.h) serves the queues.
//
// run() is the socket thread: it answers the vhost-user messages (features,
// protocol features, SET_MEM_TABLE, vring setup, kick/call/err fds,
// GET_CONFIG, REPLY_ACK) and starts and stops one worker per vring
// (vring.h). A worker sleeps on its kick fd, lets the device drain the ring
// and signals the call fd.
//
// Messages are parsed defensively (protocol.h) and every queue index and
// size checked. The guest is untrusted: a ring that breaks the rules
// (virtqueue.h) stops its worker and run() ends with that error; the
// backend does not try to continue with a guest that corrupts its own rings.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "util/result.h"
#include "util/unique_fd.h"
#include "vhost_user/device.h"
#include "vhost_user/guest_memory.h"
#include "vhost_user/protocol.h"

namespace moat::vhost_user {

class Vring;

// What the backend offers on top of the device's own features: virtio 1.x,
// the vhost-user protocol features, and the ring features Virtqueue
// implements. EVENT_IDX saves most kicks and interrupts under load;
// INDIRECT_DESC lets a driver put a large request in one ring slot.
inline constexpr std::uint64_t kBackendFeatures =
    kFeatureVersion1 | kFeatureProtocolFeatures | kFeatureIndirectDesc | kFeatureEventIdx;

class Backend {
 public:
  // Creates and listens on `socket_path` (unlinks a stale socket; 0600).
  // `device` must outlive the backend. Serving starts with run().
  static Result<std::unique_ptr<Backend>> listen(const std::string& socket_path, Device& device);
  // Serves a frontend that is already connected (a socketpair, or a socket
  // inherited from a parent).
  static Result<std::unique_ptr<Backend>> adopt(UniqueFd connection, Device& device);

  // Blocks: accepts one frontend (unless adopted), serves it until it
  // disconnects or stop() is called. Ok on a clean disconnect or stop, an
  // error (with context) on a protocol violation or a broken ring.
  Status run();
  // Thread-safe: makes run() return soon.
  void stop();
  ~Backend();

  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

 private:
  Backend(std::string path, Device& device);
  // The protocol features offered to this device's frontend.
  std::uint64_t protocol_features() const;
  Status init();
  Status bind_socket();
  Result<bool> accept_frontend();
  Status serve_connection();
  Status handle(Message& msg);
  Status dispatch(Message& msg, bool& replied);
  Status reply_u64(const Message& msg, std::uint64_t value, bool& replied);

  Status set_features(const Message& msg);
  Status set_protocol_features(const Message& msg);
  Status reset_owner();
  Status set_mem_table(Message& msg);
  Status get_config(const Message& msg);
  Result<Vring*> vring(std::uint32_t index, std::uint32_t request);
  Status set_vring_num(const Message& msg);
  Status set_vring_addr(const Message& msg);
  Status set_vring_base(const Message& msg);
  Status get_vring_base(const Message& msg);
  Status set_vring_fd(Message& msg);
  Status set_vring_enable(const Message& msg);

  // Starts the vring's worker if it is fully configured and memory is mapped.
  Status maybe_start(Vring& vring);
  void stop_all();
  // Records the first error of a worker and wakes the socket thread.
  void report(Error e);
  std::string where() const;

  std::string path_;  // empty when adopted
  Device& device_;
  UniqueFd listen_fd_;
  UniqueFd conn_;
  UniqueFd stop_fd_;
  UniqueFd error_fd_;  // workers poke it after recording `error_`

  std::uint64_t features_ = 0;
  std::uint64_t protocol_features_ = 0;
  std::unique_ptr<GuestMemory> memory_;
  std::vector<std::unique_ptr<Vring>> vrings_;

  std::mutex error_mu_;
  std::optional<Error> error_;
};

}  // namespace moat::vhost_user
