// The client side of the file-operation streams (docs/protocol.md): one
// request per stream; data going out is sent only within the window the agent
// grants, data coming in is acknowledged as the caller consumes it, so a
// transfer of any size keeps memory bounded on both sides. Agent errors come
// back as Errors whose code is the errno the guest reported.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/file_ops.h"
#include "sandbox/agent_connection.h"

namespace moat::sandbox {

// Requests answered by one `result` (stat, mkdir, remove, rename, chmod,
// chown); returns the result payload.
Result<proto::Json> file_request(AgentConnection& conn, const proto::FileRequest& req);

Result<proto::FileStat> stat_file(AgentConnection& conn, const std::string& path, bool follow);
Result<std::vector<proto::DirEntry>> list_dir(AgentConnection& conn, const std::string& path);

// Receives the data of a `read` or `tar_out` stream chunk by chunk.
class DataReceiver {
 public:
  DataReceiver(AgentConnection& conn, proto::FileRequest req);
  ~DataReceiver();
  DataReceiver(const DataReceiver&) = delete;
  DataReceiver& operator=(const DataReceiver&) = delete;

  // Next chunk; nullopt once the agent reported the end (see result()).
  Result<std::optional<std::string>> next();
  const proto::FileResult& result() const { return result_; }

 private:
  AgentConnection& conn_;
  proto::FileRequest req_;
  std::uint32_t stream_ = 0;
  bool started_ = false;
  bool done_ = false;
  std::uint64_t ungranted_ = 0;
  proto::FileResult result_;
};

// Sends the data of a `write` or `tar_in` stream.
class DataSender {
 public:
  DataSender(AgentConnection& conn, proto::FileRequest req);
  ~DataSender();
  DataSender(const DataSender&) = delete;
  DataSender& operator=(const DataSender&) = delete;

  // Sends bytes, waiting for window as needed; fails early when the agent
  // reported an error (ENOSPC, say) meanwhile.
  Status send(std::string_view data);
  // No more data: waits for the agent's result.
  Result<proto::FileResult> finish();

 private:
  Status start();
  Status handle(const proto::Message& m);
  Status drain_nonblocking();

  AgentConnection& conn_;
  proto::FileRequest req_;
  std::uint32_t stream_ = 0;
  bool started_ = false;
  bool done_ = false;
  std::uint64_t credit_ = 0;
  std::optional<Error> error_;
  std::optional<proto::FileResult> result_;
};

// The Error an `error` message describes (code: the errno it names).
Error error_from_message(const proto::Message& m);

}  // namespace moat::sandbox
