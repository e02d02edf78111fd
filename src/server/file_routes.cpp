// Files in a running sandbox, each path as the guest sees it:
//   GET/PUT/DELETE /v1/sandboxes/{id}/files/{path}  a file's bytes, streamed
//   GET /v1/sandboxes/{id}/stat/{path}               its metadata
//   GET/POST /v1/sandboxes/{id}/dirs/{path}          list / make a directory
//   GET/PUT /v1/sandboxes/{id}/archive/{path}        a tree as a tar / a tar extracted
#include <nlohmann/json.hpp>

#include "moat/json.h"
#include "server/api_error.h"
#include "server/route_support.h"
#include "server/server_state.h"

namespace moat::server {
namespace {

using Json = nlohmann::json;

template <class T>
Result<T> on_running(ServerState& state, const Request& req, const std::function<Result<T>(Sandbox&)>& use) {
  auto info = sandbox_of(req);
  if (!info) return info.error();
  if (info->state != SandboxState::kRunning)
    return make_error("sandbox " + info->name + " is " + to_string(info->state) + ", not running", ENOTCONN);
  return state.handles.with<T>(info->id, use);
}

std::string path_of(const Request& req) {
  auto it = req.params.find("path");
  return it == req.params.end() ? "/" : it->second;
}

// The file's bytes, sent chunked as the guest reads them. The path is
// checked first, so a missing file is a 404 rather than a cut-off 200.
Response read(ServerState& state, Request& req) {
  std::string path = path_of(req);
  auto info = on_running<FileInfo>(state, req, [&](Sandbox& sb) { return sb.stat(path, true); });
  if (!info) return error_response(info.error());
  if (info->type == FileType::kDir)
    return error_response(400, "invalid_argument", path + " is a directory: list it with GET .../dirs" + path);
  if (info->type != FileType::kFile)
    return error_response(400, "invalid_argument", path + " is not a regular file");
  auto sandbox = sandbox_of(req);
  if (!sandbox) return error_response(sandbox.error());
  Response r;
  r.content_type = "application/octet-stream";
  std::string id = sandbox->id;
  r.stream = [&state, id, path](int fd) {
    (void)state.handles.with<bool>(id, [&](Sandbox& sb) -> Result<bool> {
      MOAT_TRY(sb.read_file(path, fd));
      return true;
    });
  };
  return r;
}

// ?mode=0755 (octal), ?append=true, ?exclusive=true.
Result<WriteFileOptions> write_options(const Request& req) {
  WriteFileOptions o;
  if (const std::string* mode = req.query_value("mode")) {
    auto parsed = parse_patch_mode(*mode);
    if (!parsed) return parsed.error().wrap("query mode");
    o.mode = *parsed;
  }
  MOAT_ASSIGN_OR_RETURN(o.append, query_flag(req, "append", false));
  MOAT_ASSIGN_OR_RETURN(o.exclusive, query_flag(req, "exclusive", false));
  return o;
}

// The body goes to a new file beside the target, which replaces the
// target only once the whole body arrived: a client that stops halfway
// leaves the old file as it was. An existing file's mode and owner carry
// over unless ?mode= says otherwise. ?append=true writes in place.
Status upload(Sandbox& sb, const std::string& path, Request& req, WriteFileOptions options) {
  auto cut_short = [&] { return req.body_complete && !req.body_complete(); };
  if (options.append || options.exclusive) {
    MOAT_TRY(sb.write_file(path, req.body_fd, options));
    if (cut_short()) return make_error("the request body ended before its end", EINVAL);
    return ok_status();
  }
  auto existing = sb.stat(path, true);
  if (existing && existing->type == FileType::kFile) {
    if (options.mode == 0) options.mode = existing->mode;
    options.uid = existing->uid;
    options.gid = existing->gid;
  }
  std::string temp = upload_temp_path(path);
  options.exclusive = true;
  Status wrote = sb.write_file(temp, req.body_fd, options);
  if (wrote && cut_short()) wrote = make_error("the request body ended before its end", EINVAL);
  return finish_upload(sb, temp, path, std::move(wrote));
}

Response write(ServerState& state, Request& req) {
  std::string path = path_of(req);
  auto options = write_options(req);
  if (!options) return error_response(options.error());
  auto info = on_running<FileInfo>(state, req, [&](Sandbox& sb) -> Result<FileInfo> {
    MOAT_TRY(upload(sb, path, req, *options));
    return sb.stat(path);
  });
  if (!info) return error_response(info.error());
  return json_response(201, to_json_text(*info));
}

Response remove(ServerState& state, Request& req) {
  std::string path = path_of(req);
  auto recursive = query_flag(req, "recursive", false);
  if (!recursive) return error_response(recursive.error());
  auto done = on_running<bool>(state, req, [&](Sandbox& sb) -> Result<bool> {
    MOAT_TRY(sb.remove(path, *recursive));
    return true;
  });
  if (!done) return error_response(done.error());
  return no_content();
}

Response stat(ServerState& state, Request& req) {
  std::string path = path_of(req);
  auto follow = query_flag(req, "follow", false);
  if (!follow) return error_response(follow.error());
  auto info = on_running<FileInfo>(state, req, [&](Sandbox& sb) { return sb.stat(path, *follow); });
  if (!info) return error_response(info.error());
  return json_ok(to_json_text(*info));
}

Response list(ServerState& state, Request& req) {
  std::string path = path_of(req);
  auto entries = on_running<std::vector<DirEntry>>(state, req, [&](Sandbox& sb) { return sb.list_dir(path); });
  if (!entries) return error_response(entries.error());
  return json_ok("{\"entries\":" + to_json_array_text(*entries) + "}");
}

Response make_dir(ServerState& state, Request& req) {
  std::string path = path_of(req);
  auto parents = query_flag(req, "parents", false);
  if (!parents) return error_response(parents.error());
  std::uint32_t mode = 0755;
  if (const std::string* text = req.query_value("mode")) {
    auto parsed = parse_patch_mode(*text);
    if (!parsed) return error_response(parsed.error().wrap("query mode"));
    mode = *parsed;
  }
  auto done = on_running<FileInfo>(state, req, [&](Sandbox& sb) -> Result<FileInfo> {
    MOAT_TRY(sb.mkdir(path, *parents, mode));
    return sb.stat(path);
  });
  if (!done) return error_response(done.error());
  return json_response(201, to_json_text(*done));
}

// The tree at `path` as a tar, streamed as the guest writes it. Checked
// first, so a missing path is a 404 rather than a cut-off 200. An error
// after the head was sent can only cut the stream short: the client sees
// a chunked body without its end (and a tar without its end marker).
Response read_archive(ServerState& state, Request& req) {
  std::string path = path_of(req);
  auto info = on_running<FileInfo>(state, req, [&](Sandbox& sb) { return sb.stat(path, false); });
  if (!info) return error_response(info.error());
  auto sandbox = sandbox_of(req);
  if (!sandbox) return error_response(sandbox.error());
  Response r;
  r.content_type = "application/x-tar";
  std::string id = sandbox->id;
  r.stream = [&state, id, path](int fd) {
    (void)state.handles.with<ArchiveTotals>(
        id, [&](Sandbox& sb) { return sb.read_archive(path, [fd](std::string_view d) -> Status {
                                 if (!write_all_fd(fd, d)) return make_error("the client left", EPIPE);
                                 return ok_status();
                               }); });
  };
  return r;
}

// The body (a tar) extracted into the existing directory `path`; the
// answer counts what it held.
Response write_archive(ServerState& state, Request& req) {
  std::string path = path_of(req);
  auto totals = on_running<ArchiveTotals>(state, req, [&](Sandbox& sb) -> Result<ArchiveTotals> {
    MOAT_ASSIGN_OR_RETURN(ArchiveTotals t, sb.write_archive(path, req.body_fd));
    if (req.body_complete && !req.body_complete())
      return make_error("the request body ended before its end (" + std::to_string(t.entries) +
                            " entries were extracted)", EINVAL);
    return t;
  });
  if (!totals) return error_response(totals.error());
  return json_ok(Json{{"entries", totals->entries}, {"bytes", totals->bytes}}.dump());
}

}  // namespace

void add_file_routes(ServerState& s) {
  Router& r = s.router;
  auto bind = [&s](Response (*f)(ServerState&, Request&)) { return [&s, f](Request& req) { return f(s, req); }; };
  r.add({"GET", "/v1/sandboxes/{id}/files/{path*}", Route::Body::kNone, false, bind(read)});
  r.add({"PUT", "/v1/sandboxes/{id}/files/{path*}", Route::Body::kStream, false, bind(write)});
  r.add({"DELETE", "/v1/sandboxes/{id}/files/{path*}", Route::Body::kNone, false, bind(remove)});
  r.add({"GET", "/v1/sandboxes/{id}/stat/{path*}", Route::Body::kNone, false, bind(stat)});
  r.add({"GET", "/v1/sandboxes/{id}/dirs/{path*}", Route::Body::kNone, false, bind(list)});
  r.add({"POST", "/v1/sandboxes/{id}/dirs/{path*}", Route::Body::kNone, false, bind(make_dir)});
  r.add({"GET", "/v1/sandboxes/{id}/archive/{path*}", Route::Body::kNone, false, bind(read_archive)});
  r.add({"PUT", "/v1/sandboxes/{id}/archive/{path*}", Route::Body::kStream, false, bind(write_archive)});
}

}  // namespace moat::server
