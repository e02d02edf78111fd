// A client's connection to a sandbox's control socket: framed messages over a
// unix socket to the shim, which relays exec streams to the agent.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

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
  // Sends the frame of make_data_message(stream, type, bytes) without
  // building the message (proto/data_frame.h): file and stdin data.
  Status send_data(std::uint32_t stream, std::string_view type, std::string_view bytes);
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
  Status send_buffered();

  UniqueFd fd_;
  proto::FrameDecoder decoder_;
  // The frame being sent, kept so that its allocation is reused.
  std::string out_;
  std::uint32_t next_stream_ = 1;
  std::string agent_version_;
};

}  // namespace moat::sandbox
