// SandboxDb: the sandbox records in moat.db (no VM).
#include "sandbox/sandbox_db.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <filesystem>

#include "store/sqlite.h"

namespace moat::sandbox {
namespace {

class SandboxDbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/moat-sandbox-db-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    home_ = tmpl;
    auto db = SandboxDb::open(home_);
    ASSERT_TRUE(db.ok()) << db.error().message;
    db_ = std::move(*db);
  }
  void TearDown() override { std::filesystem::remove_all(home_); }

  static SandboxRecord record(const std::string& id, const std::string& name, std::int64_t created) {
    SandboxRecord r;
    r.state = kStateCreating;
    r.info.id = id;
    r.info.name = name;
    r.info.created_at = created;
    r.info.labels = {{"team", "red"}};
    r.info.command = {"python3", "-c", "print(1)"};
    r.info.env = {"A=1"};
    r.info.workdir = "/srv";
    r.info.user = "nobody";
    r.info.memory_mib = 512;
    r.info.disk_size_mib = 1024;
    r.info.idle_timeout = std::chrono::seconds(30);
    return r;
  }

  std::string home_;
  std::unique_ptr<SandboxDb> db_;
};

TEST_F(SandboxDbTest, InsertFindByIdOrNameRoundTripsTheSpec) {
  ASSERT_TRUE(db_->insert(record("aaaaaaaaaaaa", "web", 100)).ok());
  for (const char* key : {"aaaaaaaaaaaa", "web"}) {
    auto r = db_->find(key);
    ASSERT_TRUE(r.ok() && r->has_value()) << key;
    const auto& i = (*r)->info;
    EXPECT_EQ((*r)->state, "creating");
    EXPECT_EQ(i.id, "aaaaaaaaaaaa");
    EXPECT_EQ(i.name, "web");
    EXPECT_EQ(i.labels.at("team"), "red");
    EXPECT_EQ(i.command, (std::vector<std::string>{"python3", "-c", "print(1)"}));
    EXPECT_EQ(i.env, std::vector<std::string>{"A=1"});
    EXPECT_EQ(i.workdir, "/srv");
    EXPECT_EQ(i.user, "nobody");
    EXPECT_EQ(i.memory_mib, 512);
    EXPECT_EQ(i.disk_size_mib, 1024u);
    EXPECT_EQ(i.idle_timeout, std::chrono::seconds(30));
  }
  auto none = db_->find("nothing");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// The record is the one source of how the VM is made: start derives the
// shim's config.json from it, so every field must come back exactly.
TEST_F(SandboxDbTest, VmSettingsRoundTripThroughUpdateSpec) {
  SandboxRecord r = record("aaaaaaaaaaaa", "web", 100);
  ASSERT_TRUE(db_->insert(r).ok());
  auto before = db_->find("web");
  ASSERT_TRUE(before.ok() && before->has_value());
  EXPECT_FALSE((*before)->vm.stored);

  r.vm.stored = true;
  r.vm.hostname = "box-1";
  r.vm.accel = vm::Accel::kKvm;
  r.vm.boot_timeout_ms = 45000;
  r.vm.stop_timeout_ms = 2500;
  r.vm.log_max_bytes = 65536;
  r.vm.disks = {{"/cache/images/a\xff.erofs", true}, {"/home/sandboxes/aaaaaaaaaaaa/upper.ext4", false}};
  r.vm.root_mode = "overlay";
  r.vm.lower_fs = "erofs";
  ASSERT_TRUE(db_->update_spec(r).ok());

  auto after = db_->find("aaaaaaaaaaaa");
  ASSERT_TRUE(after.ok() && after->has_value()) << after.error().message;
  const VmRecord& v = (*after)->vm;
  EXPECT_TRUE(v.stored);
  EXPECT_EQ(v.hostname, "box-1");
  EXPECT_EQ(v.accel, vm::Accel::kKvm);
  EXPECT_EQ(v.boot_timeout_ms, 45000);
  EXPECT_EQ(v.stop_timeout_ms, 2500);
  EXPECT_EQ(v.log_max_bytes, 65536u);
  ASSERT_EQ(v.disks.size(), 2u);
  EXPECT_EQ(v.disks[0].path, "/cache/images/a\xff.erofs");
  EXPECT_TRUE(v.disks[0].read_only);
  EXPECT_EQ(v.disks[1].path, "/home/sandboxes/aaaaaaaaaaaa/upper.ext4");
  EXPECT_FALSE(v.disks[1].read_only);
  EXPECT_EQ(v.root_mode, "overlay");
  EXPECT_EQ(v.lower_fs, "erofs");
  EXPECT_EQ((*after)->info.memory_mib, 512);
}

// The network options are part of the record (start derives config.json
// from it, `moat network update` rewrites them); a record written before
// they were kept reads as the default options.
TEST_F(SandboxDbTest, NetworkOptionsRoundTripAndOlderRecordsHaveTheDefaults) {
  SandboxRecord r = record("aaaaaaaaaaaa", "web", 100);
  r.info.network.mode = NetworkMode::kNone;
  r.info.network.rules = {{.allow = false, .rule = "@metadata"}, {.allow = true, .rule = "*.pypi.org:443"}};
  r.info.network.hosts = {{"db.test", "host-gateway"}};
  r.info.network.dns = "1.1.1.1:53";
  r.info.network.ports = {{.host_ip = "::1", .host_port = 8080, .guest_port = 80, .udp = true}};
  r.info.network.max_connections = 9;
  r.info.network.egress_bytes_per_second = 1 << 20;
  ASSERT_TRUE(db_->insert(r).ok());
  auto found = db_->find("web");
  ASSERT_TRUE(found.ok() && found->has_value()) << found.error().message;
  const NetworkOptions& n = (*found)->info.network;
  EXPECT_EQ(n.mode, NetworkMode::kNone);
  ASSERT_EQ(n.rules.size(), 2u);
  EXPECT_FALSE(n.rules[0].allow);
  EXPECT_EQ(n.rules[0].rule, "@metadata");
  EXPECT_TRUE(n.rules[1].allow);
  EXPECT_EQ(n.rules[1].rule, "*.pypi.org:443");
  ASSERT_EQ(n.hosts.size(), 1u);
  EXPECT_EQ(n.hosts[0].address, "host-gateway");
  EXPECT_EQ(n.dns, "1.1.1.1:53");
  ASSERT_EQ(n.ports.size(), 1u);
  EXPECT_EQ(n.ports[0].host_ip, "::1");
  EXPECT_EQ(n.ports[0].host_port, 8080);
  EXPECT_EQ(n.ports[0].guest_port, 80);
  EXPECT_TRUE(n.ports[0].udp);
  EXPECT_EQ(n.max_connections, 9u);
  EXPECT_EQ(n.egress_bytes_per_second, 1u << 20);

  {
    auto raw = store::SqliteDb::open(home_ + "/moat.db", "");
    ASSERT_TRUE(raw.ok()) << raw.error().message;
    store::Stmt s(**raw, "UPDATE sandboxes SET spec = ?1 WHERE id = ?2");
    ASSERT_TRUE(s.prepared().ok());
    s.bind(1, std::string(R"({"cpus": 2, "memory_mib": 256})")).bind(2, std::string("aaaaaaaaaaaa"));
    ASSERT_TRUE(s.run().ok());
  }
  auto old = db_->find("web");
  ASSERT_TRUE(old.ok() && old->has_value()) << old.error().message;
  const NetworkOptions& d = (*old)->info.network;
  EXPECT_EQ(d.mode, NetworkMode::kPublic);
  EXPECT_TRUE(d.rules.empty());
  EXPECT_TRUE(d.hosts.empty());
  EXPECT_EQ(d.dns, "");
  EXPECT_TRUE(d.ports.empty());
  EXPECT_EQ(d.max_connections, kDefaultMaxConnections);
  EXPECT_EQ(d.egress_bytes_per_second, 0u);
}

std::vector<std::string> event_lines(SandboxDb& db, std::uint64_t after = 0) {
  auto events = db.events_after(after, 100);
  EXPECT_TRUE(events.ok()) << events.error().message;
  std::vector<std::string> out;
  if (!events.ok()) return out;
  for (const auto& e : *events) out.push_back(std::string(to_string(e.kind)) + " " + e.name + " " + e.reason);
  return out;
}

// Each change of state is told once, in order, with the name it had; a
// create that never finished is not told at all.
TEST_F(SandboxDbTest, StateChangesAreToldOnceInOrder) {
  ASSERT_TRUE(db_->insert(record("aaaaaaaaaaaa", "web", 100)).ok());
  ASSERT_TRUE(db_->insert(record("bbbbbbbbbbbb", "half", 100)).ok());
  ASSERT_TRUE(db_->mark_created("aaaaaaaaaaaa").ok());
  ASSERT_TRUE(db_->mark_running("aaaaaaaaaaaa", 0, 110).ok());    // the record says running first
  ASSERT_TRUE(db_->mark_running("aaaaaaaaaaaa", 4242, 110).ok()); // then the shim runs
  ASSERT_TRUE(db_->mark_finished("aaaaaaaaaaaa", SandboxState::kCrashed, "qemu died", 120).ok());
  ASSERT_TRUE(db_->mark_finished("aaaaaaaaaaaa", SandboxState::kCrashed, "qemu died", 121).ok());
  ASSERT_TRUE(db_->mark_running("aaaaaaaaaaaa", 0, 130).ok());
  ASSERT_TRUE(db_->mark_running("aaaaaaaaaaaa", 4343, 130).ok());
  ASSERT_TRUE(db_->mark_finished("aaaaaaaaaaaa", SandboxState::kStopped, "stop requested by a client", 140).ok());
  ASSERT_TRUE(db_->remove("aaaaaaaaaaaa").ok());
  ASSERT_TRUE(db_->remove("bbbbbbbbbbbb").ok());
  ASSERT_TRUE(db_->remove("bbbbbbbbbbbb").ok());  // gone already: nothing to tell
  EXPECT_EQ(event_lines(*db_), (std::vector<std::string>{"created web ", "started web ", "crashed web qemu died",
                                                         "started web ", "stopped web stop requested by a client",
                                                         "removed web "}));
  auto all = db_->events_after(0, 100);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 6u);
  EXPECT_EQ((*all)[0].id, "aaaaaaaaaaaa");
  for (std::size_t i = 1; i < all->size(); ++i) EXPECT_GT((*all)[i].seq, (*all)[i - 1].seq);
  EXPECT_EQ(event_lines(*db_, (*all)[3].seq), (std::vector<std::string>{"stopped web stop requested by a client",
                                                                        "removed web "}));
}

TEST_F(SandboxDbTest, OnlyTheNewestEventsAreKept) {
  ASSERT_TRUE(db_->insert(record("aaaaaaaaaaaa", "web", 100)).ok());
  for (int i = 0; i < kMaxEvents / 2 + 5; ++i) {
    ASSERT_TRUE(db_->mark_created("aaaaaaaaaaaa").ok());
    ASSERT_TRUE(db_->mark_finished("aaaaaaaaaaaa", SandboxState::kStopped, "", 1).ok());
  }
  auto all = db_->events_after(0, 2 * kMaxEvents);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), static_cast<std::size_t>(kMaxEvents));
  EXPECT_EQ(all->back().seq - all->front().seq, static_cast<std::uint64_t>(kMaxEvents - 1));
  EXPECT_EQ(all->back().kind, SandboxEventKind::kStopped);
}

// The shim adds network denials to the same table; however many, they
// never push the lifecycle out.
TEST_F(SandboxDbTest, ShimNetworkEventsAreBoundedApart) {
  ASSERT_TRUE(db_->insert(record("aaaaaaaaaaaa", "web", 100)).ok());
  ASSERT_TRUE(db_->mark_created("aaaaaaaaaaaa").ok());
  for (int i = 0; i < shim::kMaxNetworkEvents + 20; ++i)
    ASSERT_TRUE(shim::append_shim_event(home_, "aaaaaaaaaaaa", shim::kNetworkDeniedEvent,
                                        "denied tcp 10.0.2.2:" + std::to_string(i) + ": --net public")
                    .ok());
  // An unknown sandbox gets nothing.
  ASSERT_TRUE(shim::append_shim_event(home_, "zzzzzzzzzzzz", shim::kNetworkDeniedEvent, "x").ok());
  auto all = db_->events_after(0, 2 * kMaxEvents);
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), static_cast<std::size_t>(shim::kMaxNetworkEvents + 1));
  EXPECT_EQ(all->front().kind, SandboxEventKind::kCreated);
  EXPECT_EQ((*all)[1].kind, SandboxEventKind::kNetworkDenied);
  EXPECT_EQ((*all)[1].reason, "denied tcp 10.0.2.2:20: --net public");
  EXPECT_EQ(all->back().reason, "denied tcp 10.0.2.2:" + std::to_string(shim::kMaxNetworkEvents + 19) + ": --net public");
  EXPECT_EQ(all->back().name, "web");
}

TEST_F(SandboxDbTest, NamesAreUniqueAndAnIdWinsOverAName) {
  ASSERT_TRUE(db_->insert(record("aaaaaaaaaaaa", "web", 100)).ok());
  auto dup = db_->insert(record("bbbbbbbbbbbb", "web", 101));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, EEXIST);
  EXPECT_EQ(dup.error().message, "the name \"web\" is already in use");
  // A sandbox named like another's id: the id is looked up first.
  ASSERT_TRUE(db_->insert(record("cccccccccccc", "aaaaaaaaaaaa", 102)).ok());
  auto r = db_->find("aaaaaaaaaaaa");
  ASSERT_TRUE(r.ok() && r->has_value());
  EXPECT_EQ((*r)->info.name, "web");
}

TEST_F(SandboxDbTest, StatesTimesAndListOrder) {
  ASSERT_TRUE(db_->insert(record("bbbbbbbbbbbb", "second", 200)).ok());
  ASSERT_TRUE(db_->insert(record("zzzzzzzzzzzz", "first", 100)).ok());
  ASSERT_TRUE(db_->insert(record("aaaaaaaaaaaa", "third", 200)).ok());
  ASSERT_TRUE(db_->mark_created("zzzzzzzzzzzz").ok());
  ASSERT_TRUE(db_->mark_running("zzzzzzzzzzzz", 4242, 300).ok());
  auto running = db_->find("first");
  ASSERT_TRUE(running.ok() && running->has_value());
  EXPECT_EQ((*running)->info.state, SandboxState::kRunning);
  EXPECT_EQ((*running)->info.shim_pid, 4242);
  EXPECT_EQ((*running)->info.started_at, 300);
  ASSERT_TRUE(db_->mark_finished("zzzzzzzzzzzz", SandboxState::kCrashed, "the shim was killed", 400).ok());
  auto crashed = db_->find("first");
  EXPECT_EQ((*crashed)->info.state, SandboxState::kCrashed);
  EXPECT_EQ((*crashed)->info.reason, "the shim was killed");
  EXPECT_EQ((*crashed)->info.shim_pid, 0);
  EXPECT_EQ((*crashed)->info.finished_at, 400);

  auto list = db_->list();
  ASSERT_TRUE(list.ok());
  std::vector<std::string> names;
  for (const auto& r : *list) names.push_back(r.info.name);
  // By creation time, then insertion order.
  EXPECT_EQ(names, (std::vector<std::string>{"first", "second", "third"}));

  ASSERT_TRUE(db_->remove("bbbbbbbbbbbb").ok());
  EXPECT_EQ(db_->list()->size(), 2u);
  auto gone = db_->mark_created("bbbbbbbbbbbb");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code, ENOENT);
}

TEST_F(SandboxDbTest, BytesThatAreNotUtf8RoundTripExactly) {
  // POSIX argv, environment and paths are bytes; JSON text is UTF-8.
  const std::string cafe = "caf\xe9";
  SandboxRecord r = record("aaaaaaaaaaaa", "bytes", 100);
  r.info.command = {"echo", cafe, "caf\xc3\xa9"};
  r.info.env = {"K=" + cafe};
  r.info.workdir = "/" + cafe;
  r.info.user = cafe;
  r.info.volumes = {{"/tmp/" + cafe, "/d" + cafe, true, 5ull << 30}};
  r.info.tmpfs = {{"/t" + cafe, 4096}};
  ASSERT_TRUE(db_->insert(r).ok());
  auto back = db_->find("bytes");
  ASSERT_TRUE(back.ok() && back->has_value()) << (back.ok() ? "missing" : back.error().message);
  const auto& i = (*back)->info;
  EXPECT_EQ(i.command, r.info.command);
  EXPECT_EQ(i.env, r.info.env);
  EXPECT_EQ(i.workdir, r.info.workdir);
  EXPECT_EQ(i.user, r.info.user);
  ASSERT_EQ(i.volumes.size(), 1u);
  EXPECT_EQ(i.volumes[0].source, "/tmp/" + cafe);
  EXPECT_EQ(i.volumes[0].guest_path, "/d" + cafe);
  EXPECT_TRUE(i.volumes[0].read_only);
  EXPECT_EQ(i.volumes[0].size_bytes, 5ull << 30);
  ASSERT_EQ(i.tmpfs.size(), 1u);
  EXPECT_EQ(i.tmpfs[0].guest_path, "/t" + cafe);
  EXPECT_EQ(i.labels.at("team"), "red");
}

TEST_F(SandboxDbTest, StateNamesRoundTrip) {
  for (auto s : {SandboxState::kCreated, SandboxState::kRunning, SandboxState::kStopped, SandboxState::kCrashed}) {
    auto back = parse_state(to_string(s));
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, s);
  }
  EXPECT_FALSE(parse_state("paused").ok());
}

}  // namespace
}  // namespace moat::sandbox
