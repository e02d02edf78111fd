#include "sandbox/file_client.h"

#include <poll.h>

#include <cerrno>

#include "proto/exec.h"

namespace moat::sandbox {
namespace {

constexpr std::uint64_t kGrantBatch = proto::kFileWindow / 4;

std::string describe(const proto::FileRequest& r) { return r.op + " " + r.path; }

Status send_request(AgentConnection& conn, std::uint32_t stream, const proto::FileRequest& r) {
  return conn.send(proto::make_message(stream, r.op, proto::to_payload(r)));
}

// The next message of `stream`, skipping late frames of earlier streams.
Result<proto::Message> next_on(AgentConnection& conn, std::uint32_t stream) {
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto m, conn.receive(-1));
    if (!m) continue;
    if (m->stream == stream) return std::move(*m);
  }
}

}  // namespace

Error error_from_message(const proto::Message& m) {
  // The guest is not trusted: fields of the wrong type must not throw.
  auto [code, text] = proto::parse_error(m.payload, "EIO");
  int err = proto::errno_from_name(code);
  if (!err) {
    // Codes of the relay itself (sandbox_stopped, too_many_streams, ...).
    return make_error(text + " (" + code + ")", EIO);
  }
  return make_error(text, err);
}

Result<proto::Json> file_request(AgentConnection& conn, const proto::FileRequest& req) {
  std::uint32_t stream = conn.next_stream();
  MOAT_TRY(send_request(conn, stream, req));
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto m, next_on(conn, stream));
    if (m.type == proto::msg::kResult) return m.payload;
    if (m.type == proto::msg::kError) {
      if (m.flags & proto::kFlagEndStream) return error_from_message(m);
      continue;
    }
    return make_error("unexpected \"" + m.type + "\" reply to " + describe(req), EPROTO);
  }
}

Result<proto::FileStat> stat_file(AgentConnection& conn, const std::string& path, bool follow) {
  proto::FileRequest r;
  r.op = std::string(proto::msg::kStat);
  r.path = path;
  r.follow = follow;
  MOAT_ASSIGN_OR_RETURN(auto p, file_request(conn, r));
  auto it = p.find("stat");
  if (it == p.end()) return make_error("stat reply has no \"stat\"", EPROTO);
  return proto::parse_file_stat(*it);
}

Result<std::vector<proto::DirEntry>> list_dir(AgentConnection& conn, const std::string& path) {
  // A listing is held in memory by the caller anyway; this bounds what a
  // hostile guest can make the host hold.
  constexpr std::size_t kMaxEntries = 1000000;
  proto::FileRequest r;
  r.op = std::string(proto::msg::kList);
  r.path = path;
  std::uint32_t stream = conn.next_stream();
  MOAT_TRY(send_request(conn, stream, r));
  std::vector<proto::DirEntry> out;
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto m, next_on(conn, stream));
    if (m.type == proto::msg::kEntries) {
      MOAT_ASSIGN_OR_RETURN(auto batch, proto::parse_entries(m.payload));
      if (out.size() + batch.size() > kMaxEntries) {
        (void)conn.send(proto::make_message(stream, proto::msg::kCancel));
        return make_error(path + ": more than " + std::to_string(kMaxEntries) + " entries", E2BIG);
      }
      for (auto& e : batch) out.push_back(std::move(e));
    } else if (m.type == proto::msg::kResult) {
      return out;
    } else if (m.type == proto::msg::kError) {
      if (m.flags & proto::kFlagEndStream) return error_from_message(m);
    } else {
      return make_error("unexpected \"" + m.type + "\" in a listing", EPROTO);
    }
  }
}

// ---- DataReceiver ----

DataReceiver::DataReceiver(AgentConnection& conn, proto::FileRequest req)
    : conn_(conn), req_(std::move(req)) {}

DataReceiver::~DataReceiver() {
  if (started_ && !done_) (void)conn_.send(proto::make_message(stream_, proto::msg::kCancel));
}

Result<std::optional<std::string>> DataReceiver::next() {
  if (done_) return std::optional<std::string>();
  if (!started_) {
    stream_ = conn_.next_stream();
    MOAT_TRY(send_request(conn_, stream_, req_));
    started_ = true;
  }
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto m, next_on(conn_, stream_));
    if (m.type == proto::msg::kData) {
      MOAT_ASSIGN_OR_RETURN(auto d, proto::data_of(m));
      ungranted_ += d.size();
      // Granting as chunks are handed out keeps at most one window in flight.
      if (ungranted_ >= kGrantBatch) {
        MOAT_TRY(conn_.send(proto::make_message(stream_, proto::msg::kWindow, proto::Json{{"n", ungranted_}})));
        ungranted_ = 0;
      }
      if (d.empty()) continue;
      return std::optional<std::string>(std::move(d));
    }
    if (m.type == proto::msg::kResult) {
      done_ = true;
      MOAT_ASSIGN_OR_RETURN(result_, proto::parse_file_result(m.payload));
      return std::optional<std::string>();
    }
    if (m.type == proto::msg::kError) {
      if (!(m.flags & proto::kFlagEndStream)) continue;
      done_ = true;
      return error_from_message(m);
    }
    done_ = true;
    return make_error("unexpected \"" + m.type + "\" in " + describe(req_), EPROTO);
  }
}

// ---- DataSender ----

DataSender::DataSender(AgentConnection& conn, proto::FileRequest req) : conn_(conn), req_(std::move(req)) {}

DataSender::~DataSender() {
  if (started_ && !done_) (void)conn_.send(proto::make_message(stream_, proto::msg::kCancel));
}

Status DataSender::start() {
  stream_ = conn_.next_stream();
  MOAT_TRY(send_request(conn_, stream_, req_));
  started_ = true;
  credit_ = proto::kFileWindow;
  return ok_status();
}

Status DataSender::handle(const proto::Message& m) {
  if (m.stream != stream_) return ok_status();
  if (m.type == proto::msg::kWindow) {
    MOAT_ASSIGN_OR_RETURN(auto n, proto::get_uint(m.payload, "n", 1ull << 32));
    credit_ += n;
  } else if (m.type == proto::msg::kResult) {
    done_ = true;
    MOAT_ASSIGN_OR_RETURN(auto r, proto::parse_file_result(m.payload));
    result_ = r;
  } else if (m.type == proto::msg::kError) {
    if (m.flags & proto::kFlagEndStream) {
      done_ = true;
      error_ = error_from_message(m);
    }
  }
  return ok_status();
}

Status DataSender::drain_nonblocking() {
  while (true) {
    MOAT_ASSIGN_OR_RETURN(auto m, conn_.receive(0));
    if (!m) return ok_status();
    MOAT_TRY(handle(*m));
  }
}

Status DataSender::send(std::string_view data) {
  if (!started_) MOAT_TRY(start());
  while (!data.empty()) {
    MOAT_TRY(drain_nonblocking());
    if (error_) return *error_;
    if (done_) return make_error(describe(req_) + ": the agent ended the stream early", EPROTO);
    while (credit_ == 0) {
      MOAT_ASSIGN_OR_RETURN(auto m, conn_.receive(-1));
      if (m) MOAT_TRY(handle(*m));
      if (error_) return *error_;
      if (done_) return make_error(describe(req_) + ": the agent ended the stream early", EPROTO);
    }
    std::size_t n = static_cast<std::size_t>(
        std::min<std::uint64_t>({credit_, proto::kMaxDataChunk, data.size()}));
    MOAT_TRY(conn_.send_data(stream_, proto::msg::kData, data.substr(0, n)));
    credit_ -= n;
    data.remove_prefix(n);
  }
  return ok_status();
}

Result<proto::FileResult> DataSender::finish() {
  if (!started_) MOAT_TRY(start());
  MOAT_TRY(drain_nonblocking());
  if (!done_) MOAT_TRY(conn_.send(proto::make_message(stream_, proto::msg::kEnd)));
  while (!done_) {
    MOAT_ASSIGN_OR_RETURN(auto m, conn_.receive(-1));
    if (m) MOAT_TRY(handle(*m));
  }
  if (error_) return *error_;
  if (!result_) return make_error(describe(req_) + ": no result", EPROTO);
  return *result_;
}

}  // namespace moat::sandbox
