// The generic vhost-user backend with a trivial device over a socketpair:
// the test plays the frontend (and the guest's driver), the device upper-
// cases each request into its reply. Checks the negotiated values, the
// memory table, that a kick reaches process_queue for exactly that queue,
// the call fd, GET_CONFIG and REPLY_ACK, all byte for byte.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "vhost_user/backend.h"
#include "vhost_user/device.h"
#include "vhost_user/protocol.h"
#include "vhost_user/virtqueue.h"
#include "tests/unit/vhost_user_wire.h"

namespace moat::vhost_user {
namespace {

using test::bytes_of;

constexpr std::uint64_t kDeviceFeature = 1ull << 5;  // a device-type bit
constexpr std::array<std::uint8_t, 8> kConfig = {10, 11, 12, 13, 14, 15, 16, 17};

constexpr std::size_t kMemSize = 64 << 10;
constexpr std::uint64_t kUserBase = 0x7f3400000000;  // the frontend's address of guest 0
constexpr std::uint16_t kNum = 8;
constexpr std::uint64_t kDesc = 0x1000;
constexpr std::uint64_t kAvail = 0x2000;
constexpr std::uint64_t kUsed = 0x3000;
constexpr std::uint64_t kRequest = 0x8000;
constexpr std::uint64_t kReply = 0x9000;

// Upper-cases each request into its reply and records what it saw.
class UpperDevice final : public Device {
 public:
  std::string_view name() const override { return "test"; }
  std::uint64_t features() const override { return kDeviceFeature; }
  unsigned num_queues() const override { return 2; }
  unsigned max_queue_size() const override { return 16; }
  std::span<const std::uint8_t> config() const override { return kConfig; }

  Status process_queue(unsigned index, Virtqueue& queue) override {
    std::vector<std::uint8_t> request(256);
    VirtqueueChain chain;
    for (;;) {
      MOAT_ASSIGN_OR_RETURN(bool got, queue.pop(chain, request));
      if (!got) return ok_status();
      std::string text(request.begin(), request.begin() + chain.readable);
      std::string reply = text;
      std::transform(reply.begin(), reply.end(), reply.begin(),
                     [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      iovec iov{reply.data(), reply.size()};
      queue.push(chain, queue.scatter(chain, std::span<const iovec>(&iov, 1)));
      std::lock_guard lock(mu_);
      requests_.emplace_back(index, text);
    }
  }

  std::vector<std::pair<unsigned, std::string>> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<unsigned, std::string>> requests_;
};

class VhostUserBackendTest : public ::testing::Test, public test::VhostUserWire {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    attach(UniqueFd(sv[0]));
    auto backend = Backend::adopt(UniqueFd(sv[1]), device_);
    ASSERT_TRUE(backend.ok()) << backend.error().message;
    backend_ = std::move(*backend);
    runner_ = std::thread([this] { status_ = backend_->run(); });

    mem_fd_ = UniqueFd(::memfd_create("guest", MFD_CLOEXEC));
    ASSERT_EQ(::ftruncate(mem_fd_.get(), kMemSize), 0);
    void* p = ::mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd_.get(), 0);
    ASSERT_NE(p, MAP_FAILED);
    mem_ = static_cast<std::uint8_t*>(p);
  }

  void TearDown() override {
    if (runner_.joinable()) {
      backend_->stop();
      runner_.join();
    }
    if (mem_) ::munmap(mem_, kMemSize);
  }

  // Waits for run() to end (the frontend hung up or an error) and returns its status.
  Status finish() {
    runner_.join();
    return status_;
  }

  void negotiate_reply_ack() {
    ASSERT_TRUE(send_u64(kSetProtocolFeatures, kProtocolReplyAck));
  }

  void send_mem_table() {
    std::vector<std::uint8_t> table(kMemTableHeader);
    table[0] = 1;  // one region
    auto region = bytes_of(MemRegion{0, kMemSize, kUserBase, 0});
    table.insert(table.end(), region.begin(), region.end());
    ASSERT_TRUE(send(kSetMemTable, table, {mem_fd_.get()}, kNeedReply));
    ASSERT_EQ(reply_u64(kSetMemTable), 0u);  // REPLY_ACK: mapped
  }

  // Configures and enables queue `q` with its rings at kDesc/kAvail/kUsed.
  void start_queue(std::uint32_t q, int kick, int call) {
    ASSERT_TRUE(send_state(kSetVringNum, q, kNum));
    ASSERT_TRUE(send_state(kSetVringBase, q, 0));
    VringAddr a{q, 0, kUserBase + kDesc, kUserBase + kUsed, kUserBase + kAvail, 0};
    ASSERT_TRUE(send(kSetVringAddr, bytes_of(a)));
    ASSERT_TRUE(send_u64(kSetVringKick, q, {kick}));
    ASSERT_TRUE(send_u64(kSetVringCall, q, {call}));
    ASSERT_TRUE(send_state(kSetVringEnable, q, 1));
  }

  void set_desc(std::uint16_t i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags,
                std::uint16_t next) {
    std::uint8_t* d = mem_ + kDesc + i * 16u;
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
  }
  void make_available(std::uint16_t slot, std::uint16_t head, std::uint16_t idx) {
    std::memcpy(mem_ + kAvail + 4 + slot * 2u, &head, 2);
    std::memcpy(mem_ + kAvail + 2, &idx, 2);
  }
  std::uint16_t used_idx() const {
    std::uint16_t v;
    std::memcpy(&v, mem_ + kUsed + 2, 2);
    return v;
  }

  UpperDevice device_;
  std::unique_ptr<Backend> backend_;
  std::thread runner_;
  Status status_;
  UniqueFd mem_fd_;
  std::uint8_t* mem_ = nullptr;
};

bool wait_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 5000) == 1;
}

TEST_F(VhostUserBackendTest, OffersTheBackendsFeaturesPlusTheDevices) {
  ASSERT_TRUE(send(kGetFeatures, {}));
  EXPECT_EQ(reply_u64(kGetFeatures), kFeatureVersion1 | kFeatureProtocolFeatures |
                                         kFeatureIndirectDesc | kFeatureEventIdx | kDeviceFeature);
  ASSERT_TRUE(send(kGetProtocolFeatures, {}));
  // CONFIG because the device has a config space.
  EXPECT_EQ(reply_u64(kGetProtocolFeatures), kProtocolMq | kProtocolReplyAck | kProtocolConfig);
  ASSERT_TRUE(send(kGetQueueNum, {}));
  EXPECT_EQ(reply_u64(kGetQueueNum), 2u);
  ASSERT_TRUE(send_u64(kSetFeatures, kFeatureVersion1 | kDeviceFeature));
  hang_up();
  EXPECT_TRUE(finish().ok()) << status_.error().message;
}

TEST_F(VhostUserBackendTest, RefusesFeaturesItDidNotOffer) {
  negotiate_reply_ack();
  ASSERT_TRUE(send_u64(kSetFeatures, kFeatureVersion1 | (1ull << 6), {}, kNeedReply));
  EXPECT_EQ(reply_u64(kSetFeatures), 1u);  // REPLY_ACK: failed
  Status st = finish();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message, "vhost-user-test: SET_FEATURES: features 0x40 were not offered");
  EXPECT_EQ(st.error().code, EINVAL);
}

TEST_F(VhostUserBackendTest, ReplyAckAnswersOnlyOnceNegotiated) {
  // Before SET_PROTOCOL_FEATURES: NEED_REPLY gets no ack; the next reply on
  // the socket is GET_QUEUE_NUM's own.
  ASSERT_TRUE(send(kSetOwner, {}, {}, kNeedReply));
  ASSERT_TRUE(send(kGetQueueNum, {}));
  EXPECT_EQ(reply_u64(kGetQueueNum), 2u);
  negotiate_reply_ack();
  ASSERT_TRUE(send(kSetOwner, {}, {}, kNeedReply));
  EXPECT_EQ(reply_u64(kSetOwner), 0u);
  // A request with a reply of its own gets only that, not an ack as well.
  ASSERT_TRUE(send(kGetQueueNum, {}, {}, kNeedReply));
  EXPECT_EQ(reply_u64(kGetQueueNum), 2u);
  ASSERT_TRUE(send(kSetOwner, {}, {}, kNeedReply));
  EXPECT_EQ(reply_u64(kSetOwner), 0u);
  // A queue index past the device's: acked as failed, and run() ends.
  ASSERT_TRUE(send(kSetVringNum, bytes_of(VringState{2, kNum}), {}, kNeedReply));
  EXPECT_EQ(reply_u64(kSetVringNum), 1u);
  Status st = finish();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message,
            "vhost-user-test: SET_VRING_NUM: SET_VRING_NUM for queue 2 of 2");
}

TEST_F(VhostUserBackendTest, GetConfigReadsTheDevicesConfigSpace) {
  ASSERT_TRUE(send(kGetConfig, bytes_of(ConfigHeader{2, 4, 0})));
  auto r = reply(kGetConfig);
  ASSERT_TRUE(r);
  std::vector<std::uint8_t> want = bytes_of(ConfigHeader{2, 4, 0});
  want.insert(want.end(), {12, 13, 14, 15});
  EXPECT_EQ(*r, want);
  // A range past the end (offset + size wrapping in 32 bits included).
  ASSERT_TRUE(send(kGetConfig, bytes_of(ConfigHeader{0xfffffffc, 8, 0})));
  Status st = finish();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message,
            "vhost-user-test: GET_CONFIG: config range 4294967292+8 of 8 bytes");
}

TEST_F(VhostUserBackendTest, AKickRunsProcessQueueAndTheCallFdFires) {
  UniqueFd kick(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  UniqueFd call(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  negotiate_reply_ack();
  ASSERT_TRUE(send_u64(kSetFeatures, kFeatureVersion1 | kFeatureProtocolFeatures));
  send_mem_table();
  start_queue(1, kick.get(), call.get());
  // Queue 1 runs once every setting is in, with an empty ring: no request.
  ASSERT_TRUE(send(kGetQueueNum, {}));  // a round trip: the enable was handled
  ASSERT_EQ(reply_u64(kGetQueueNum), 2u);
  EXPECT_TRUE(device_.requests().empty());

  std::memcpy(mem_ + kRequest, "hello", 5);
  set_desc(0, kRequest, 5, 1 /* NEXT */, 1);
  set_desc(1, kReply, 16, 2 /* WRITE */, 0);
  make_available(0, 0, 1);
  std::uint64_t one = 1;
  ASSERT_EQ(::write(kick.get(), &one, sizeof one), 8);

  ASSERT_TRUE(wait_readable(call.get()));
  EXPECT_EQ(used_idx(), 1);
  std::uint32_t id = 99, len = 99;
  std::memcpy(&id, mem_ + kUsed + 4, 4);
  std::memcpy(&len, mem_ + kUsed + 8, 4);
  EXPECT_EQ(id, 0u);
  EXPECT_EQ(len, 5u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(mem_ + kReply), 5), "HELLO");
  using Seen = std::vector<std::pair<unsigned, std::string>>;
  EXPECT_EQ(device_.requests(), (Seen{{1, "hello"}}));

  // GET_VRING_BASE stops the ring where the worker left off.
  ASSERT_TRUE(send_state(kGetVringBase, 1, 0));
  auto base = reply(kGetVringBase);
  ASSERT_TRUE(base);
  EXPECT_EQ(*base, bytes_of(VringState{1, 1}));
  hang_up();
  EXPECT_TRUE(finish().ok()) << status_.error().message;
}

TEST_F(VhostUserBackendTest, ABrokenRingEndsRunWithTheQueueNamed) {
  UniqueFd kick(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  UniqueFd call(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  negotiate_reply_ack();
  ASSERT_TRUE(send_u64(kSetFeatures, kFeatureVersion1 | kFeatureProtocolFeatures));
  send_mem_table();
  start_queue(0, kick.get(), call.get());
  make_available(0, kNum, 1);  // a head index past the ring
  std::uint64_t one = 1;
  ASSERT_EQ(::write(kick.get(), &one, sizeof one), 8);
  Status st = finish();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message.rfind("vhost-user-test: virtio-test queue 0: ", 0), 0u)
      << st.error().message;
  EXPECT_TRUE(device_.requests().empty());
}

TEST(VhostUserBackend, RefusesADeviceWithoutQueues) {
  class NoQueues final : public Device {
   public:
    std::string_view name() const override { return "none"; }
    std::uint64_t features() const override { return 0; }
    unsigned num_queues() const override { return 0; }
    unsigned max_queue_size() const override { return 16; }
    Status process_queue(unsigned, Virtqueue&) override { return ok_status(); }
  } device;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd other(sv[0]);
  auto backend = Backend::adopt(UniqueFd(sv[1]), device);
  ASSERT_FALSE(backend.ok());
  EXPECT_EQ(backend.error().message, "vhost-user-none: 0 queues");
}

}  // namespace
}  // namespace moat::vhost_user
