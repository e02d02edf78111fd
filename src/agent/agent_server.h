// The agent's protocol server: one event loop over the host channel, the
// processes it runs, and their timers. Single-threaded on purpose: PID 1 must
// never deadlock, and poll() over a few dozen fds costs nothing.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "agent/disk_freezer.h"
#include "agent/exec_session.h"
#include "agent/file_server.h"
#include "agent/outbox.h"
#include "proto/frame.h"
#include "proto/message.h"
#include "proto/port_watch.h"
#include "util/unique_fd.h"

namespace moat::agent {

inline constexpr std::size_t kMaxSessions = 256;

class AgentServer {
 public:
  explicit AgentServer(UniqueFd channel);

  // A boot-time helper process that must finish before the first command.
  void set_pending_setup(pid_t pid) { pending_setup_ = pid; }
  // Whether the guest has a network (moat.net=1): /etc/resolv.conf, written
  // again with the other identity files when a restored guest gets a name.
  void set_network(bool network) { network_ = network; }

  // Runs until the host asks for shutdown; returns then (the caller powers off).
  void run();

 private:
  void send(proto::Message m);
  void flush_output();
  void read_channel();
  // Handles every complete frame the decoder holds; false if the channel's
  // bytes had to be dropped (an oversize frame).
  bool handle_frames();
  void handle_frame(const proto::Frame& frame);
  void handle_control(const proto::Message& m);
  void start_exec(const proto::Message& m);
  void start_freeze(const proto::Message& m);
  // A message on the freezing stream: thaw (or cancel) ends it.
  void on_freeze_message(const proto::Message& m);
  void reap_children();
  void drop_finished_sessions();
  // A `hello` from the host: its clock, and the end of a quiet; a restored
  // guest's new host also ends every stream of the old one.
  void on_host_hello(const proto::Json& payload);
  void end_every_stream();
  // `halt` (proto/message.h): every process killed, the shared filesystems
  // (or all) flushed, `halted` sent; the host then ends the VM.
  void halt(const proto::Json& payload);
  // A stop on its way: a freeze held is thawed and its stream ended.
  void end_freeze_for_stop();
  // The port watch (proto/port_watch.h): `watch_ports` sets it, each look
  // reports the listening ports when they changed.
  void on_watch_ports(const proto::Json& payload);
  void look_at_ports(std::chrono::steady_clock::time_point now);

  UniqueFd channel_;
  UniqueFd signal_fd_;
  proto::FrameDecoder decoder_;
  Outbox out_;
  std::map<std::uint32_t, std::unique_ptr<ExecSession>> sessions_;
  std::map<pid_t, std::uint32_t> pid_streams_;
  DiskFreezer freezer_;
  FileServer files_{out_};
  bool shutdown_requested_ = false;
  bool channel_eof_ = false;
  // Between `quiesce` and the next `hello` (proto/message.h): nothing is
  // produced, only the control stream is read.
  bool quiesced_ = false;
  bool network_ = false;
  pid_t pending_setup_ = -1;
  std::chrono::milliseconds watch_interval_{0};  // 0: not watching
  std::chrono::steady_clock::time_point next_port_look_;
  std::optional<proto::PortSet> reported_ports_;  // nullopt: none reported since the watch began
};

}  // namespace moat::agent
