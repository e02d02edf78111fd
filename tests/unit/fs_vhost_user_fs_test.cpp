// The vhost-user-fs device against an in-process fake frontend: a memfd as
// guest memory, rings laid out in it by hand, the vhost-user handshake over
// the device's unix socket, FUSE requests pushed as descriptor chains, and
// the used ring and reply bytes checked exactly. Then hostile rings: loops,
// addresses outside memory, huge lengths, index jumps.
#include <gtest/gtest.h>
#include <linux/fuse.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fs/erofs_backend.h"
#include "fs/fuse_server.h"
#include "fs/vhost_user_fs.h"
#include "image/erofs/erofs_writer.h"
#include "image/erofs/fs_tree.h"
#include "image/erofs/spool.h"
#include "vhost_user/guest_memory.h"
#include "vhost_user/protocol.h"
#include "vhost_user/virtqueue.h"
#include "tests/unit/vhost_user_wire.h"

namespace moat::fs {
namespace {

namespace vu = vhost_user;
using vu::GuestMemory;
using vu::GuestRegionSpec;
using test::bytes_of;

constexpr std::size_t kMemSize = 4 << 20;
constexpr std::uint64_t kUserBase = 0x7f1200000000;  // the "frontend" address of guest 0
constexpr std::uint16_t kNum = 16;
const std::string kContent = "hello from the image\n";

// Ring layout of queue q inside guest memory.
constexpr std::uint64_t desc_gpa(unsigned q) { return 0x1000 + q * 0x4000; }
constexpr std::uint64_t avail_gpa(unsigned q) { return desc_gpa(q) + 0x1000; }
constexpr std::uint64_t used_gpa(unsigned q) { return desc_gpa(q) + 0x2000; }
constexpr std::uint64_t kData = 0x100000;  // request and reply buffers

std::unique_ptr<ErofsBackend> make_backend() {
  auto spool = image::Spool::create("/tmp");
  if (!spool.ok()) return nullptr;
  image::FsTree tree;
  auto file = image::make_inode(image::FileType::kRegular, 0644);
  file->content = *spool->add(kContent);
  tree.root().children["hello"] = file;
  int fd = ::memfd_create("image", MFD_CLOEXEC);
  if (fd < 0 || !image::write_erofs(tree, *spool, fd).ok()) return nullptr;
  auto reader = image::ErofsReader::from_fd(UniqueFd(fd));
  if (!reader.ok()) return nullptr;
  return std::make_unique<ErofsBackend>(std::move(*reader));
}

std::vector<std::uint8_t> fuse_message(std::uint32_t opcode, std::uint64_t nodeid,
                                       std::vector<std::uint8_t> body, std::uint64_t unique) {
  fuse_in_header h{};
  h.len = static_cast<std::uint32_t>(sizeof h + body.size());
  h.opcode = opcode;
  h.unique = unique;
  h.nodeid = nodeid;
  auto out = bytes_of(h);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

std::vector<std::uint8_t> init_request(std::uint64_t unique) {
  fuse_init_in in{};
  in.major = 7;
  in.minor = 38;
  in.max_readahead = 128 * 1024;
  in.flags = FUSE_ASYNC_READ | FUSE_MAX_PAGES | FUSE_DO_READDIRPLUS;
  return fuse_message(FUSE_INIT, 0, bytes_of(in), unique);
}

struct Used {
  std::uint32_t id;
  std::uint32_t len;
};

// A vhost-user frontend played by the test, with the guest's driver role.
class FakeFrontend : public test::VhostUserWire {
 public:
  explicit FakeFrontend(const std::string& path) {
    attach(UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());
    connected_ = ::connect(wire_fd(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    mem_fd_ = UniqueFd(::memfd_create("guest", MFD_CLOEXEC));
    if (::ftruncate(mem_fd_.get(), kMemSize) != 0) connected_ = false;
    void* p = ::mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED, mem_fd_.get(), 0);
    mem_ = static_cast<std::uint8_t*>(p);
  }
  ~FakeFrontend() { ::munmap(mem_, kMemSize); }
  bool connected() const { return connected_; }
  std::uint8_t* at(std::uint64_t gpa) { return mem_ + gpa; }


  // The handshake QEMU does, then both queues started.
  void start(std::uint64_t features) {
    ASSERT_TRUE(send(vu::kGetFeatures, {}));
    ASSERT_EQ(reply_u64(vu::kGetFeatures),
              vu::kFeatureVersion1 | vu::kFeatureProtocolFeatures | vu::kFeatureIndirectDesc |
                  vu::kFeatureEventIdx);
    ASSERT_TRUE(send(vu::kSetOwner, {}));
    ASSERT_TRUE(send(vu::kGetProtocolFeatures, {}));
    ASSERT_EQ(reply_u64(vu::kGetProtocolFeatures), vu::kProtocolMq | vu::kProtocolReplyAck);
    ASSERT_TRUE(send_u64(vu::kSetProtocolFeatures, vu::kProtocolMq | vu::kProtocolReplyAck));
    ASSERT_TRUE(send(vu::kGetQueueNum, {}));
    ASSERT_EQ(reply_u64(vu::kGetQueueNum), 2u);
    ASSERT_TRUE(send_u64(vu::kSetFeatures, features));
    std::vector<std::uint8_t> table(vu::kMemTableHeader);
    table[0] = 1;
    auto region = bytes_of(vu::MemRegion{0, kMemSize, kUserBase, 0});
    table.insert(table.end(), region.begin(), region.end());
    ASSERT_TRUE(send(vu::kSetMemTable, table, {mem_fd_.get()}, kNeedReply));
    ASSERT_EQ(reply_u64(vu::kSetMemTable), 0u);  // REPLY_ACK: applied
    for (unsigned q = 0; q < 2; ++q) {
      kick_[q] = UniqueFd(::eventfd(0, EFD_CLOEXEC));
      call_[q] = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
      ASSERT_TRUE(send_state(vu::kSetVringNum, q, kNum));
      ASSERT_TRUE(send_state(vu::kSetVringBase, q, 0));
      vu::VringAddr a{q, 0, kUserBase + desc_gpa(q), kUserBase + used_gpa(q),
                      kUserBase + avail_gpa(q), 0};
      ASSERT_TRUE(send(vu::kSetVringAddr, bytes_of(a)));
      ASSERT_TRUE(send_u64(vu::kSetVringKick, q, {kick_[q].get()}));
      ASSERT_TRUE(send_u64(vu::kSetVringCall, q, {call_[q].get()}));
      ASSERT_TRUE(send_state(vu::kSetVringEnable, q, 1));
    }
  }

  bool remap() {
    std::vector<std::uint8_t> table(vu::kMemTableHeader);
    table[0] = 1;
    auto region = bytes_of(vu::MemRegion{0, kMemSize, kUserBase, 0});
    table.insert(table.end(), region.begin(), region.end());
    if (!send(vu::kSetMemTable, table, {mem_fd_.get()}, kNeedReply))
      return false;
    return reply_u64(vu::kSetMemTable) == 0u;
  }
  bool new_kick(unsigned q) {
    kick_[q] = UniqueFd(::eventfd(0, EFD_CLOEXEC));
    return send_u64(vu::kSetVringKick, q, {kick_[q].get()});
  }

  void set_desc(unsigned q, std::uint16_t i, std::uint64_t addr, std::uint32_t len,
                std::uint16_t flags, std::uint16_t next) {
    std::uint8_t* d = at(desc_gpa(q)) + 16 * i;
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
  }
  std::uint16_t avail_idx(unsigned q) {
    std::uint16_t v;
    std::memcpy(&v, at(avail_gpa(q)) + 2, 2);
    return v;
  }
  // Makes `head` available (optionally with an arbitrary new index) and kicks.
  void make_available(unsigned q, std::uint16_t head, std::optional<std::uint16_t> idx = {}) {
    std::uint16_t i = avail_idx(q);
    std::memcpy(at(avail_gpa(q)) + 4 + 2 * (i % kNum), &head, 2);
    std::uint16_t next = idx.value_or(static_cast<std::uint16_t>(i + 1));
    __atomic_store_n(reinterpret_cast<std::uint16_t*>(at(avail_gpa(q)) + 2), next, __ATOMIC_RELEASE);
    std::uint64_t one = 1;
    ASSERT_EQ(::write(kick_[q].get(), &one, 8), 8);
  }
  bool wait_call(unsigned q) {
    pollfd p{call_[q].get(), POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) return false;
    std::uint64_t v;
    return ::read(call_[q].get(), &v, 8) == 8;
  }
  std::uint16_t used_idx(unsigned q) {
    return __atomic_load_n(reinterpret_cast<std::uint16_t*>(at(used_gpa(q)) + 2), __ATOMIC_ACQUIRE);
  }
  Used used(unsigned q, std::uint16_t i) {
    Used u;
    std::memcpy(&u, at(used_gpa(q)) + 4 + 8 * (i % kNum), 8);
    return u;
  }

  // Sends one FUSE request on request queue 1 as a chain: header and body
  // in separate readable descriptors, then a 16-byte writable header and a
  // writable payload area; returns the reply bytes (used length).
  std::vector<std::uint8_t> call(const std::vector<std::uint8_t>& request, std::uint32_t out_len) {
    const unsigned q = 1;
    std::uint16_t base = static_cast<std::uint16_t>((avail_idx(q) % 4) * 4);
    std::uint64_t in_at = kData, out_at = kData + 0x10000;
    std::memcpy(at(in_at), request.data(), request.size());
    std::memset(at(out_at), 0xee, 0x10000);
    std::uint32_t first = std::min<std::uint32_t>(request.size(), sizeof(fuse_in_header));
    std::uint16_t d = base;
    if (request.size() > first) {
      set_desc(q, d, in_at, first, 1, d + 1);
      ++d;
      set_desc(q, d, in_at + first, request.size() - first, 1, d + 1);
    } else {
      set_desc(q, d, in_at, first, 1, d + 1);
    }
    ++d;
    set_desc(q, d, out_at, sizeof(fuse_out_header), 1 | 2, d + 1);
    ++d;
    set_desc(q, d, out_at + sizeof(fuse_out_header), out_len, 2, 0);
    std::uint16_t before = used_idx(q);
    make_available(q, base);
    if (!wait_call(q)) return {};
    if (used_idx(q) != static_cast<std::uint16_t>(before + 1)) return {};
    Used u = used(q, before);
    if (u.id != base) return {};
    return {at(out_at), at(out_at) + u.len};
  }

 private:
  UniqueFd mem_fd_;
  std::uint8_t* mem_ = nullptr;
  bool connected_ = false;
  UniqueFd kick_[2], call_[2];
};

// What the FUSE core answers to `request`, straight from a second server.
std::vector<std::uint8_t> direct(FuseServer& server, const std::vector<std::uint8_t>& request) {
  FuseReply reply;
  server.handle(request, reply);
  std::vector<std::uint8_t> out;
  for (const iovec& v : reply.iovecs()) {
    auto* p = static_cast<const std::uint8_t*>(v.iov_base);
    out.insert(out.end(), p, p + v.iov_len);
  }
  return out;
}

class VhostUserFsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    backend_ = make_backend();
    ASSERT_TRUE(backend_);
    server_ = std::make_unique<FuseServer>(*backend_);
    reference_ = std::make_unique<FuseServer>(*backend_);
    path_ = "/tmp/moat-vufs-test-" + std::to_string(::getpid()) + ".sock";
    auto dev = VhostUserFsDevice::listen(path_, *server_);
    ASSERT_TRUE(dev.ok()) << dev.error().message;
    device_ = std::move(*dev);
    runner_ = std::thread([this] { status_ = device_->run(); });
    front_ = std::make_unique<FakeFrontend>(path_);
    ASSERT_TRUE(front_->connected());
  }
  void TearDown() override {
    if (device_) device_->stop();
    if (runner_.joinable()) runner_.join();
  }
  // Waits for run() to end (the frontend hangs up or the device fails).
  Status finish() {
    front_->hang_up();
    runner_.join();
    return status_;
  }
  void init() {
    auto want = direct(*reference_, init_request(1));
    EXPECT_EQ(front_->call(init_request(1), 4096), want);
  }

  std::unique_ptr<ErofsBackend> backend_;
  std::unique_ptr<FuseServer> server_, reference_;
  std::string path_;
  std::unique_ptr<VhostUserFsDevice> device_;
  std::thread runner_;
  Status status_;
  std::unique_ptr<FakeFrontend> front_;
};

TEST_F(VhostUserFsTest, ServesInitLookupGetattrRead) {
  front_->start(vu::kFeatureVersion1 | vu::kFeatureProtocolFeatures | vu::kFeatureIndirectDesc);
  init();
  auto lookup = fuse_message(FUSE_LOOKUP, FUSE_ROOT_ID, {'h', 'e', 'l', 'l', 'o', 0}, 2);
  auto entry_bytes = front_->call(lookup, 4096);
  ASSERT_EQ(entry_bytes, direct(*reference_, lookup));
  ASSERT_EQ(entry_bytes.size(), sizeof(fuse_out_header) + sizeof(fuse_entry_out));
  fuse_entry_out entry;
  std::memcpy(&entry, entry_bytes.data() + sizeof(fuse_out_header), sizeof entry);
  EXPECT_EQ(entry.attr.size, kContent.size());

  auto getattr = fuse_message(FUSE_GETATTR, entry.nodeid, bytes_of(fuse_getattr_in{}), 3);
  EXPECT_EQ(front_->call(getattr, 4096), direct(*reference_, getattr));

  fuse_read_in rd{};
  rd.size = 4096;
  auto read = fuse_message(FUSE_READ, entry.nodeid, bytes_of(rd), 4);
  auto data = front_->call(read, 4096);
  ASSERT_EQ(data, direct(*reference_, read));
  fuse_out_header oh;
  std::memcpy(&oh, data.data(), sizeof oh);
  EXPECT_EQ(oh.error, 0);
  EXPECT_EQ(oh.unique, 4u);
  EXPECT_EQ(oh.len, sizeof oh + kContent.size());
  EXPECT_EQ(std::string(data.begin() + sizeof oh, data.end()), kContent);

  // FORGET on the hiprio queue: returned with nothing written.
  fuse_forget_in fg{};
  fg.nlookup = 1;
  auto forget = fuse_message(FUSE_FORGET, entry.nodeid, bytes_of(fg), 5);
  std::memcpy(front_->at(kData), forget.data(), forget.size());
  front_->set_desc(0, 0, kData, forget.size(), 0, 0);
  front_->make_available(0, 0);
  ASSERT_TRUE(front_->wait_call(0));
  EXPECT_EQ(front_->used_idx(0), 1);
  EXPECT_EQ(front_->used(0, 0).id, 0u);
  EXPECT_EQ(front_->used(0, 0).len, 0u);

  // GET_VRING_BASE stops the ring and reports the next avail index.
  ASSERT_TRUE(front_->send_state(vu::kGetVringBase, 1, 0));
  auto base = front_->reply(vu::kGetVringBase);
  ASSERT_TRUE(base);
  EXPECT_EQ(*base, bytes_of(vu::VringState{1, 4}));
  EXPECT_TRUE(finish().ok()) << status_.error().message;
}

TEST_F(VhostUserFsTest, IndirectTableAndEventIdx) {
  front_->start(vu::kFeatureVersion1 | vu::kFeatureProtocolFeatures | vu::kFeatureIndirectDesc |
                vu::kFeatureEventIdx);
  init();
  // avail_event: the device asks to be kicked for the next index. It is
  // published after the interrupt for INIT, so wait for it.
  std::uint16_t avail_event = 0;
  for (int i = 0; i < 2000 && avail_event != 1; ++i) {
    avail_event = __atomic_load_n(
        reinterpret_cast<std::uint16_t*>(front_->at(used_gpa(1)) + 4 + 8 * kNum), __ATOMIC_ACQUIRE);
    if (avail_event != 1) ::usleep(1000);
  }
  EXPECT_EQ(avail_event, 1);
  // One head descriptor pointing at a 3-entry indirect table.
  auto lookup = fuse_message(FUSE_LOOKUP, FUSE_ROOT_ID, {'h', 'e', 'l', 'l', 'o', 0}, 9);
  std::uint64_t table = kData + 0x20000, in_at = kData, out_at = kData + 0x10000;
  std::memcpy(front_->at(in_at), lookup.data(), lookup.size());
  auto put = [&](int i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags, std::uint16_t next) {
    std::uint8_t* d = front_->at(table) + 16 * i;
    std::memcpy(d, &addr, 8);
    std::memcpy(d + 8, &len, 4);
    std::memcpy(d + 12, &flags, 2);
    std::memcpy(d + 14, &next, 2);
  };
  put(0, in_at, lookup.size(), 1, 2);
  put(2, out_at, 16, 1 | 2, 1);
  put(1, out_at + 16, 4096, 2, 0);
  front_->set_desc(1, 5, table, 48, 4, 0);
  // used_event = 1: interrupt once the used index passes 1.
  std::uint16_t used_event = 1;
  std::memcpy(front_->at(avail_gpa(1)) + 4 + 2 * kNum, &used_event, 2);
  front_->make_available(1, 5);
  ASSERT_TRUE(front_->wait_call(1));
  EXPECT_EQ(front_->used_idx(1), 2);
  Used u = front_->used(1, 1);
  EXPECT_EQ(u.id, 5u);
  auto want = direct(*reference_, lookup);
  ASSERT_EQ(u.len, want.size());
  EXPECT_EQ(std::vector<std::uint8_t>(front_->at(out_at), front_->at(out_at) + u.len), want);
  EXPECT_TRUE(finish().ok());
}

TEST_F(VhostUserFsTest, ReplyLargerThanBufferIsEio) {
  front_->start(vu::kFeatureVersion1 | vu::kFeatureProtocolFeatures);
  init();
  auto statfs = fuse_message(FUSE_STATFS, FUSE_ROOT_ID, {}, 11);
  auto got = front_->call(statfs, 8);  // room for 16 + 8 bytes, STATFS needs 16 + 80
  fuse_out_header oh{};
  oh.len = sizeof oh;
  oh.error = -EIO;
  oh.unique = 11;
  EXPECT_EQ(got, bytes_of(oh));
  EXPECT_TRUE(finish().ok());
}

TEST_F(VhostUserFsTest, NewMemTableAndRingRestart) {
  front_->start(vu::kFeatureVersion1 | vu::kFeatureProtocolFeatures);
  init();
  auto getattr = fuse_message(FUSE_GETATTR, FUSE_ROOT_ID, bytes_of(fuse_getattr_in{}), 21);
  // A second SET_MEM_TABLE while queues run: workers stop, remap, resume.
  ASSERT_TRUE(front_->remap());
  EXPECT_EQ(front_->call(getattr, 4096), direct(*reference_, getattr));
  // Stop queue 1 the way QEMU does (disable, GET_VRING_BASE), then start it
  // again from the returned base with a fresh kick fd.
  ASSERT_TRUE(front_->send_state(vu::kSetVringEnable, 1, 0));
  ASSERT_TRUE(front_->send_state(vu::kGetVringBase, 1, 0));
  auto base = front_->reply(vu::kGetVringBase);
  ASSERT_TRUE(base);
  EXPECT_EQ(*base, bytes_of(vu::VringState{1, 2}));
  ASSERT_TRUE(front_->send_state(vu::kSetVringBase, 1, 2));
  ASSERT_TRUE(front_->new_kick(1));
  ASSERT_TRUE(front_->send_state(vu::kSetVringEnable, 1, 1));
  EXPECT_EQ(front_->call(getattr, 4096), direct(*reference_, getattr));
  EXPECT_TRUE(finish().ok()) << status_.error().message;
}

TEST_F(VhostUserFsTest, StopEndsRun) {
  front_->start(vu::kFeatureVersion1 | vu::kFeatureProtocolFeatures);
  init();
  device_->stop();
  runner_.join();
  EXPECT_TRUE(status_.ok());
}

TEST_F(VhostUserFsTest, UnknownRequestEndsRunWithError) {
  ASSERT_TRUE(front_->send(77, {}));
  runner_.join();
  ASSERT_FALSE(status_.ok());
  EXPECT_NE(status_.error().message.find("request 77"), std::string::npos) << status_.error().message;
}

TEST_F(VhostUserFsTest, OversizedMessageEndsRunWithError) {
  vu::Header h{vu::kSetFeatures, vu::kVersion, 5000};
  std::vector<std::uint8_t> raw = bytes_of(h);
  raw.resize(raw.size() + 64);
  ASSERT_TRUE(front_->send_raw(raw));
  runner_.join();
  ASSERT_FALSE(status_.ok());
  EXPECT_NE(status_.error().message.find("payload of 5000 bytes"), std::string::npos)
      << status_.error().message;
}

TEST_F(VhostUserFsTest, BadVersionEndsRunWithError) {
  ASSERT_TRUE(front_->send(vu::kGetFeatures, {}, {}, 2));
  runner_.join();
  ASSERT_FALSE(status_.ok());
  EXPECT_NE(status_.error().message.find("version 2"), std::string::npos) << status_.error().message;
}

TEST_F(VhostUserFsTest, KickWithoutFdEndsRunWithError) {
  ASSERT_TRUE(front_->send_u64(vu::kSetVringKick, 1));
  runner_.join();
  ASSERT_FALSE(status_.ok());
  EXPECT_NE(status_.error().message.find("SET_VRING_KICK: expected one fd"), std::string::npos)
      << status_.error().message;
}

TEST_F(VhostUserFsTest, TooManyFdsEndRunWithError) {
  std::vector<UniqueFd> fds;
  std::vector<int> raw;
  for (int i = 0; i < 9; ++i) {
    fds.emplace_back(::eventfd(0, EFD_CLOEXEC));
    raw.push_back(fds.back().get());
  }
  ASSERT_TRUE(front_->send_u64(vu::kSetVringCall, 1, raw));
  runner_.join();
  ASSERT_FALSE(status_.ok());
  EXPECT_NE(status_.error().message.find("more than 8 fds"), std::string::npos)
      << status_.error().message;
}

TEST_F(VhostUserFsTest, QueueIndexOutOfRangeEndsRunWithError) {
  ASSERT_TRUE(front_->send_state(vu::kSetVringNum, 2, 16));
  runner_.join();
  ASSERT_FALSE(status_.ok());
  EXPECT_NE(status_.error().message.find("SET_VRING_NUM for queue 2 of 2"), std::string::npos)
      << status_.error().message;
}

// Hostile rings: each must end run() with an error naming the problem,
// without a crash or a hang.
struct Hostile {
  const char* name;
  void (*arrange)(FakeFrontend&);
  const char* message;
};

// Test listings show the case's name, not the parameter's bytes.
void PrintTo(const Hostile& h, std::ostream* os) { *os << h.name; }

class VhostUserFsHostileTest : public VhostUserFsTest,
                               public ::testing::WithParamInterface<Hostile> {};

TEST_P(VhostUserFsHostileTest, BreaksTheQueue) {
  front_->start(vu::kFeatureVersion1 | vu::kFeatureProtocolFeatures | vu::kFeatureIndirectDesc);
  init();
  GetParam().arrange(*front_);
  runner_.join();  // ends on its own
  ASSERT_FALSE(status_.ok());
  EXPECT_NE(status_.error().message.find("virtio-fs queue 1"), std::string::npos)
      << status_.error().message;
  EXPECT_NE(status_.error().message.find(GetParam().message), std::string::npos)
      << status_.error().message;
}

INSTANTIATE_TEST_SUITE_P(
    Rings, VhostUserFsHostileTest,
    ::testing::Values(
        Hostile{"Loop",
                [](FakeFrontend& f) {
                  f.set_desc(1, 8, kData, 16, 1, 9);
                  f.set_desc(1, 9, kData, 16, 1, 8);
                  f.make_available(1, 8);
                },
                "loops"},
        Hostile{"OutsideMemory",
                [](FakeFrontend& f) {
                  f.set_desc(1, 8, kMemSize - 8, 16, 0, 0);
                  f.make_available(1, 8);
                },
                "outside guest memory"},
        Hostile{"WrappingAddress",
                [](FakeFrontend& f) {
                  f.set_desc(1, 8, ~0ull - 4, 16, 0, 0);
                  f.make_available(1, 8);
                },
                "wraps"},
        Hostile{"HugeLength",
                [](FakeFrontend& f) {
                  f.set_desc(1, 8, 0, 0xffffffff, 0, 0);
                  f.make_available(1, 8);
                },
                "outside guest memory"},
        Hostile{"RequestTooLarge",
                [](FakeFrontend& f) {
                  f.set_desc(1, 8, 0, 2 << 20, 0, 0);
                  f.make_available(1, 8);
                },
                "request larger than"},
        Hostile{"AvailIndexJump",
                [](FakeFrontend& f) {
                  f.set_desc(1, 8, kData, 16, 0, 0);
                  f.make_available(1, 8, static_cast<std::uint16_t>(f.avail_idx(1) + kNum + 1));
                },
                "ahead"},
        Hostile{"HeadOutOfRange",
                [](FakeFrontend& f) { f.make_available(1, kNum); }, "chain head 16 out of range"},
        Hostile{"NextOutOfRange",
                [](FakeFrontend& f) {
                  f.set_desc(1, 8, kData, 16, 1, 200);
                  f.make_available(1, 8);
                },
                "next descriptor 200 out of range"},
        Hostile{"ReadableAfterWritable",
                [](FakeFrontend& f) {
                  f.set_desc(1, 8, kData, 16, 2 | 1, 9);
                  f.set_desc(1, 9, kData, 16, 0, 0);
                  f.make_available(1, 8);
                },
                "readable descriptor after a writable one"},
        Hostile{"NestedIndirect",
                [](FakeFrontend& f) {
                  std::uint64_t table = kData + 0x20000;
                  std::uint64_t addr = table;
                  std::uint32_t len = 16;
                  std::uint16_t flags = 4, next = 0;
                  std::memcpy(f.at(table), &addr, 8);
                  std::memcpy(f.at(table) + 8, &len, 4);
                  std::memcpy(f.at(table) + 12, &flags, 2);
                  std::memcpy(f.at(table) + 14, &next, 2);
                  f.set_desc(1, 8, table, 16, 4, 0);
                  f.make_available(1, 8);
                },
                "nested or non-head indirect"}),
    [](const ::testing::TestParamInfo<Hostile>& info) { return std::string(info.param.name); });

TEST(GuestMemory, TranslatesOnlyWholeRangesInsideARegion) {
  std::vector<std::uint8_t> buf(4096);
  auto mem = GuestMemory::borrow(buf, 0x10000, 0x7000000);
  ASSERT_TRUE(mem.ok());
  EXPECT_EQ(*mem->guest(0x10000, 4096), buf.data());
  EXPECT_EQ(*mem->guest(0x10ffc, 4), buf.data() + 4092);
  EXPECT_EQ(*mem->guest(0x11000, 0), buf.data() + 4096);
  EXPECT_EQ(*mem->frontend(0x7000010, 16), buf.data() + 16);
  EXPECT_FALSE(mem->guest(0x10ffc, 5).ok());
  EXPECT_FALSE(mem->guest(0xffff, 2).ok());
  EXPECT_FALSE(mem->guest(0x7000000, 1).ok());  // a frontend address is not a guest one
  EXPECT_EQ(mem->guest(~0ull, 2).error().code, EFAULT);
  EXPECT_FALSE(mem->guest(0x10000, ~0ull).ok());
}

TEST(GuestMemory, RejectsBadTables) {
  UniqueFd a(::memfd_create("a", MFD_CLOEXEC)), b(::memfd_create("b", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(a.get(), 8192), 0);
  ASSERT_EQ(::ftruncate(b.get(), 8192), 0);
  std::vector<UniqueFd> fds;
  fds.push_back(std::move(a));
  fds.push_back(std::move(b));
  // Overlapping guest ranges.
  GuestRegionSpec overlap[2] = {{0, 8192, 0x100000, 0}, {4096, 4096, 0x200000, 0}};
  EXPECT_FALSE(GuestMemory::map(overlap, fds).ok());
  // Past the end of its file (would SIGBUS on access).
  GuestRegionSpec past[2] = {{0, 8192, 0x100000, 4096}, {0x10000, 4096, 0x200000, 0}};
  EXPECT_FALSE(GuestMemory::map(past, fds).ok());
  GuestRegionSpec good[2] = {{0, 8192, 0x100000, 0}, {0x10000, 4096, 0x200000, 4096}};
  auto mem = GuestMemory::map(good, fds);
  ASSERT_TRUE(mem.ok()) << mem.error().message;
  EXPECT_TRUE(mem->guest(0x10000, 4096).ok());
  EXPECT_FALSE(mem->guest(0x2000, 1).ok());
}

}  // namespace
}  // namespace moat::fs
