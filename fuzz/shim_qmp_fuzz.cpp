// Fuzzes what a (possibly compromised) QEMU can send the shim on its
// monitor: the QMP channel's line splitting, JSON parsing, matching of
// answers to commands, the events it hands on (MIGRATION's status is what
// a save or restore acts on) and its bounds (shim/qmp_channel.h). The input
// is written to the QEMU end of a socket pair in two pieces, with commands
// waiting for answers, one of them with arguments and a descriptor.
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "shim/qmp_channel.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 0;
  // Room for any input in the socket, so nothing blocks.
  int buf = 1 << 20;
  ::setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  ::setsockopt(fds[0], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  moat::shim::QmpChannel qmp{moat::UniqueFd(fds[0])};
  int answers = 0;
  for (const char* cmd : {"stop", "cont"})
    qmp.execute(cmd, [&](moat::Result<moat::proto::Json>) { ++answers; });
  qmp.execute("getfd", {{"fdname", "moat-state"}}, [&](moat::Result<moat::proto::Json>) { ++answers; }, fds[0]);
  std::size_t events = 0;
  qmp.on_event([&](const std::string& name, const moat::proto::Json& data) {
    // What the shim reads of an event: a name, and a string status in an object.
    ++events;
    if (name == "MIGRATION" && data.is_object()) {
      auto status = data.find("status");
      if (status != data.end() && status->is_string()) events += status->get<std::string>().size() > 0;
    }
  });
  qmp.on_writable();
  std::size_t half = size / 2;
  if (half) (void)!::write(fds[1], data, half);
  qmp.on_readable();
  if (size - half) (void)!::write(fds[1], data + half, size - half);
  qmp.on_readable();
  ::close(fds[1]);
  qmp.on_readable();
  // The QEMU end is closed: every command has had its one answer (QEMU's,
  // or the failure of a broken channel) by now, and no more.
  if (answers != 3) __builtin_trap();
  // Each event is a line of the input.
  if (events > 2 * size) __builtin_trap();
  return 0;
}
