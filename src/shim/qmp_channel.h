// QEMU's machine protocol (QMP) on a socket QEMU inherits: how the shim
// pauses and resumes the VM (`stop`, `cont`) and saves or restores its state
// (`migrate` to, `migrate-incoming` from a descriptor it hands QEMU).
//
// The protocol: QEMU greets with {"QMP": ...}, the client answers
// `qmp_capabilities`, then each command {"execute": NAME} gets exactly one
// {"return": ...} or {"error": {"class", "desc"}}, in the order sent;
// {"event": ...} lines come in between at any time. Each message is one line.
// A descriptor travels with a command as SCM_RIGHTS on its first byte
// (QEMU's `getfd`).
//
// Threat model: QEMU runs the guest, and a guest that broke out into QEMU
// writes whatever it likes here. Lines are bounded (kMaxQmpLine), answers
// are matched to commands by order only, nothing in them is acted on beyond
// "it worked" or "it failed with this text", and a line that is not a JSON
// object, or an answer nobody waits for, breaks the channel: every waiting
// command then fails, and later ones fail at once.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <string>

#include "proto/message.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::shim {

inline constexpr std::size_t kMaxQmpLine = 64 * 1024;
// Commands sent and not answered yet, at most.
inline constexpr std::size_t kMaxQmpPending = 64;

class QmpChannel {
 public:
  // QEMU's answer to a command: its "return" value, or why it failed.
  using Done = std::function<void(Result<proto::Json>)>;

  QmpChannel() = default;
  // `fd`: the shim's end of the socket (made non-blocking here).
  explicit QmpChannel(UniqueFd fd);

  int fd() const { return fd_.get(); }
  bool broken() const { return !broken_reason_.empty(); }

  // An event QEMU sent: its name and its "data" (an object, or null).
  using OnEvent = std::function<void(const std::string& name, const proto::Json& data)>;

  // Sends {"execute": command}; `done` runs from on_readable() with QEMU's
  // answer, or at once with an error if the channel is broken.
  void execute(const std::string& command, Done done);
  // The same with {"arguments": arguments}, and `fd` (if >= 0) sent along
  // (a duplicate is kept until it is sent).
  void execute(const std::string& command, proto::Json arguments, Done done, int fd = -1);
  // Events from now on go to `on_event` (one at a time; the data is QEMU's
  // word, bounded by the line limit, to be checked by whoever reads it).
  void on_event(OnEvent on_event) { on_event_ = std::move(on_event); }

  bool wants_write() const { return !out_.empty() && !broken(); }
  // Reads what QEMU sent and runs the callbacks of the commands it answered.
  void on_readable();
  void on_writable();
  // The channel ends (QEMU went away): every waiting command fails.
  void close(const std::string& why);

 private:
  void handle_line(const std::string& line);
  void fail_all(const std::string& why);

  // One command's bytes, and the descriptor that goes with its first byte.
  struct Outgoing {
    std::string text;
    UniqueFd fd;
  };
  bool send_front();

  UniqueFd fd_;
  std::string in_;
  std::deque<Outgoing> out_;
  OnEvent on_event_;
  std::deque<Done> waiting_;  // one per command sent, oldest first
  std::string broken_reason_;
};

}  // namespace moat::shim
