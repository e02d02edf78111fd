// The agent's file operations. One-shot requests (stat, mkdir, remove,
// rename, chmod, chown) are answered at once; streaming ones (list, read,
// tar_out going out; write, tar_in coming in) live as streams driven by the
// agent's event loop: outgoing data only within the window the host grants,
// incoming data only within the window the agent grants as it writes.
// Errors end the stream with an errno name ("ENOSPC") and a message.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string_view>

#include "agent/outbox.h"
#include "proto/file_ops.h"
#include "proto/message.h"

namespace moat::agent {

inline constexpr std::size_t kMaxFileStreams = 64;

class FileStream {
 public:
  virtual ~FileStream() = default;
  virtual void on_message(const proto::Message& m) = 0;
  // The bytes of a `data` message (decoded on the fast path).
  virtual void on_data(std::string_view /*data*/) {}
  // True while the stream has something to send and window to send it in.
  virtual bool wants_to_produce() const { return false; }
  // Sends at most about `budget` bytes.
  virtual void produce(std::size_t /*budget*/) {}
  bool finished() const { return finished_; }

 protected:
  bool finished_ = false;
};

class FileServer {
 public:
  explicit FileServer(Outbox& out) : out_(out) {}

  // A request (proto::is_file_request(m.type)) opening stream m.stream.
  void open(const proto::Message& m);
  // A message on an open file stream; false if the stream is not ours.
  bool on_message(const proto::Message& m);
  // A `data` message's bytes for `stream`; false if the stream is not ours.
  bool on_data(std::uint32_t stream, std::string_view data);
  bool has_stream(std::uint32_t stream) const { return streams_.count(stream) != 0; }
  bool wants_to_produce() const;
  // One round of output over every stream that has window.
  void produce(std::size_t budget_per_stream);
  // Every stream ends without a word to the host (a new host does not know
  // them): files are closed, nothing more is sent.
  void end_all() { streams_.clear(); }

 private:
  void drop_finished();

  Outbox& out_;
  std::map<std::uint32_t, std::unique_ptr<FileStream>> streams_;
};

}  // namespace moat::agent
