// moat-shim: one detached process per sandbox. It starts QEMU, waits for the
// agent's hello, relays the agent channel to clients on a unix control
// socket, stops the VM gracefully then forcefully, and leaves nothing behind.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "proto/frame.h"
#include "proto/frame_peek.h"
#include "proto/message.h"
#include "shim_contract/capped_log.h"
#include "netstack/network_service.h"
#include "shim/event_loop.h"
#include "shim/output_pump.h"
#include "shim/qemu_jail.h"
#include "shim/qemu_process.h"
#include "shim/qmp_channel.h"
#include "shim_contract/shim_config.h"
#include "shim/shim_log.h"
#include "shim/stream_router.h"
#include "shim/volume_servers.h"
#include "util/unique_fd.h"

namespace moat::shim {

// The reason last_exit.json gives for a shim that ended after saving the
// VM to disk (memory_save.cpp).
inline constexpr char kSavedToDiskReason[] = "paused to disk";

class Shim {
 public:
  explicit Shim(ShimConfig cfg);

  // Boots the VM and serves until it stops. `ready_fd` (or -1) receives
  // "ok\n" once clients may connect, or "error: ...\n" if the boot failed.
  // Returns the process exit code.
  int run(int ready_fd);

 private:
  using Clock = std::chrono::steady_clock;

  struct Client {
    ClientId id = 0;
    UniqueFd fd;
    proto::FrameDecoder decoder;
    std::string out;
    bool owner = false;
    bool closing = false;  // drop once `out` is flushed
  };

  Status prepare();
  Status open_outputs(UniqueFd& console_qemu_end, UniqueFd& output_qemu_end);
  Status boot();
  Status watch_outputs();
  Status watch_boot_channels(std::optional<Status>& verdict);
  void unwatch_boot_channels();
  std::optional<Status> read_agent_hello();
  Status qemu_exited_during_boot();
  void serve();
  Status watch_serving_channels();
  void update_interest();
  void on_agent_events(EventLoop::Events events);
  void on_client_events(ClientId id, EventLoop::Events events);
  void on_signal();
  void close_agent();
  void accept_clients();
  void refuse_client();
  void read_client(Client& c);
  void handle_client_frame(Client& c, const proto::FrameHeader& h, std::string_view body);
  void refuse_version(Client& c, std::uint32_t stream);
  void relay_to_agent(Client& c, const proto::FrameHeader& h, std::string_view body, std::string_view type,
                      const proto::Message* decoded);
  void handle_client_control(Client& c, const proto::Message& m);
  // `network_update` (proto/message.h): applies the new policy and answers
  // `ok`, or `error` with nothing changed.
  void handle_network_update(Client& c, const proto::Message& m);
  // `stats` (proto/message.h): answered with the host's counters and the
  // guest's memory.
  void set_paused(Client& c, bool pause);
  // A `hello` to the agent with the host's time: after a resume, at the end
  // of a quiet, and (`restored`) to a guest restored from a saved state.
  void send_host_hello(bool restored);
  // --publish-listening: the agent's watch and its reports.
  static constexpr std::uint32_t kPortWatchIntervalMs = 1000;
  bool publishes_listening() const { return network_ && !cfg_.network.publish_listening.empty(); }
  void send_port_watch(bool restored);
  void on_guest_listening(const proto::Json& payload);
  // Sets paused_ and writes or removes the paused marker.
  void mark_paused(bool paused);
  // pause --to-disk and restore (memory_save.cpp).
  // Saves the VM's state to `path` (written as path.tmp, renamed when
  // whole). `end_after`: QEMU and the shim end (pause --to-disk); else the
  // VM stays paused with the agent quiet until a resume (memory snapshot).
  // `ram_path`: the RAM goes there instead (copied from guest_ram_, the
  // migration skipping it), when the shim has its memfd.
  // `resume_on_leave` (with !end_after): resume_on_leave_ once saved.
  void save_to_disk(Client& c, const std::string& path, bool end_after, const std::string& ram_path = "",
                    bool resume_on_leave = false);
  void on_agent_quiesced();
  void on_migration_status(const std::string& status);
  void finish_save();
  void fail_save(const std::string& why);
  void check_save_deadline();
  void remove_unfinished_save();
  Status start_restore(int state_fd);
  // The guest's RAM: a memfd of the shim's (guest_ram_), or on a restore
  // from a memory snapshot's RAM file, that file.
  Status prepare_guest_ram();
  // Copies guest_ram_ into `path` (memory snapshots), sparse.
  Status copy_guest_ram(const std::string& path);
  void ask_guest_for_stats(Client& c);
  void answer_stats(const proto::Json& guest);
  void drop_client(ClientId id);
  void read_agent();
  void handle_agent_frame(const proto::Frame& f);
  void flush_agent();
  void flush_client(Client& c);
  void send_to_agent(const proto::Message& m);
  void send_to_client(Client& c, const proto::Message& m);
  void begin_stop(const std::string& why);
  // A stop that kills instead of powering off (a discarded disk, or no
  // grace asked): the agent kills the guest's processes and flushes what
  // outlives the VM (proto/message.h: halt), then QEMU is killed; at once
  // when nothing outlives it.
  void halt_guest();
  void kill_qemu();
  void on_qemu_exit();
  std::string qemu_exit_text() const;
  Status restrict_system_calls();
  void cleanup();
  std::string console_tail(std::size_t max_bytes) const;
  std::string qemu_log_tail(std::size_t max_bytes) const;
  void log(const std::string& line);
  void pump_output(OutputPump& pump);
  void drain_outputs();
  Status take_lock();
  void note_exec(std::uint32_t guest_stream, const proto::Message& exec);
  void note_stream_end(const proto::Frame& f);
  void check_limits();
  int next_limit_timeout_ms() const;
  void finish(bool clean, const std::string& reason);
  // The network (shim_network.cpp).
  Status start_network(UniqueFd& qemu_end);
  Status watch_network_log();
  void network_log(const std::string& line);  // any thread
  void drain_network_log();
  void note_network_denial(const std::string& line);
  void flush_network_event(bool force);

  ShimConfig cfg_;
  ShimLog log_;
  CappedLog exec_log_;
  OutputPump console_;      // the guest's serial console into console.log
  OutputPump qemu_output_;  // QEMU's stdout and stderr into qemu.log
  EventLoop loop_;          // every descriptor the shim waits on, boot and serve
  std::unique_ptr<VolumeServers> volumes_;  // declared before qemu_: outlives it
  std::unique_ptr<netstack::NetworkService> network_;  // likewise
  // Lines from the network thread, for shim.log and the exec history; the
  // eventfd wakes the loop to write them.
  UniqueFd network_log_wake_;
  std::mutex network_log_mu_;
  std::vector<std::string> network_log_lines_;  // under network_log_mu_
  std::uint64_t network_log_dropped_ = 0;       // under network_log_mu_
  // --on-secret-violation block-and-stop: set by the interceptor's thread,
  // acted on when the log is drained.
  std::atomic<bool> stop_for_secret_violation_{false};
  // Denials become events of moat.db (moat events), at most one every
  // kNetworkEventGap: the first denial since the last event, and a count
  // of the rest.
  std::string network_event_;
  std::uint64_t network_event_more_ = 0;
  std::optional<Clock::time_point> last_network_event_;
  // Its uid lease lasts as long as the shim (shim/qemu_jail.h).
  QemuJail qemu_jail_;
  std::optional<QemuProcess> qemu_;
  QmpChannel monitor_;  // QEMU's machine protocol: pause and resume, save and restore
  // The guest's RAM, which QEMU maps shared (vm::VmSpec::ram_fd); none when
  // it maps a memory snapshot's RAM file instead.
  UniqueFd guest_ram_;
  bool paused_ = false;
  // A save to disk under way (memory_save.cpp).
  enum class SaveStep { kQuiescing, kMigrating };
  struct SaveToDisk {
    ClientId client = 0;
    bool was_paused = false;
    bool vcpus_stopped = false;
    SaveStep step = SaveStep::kQuiescing;
    std::string path;  // where the state goes (written as path + ".tmp")
    // A memory snapshot's RAM file, or "": the RAM goes into `path` with
    // the devices' state.
    std::string ram_path;
    bool end_after = true;
    // pause {"resume_on_leave": true}: the VM runs again if the client
    // leaves before its resume (resume_on_leave_).
    bool resume_on_leave = false;
    UniqueFd file;  // path + ".tmp"
    Clock::time_point started{};
    Clock::time_point deadline{};
  };
  std::optional<SaveToDisk> saving_;
  // The client whose departure resumes the VM its save left standing: a
  // memory snapshot's maker killed between its save and its resume must not
  // leave the sandbox paused for good. Any pause or resume ends the lease.
  std::optional<ClientId> resume_on_leave_;
  void resume_after_departed_saver();
  // What a resume does besides QEMU's `cont`: the marker, and the agent's
  // clock and quiet (a hello).
  void note_running_again();
  bool saved_ = false;        // the state is on disk; the shim is ending
  bool agent_quiet_ = false;  // a quiesce was sent: nothing more goes to the agent
  // A restore under way during the boot.
  struct Restore {
    bool completed = false;
    bool continued = false;
    std::string failure;
    // When QEMU had read the state and when the vCPUs ran again, for the log.
    Clock::time_point loaded{};
    Clock::time_point running{};
  };
  std::optional<Restore> restoring_;
  UniqueFd agent_fd_;
  UniqueFd listen_fd_;
  UniqueFd spare_fd_;  // given up to refuse a client when descriptors run out
  UniqueFd signal_fd_;
  proto::FrameDecoder agent_decoder_;
  std::string agent_out_;
  proto::Json agent_hello_;
  std::map<ClientId, std::unique_ptr<Client>> clients_;
  ClientId next_client_ = 1;
  bool owner_assigned_ = false;
  StreamRouter router_;
  bool stopping_ = false;
  bool done_ = false;
  bool qemu_exited_ = false;  // its pidfd fired; handled after the wake-up's output is saved
  std::optional<Clock::time_point> stop_deadline_;
  bool killed_ = false;
  bool halting_ = false;  // a halt was sent; its `halted` kills QEMU
  UniqueFd lock_fd_;
  // How this run ends, for last_exit.json: the first reason wins.
  std::optional<ShimExit> exit_;
  Clock::time_point booted_at_{};     // serving began: the lifetime and owner limits count from here
  Clock::time_point vm_started_at_{};  // QEMU launched: what stats report as uptime (never 0 once ready)
  Clock::time_point idle_since_{};
  std::uint64_t execs_started_ = 0;
  // Clients waiting for a stats answer, in order, until the agent answers
  // or stats_due_ passes.
  std::vector<ClientId> pending_stats_;
  std::optional<Clock::time_point> stats_due_;
  static constexpr auto kGuestStatsWait = std::chrono::milliseconds(1000);
  // How long a killed QEMU has to be reaped before the shim stops waiting.
  static constexpr int kKillGraceMs = 2000;
  // How long a halt may take (processes gone, files flushed) before QEMU is
  // killed anyway: a sync of a large dirty disk is the long case.
  static constexpr int kHaltWaitMs = 10000;
  static constexpr std::size_t kMaxPendingStats = 1024;
  Clock::time_point last_refusal_log_{};
  // The write end of the starter's verdict pipe until the verdict is sent.
  // Its reader gone means the command that started the sandbox died.
  int ready_fd_ = -1;
};

}  // namespace moat::shim
