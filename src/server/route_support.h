// Small pieces every route file uses: query flags checked like the body's
// fields, the sandbox a path names, writing a streamed body.
#pragma once

#include <string>
#include <string_view>

#include "moat/duration.h"
#include "moat/result.h"
#include "moat/sandbox.h"
#include "moat/sandboxes.h"
#include "server/http_types.h"

namespace moat::server {

// ?name=true|false|1|0 (absent: `fallback`); EINVAL naming it otherwise.
Result<bool> query_flag(const Request& req, const std::string& name, bool fallback);
// ?name=SECONDS (fractions allowed, at most a day); absent: `fallback`.
Result<Duration> query_seconds(const Request& req, const std::string& name, Duration fallback);
Result<std::uint64_t> query_number(const Request& req, const std::string& name, std::uint64_t fallback,
                                   std::uint64_t max);

// The record of the sandbox {id} names (an id or a name).
Result<SandboxInfo> sandbox_of(const Request& req);

// The whole of `bytes` to `fd`; false once the reader is gone.
bool write_all_fd(int fd, std::string_view bytes);
// Whether the reader of the stream pipe `fd` left (POLLERR on the write
// end), learnt without writing: a follow with nothing to send stops on it.
bool reader_gone(int fd);

// Server-sent events when the client asked for them (Accept:
// text/event-stream), else NDJSON: one JSON text a line.
bool wants_event_stream(const Request& req);
std::string stream_content_type(const Request& req);
// One record of such a stream: "data: JSON\n\n" for server-sent events, else "JSON\n".
std::string stream_record(bool event_stream, const std::string& json);

// Uploads go to a new file beside their target that replaces the target
// only once the whole body arrived: the temporary name for `path`, and the
// end of such an upload (the rename when `wrote` is ok, else the temporary
// file removed), which returns how the upload went.
std::string upload_temp_path(const std::string& path);
Status finish_upload(Sandbox& sb, const std::string& temp, const std::string& path, Status wrote);

Response json_ok(std::string body);
Response no_content();

}  // namespace moat::server
