// A client's connection to a sandbox's control socket: framed messages over a
// unix socket to the shim, which relays exec streams to the agent.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "proto/frame.h"
#include "proto/message.h"
#include "util/result.h"
#include "util/unique_fd.h"

namespace moat::sandbox {

class AgentConnection {
 public:
  // Connects and performs the version handshake.
  static Result<AgentConnection> connect(const std::string& socket_path);

  Status send(const proto::Message& m);
  // Next message, waiting up to timeout_ms (-1: forever). An empty optional
  // means the timeout passed; an Error means the connection failed or closed.
  Result<std::optional<proto::Message>> receive(int timeout_ms);

  int fd() const { return fd_.get(); }
  // Reads what is available on the socket into the decoder (after poll).
  Status pump();
  // A decoded message already buffered, if any.
  Result<std::optional<proto::Message>> buffered();

  std::uint32_t next_stream() { return next_stream_++; }
  const std::string& agent_version() const { return agent_version_; }
  void close() { fd_.reset(); }

 private:
  UniqueFd fd_;
  proto::FrameDecoder decoder_;
  std::uint32_t next_stream_ = 1;
  std::string agent_version_;
};

}  // namespace moat::sandbox
