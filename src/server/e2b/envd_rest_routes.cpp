// envd's REST side (envd.yaml in e2b-dev/E2B spec/envd): GET /health,
// GET /envs, and /files — download a file, upload one or several
// (multipart/form-data, or the body itself as application/octet-stream).
// An upload goes to a new file beside its target that replaces the target
// only once the whole body arrived, so a client that stops halfway leaves
// the old file as it was. Errors are {"code", "message"} with the status.
#include <fcntl.h>
#include <unistd.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "server/e2b/e2b_service.h"
#include "server/e2b/entry_info.h"
#include "server/e2b/multipart_reader.h"
#include "server/route_support.h"
#include "server/server_state.h"
#include "util/base64.h"
#include "util/unique_fd.h"
#include "util/write_all.h"

namespace moat::server::e2b {
namespace {

using Json = nlohmann::json;

// envd's REST calls carry the same credentials as its Connect calls; the
// user is ?username= when given.
Result<EnvdCall> rest_call(E2bService& svc, Request& req) {
  if (const std::string* user = req.query_value("username"); user && !user->empty()) {
    std::string basic = std::string(*user) + ":";
    req.headers["authorization"] = "Basic " + base64_encode(basic);
  }
  ConnectError refusal;
  auto call = svc.envd_call(req, refusal);
  if (!call) {
    int status = refusal.code == ConnectCode::kUnauthenticated ? 401
                 : refusal.code == ConnectCode::kUnavailable   ? 502
                                                               : http_status_of(refusal.code);
    return Error{status, refusal.message};  // the HTTP status rides in `code` here
  }
  return call;
}

Response rest_refusal(const Error& e) { return api_error(e.code, e.message); }

Response health(E2bService& svc, Request& req) {
  auto call = rest_call(svc, req);
  if (!call) return rest_refusal(call.error());
  return no_content();
}

Response envs(E2bService& svc, Request& req) {
  auto call = rest_call(svc, req);
  if (!call) return rest_refusal(call.error());
  Response r;
  r.body = Json(call->sandbox.env_vars).dump();
  return r;
}

Result<std::string> query_path(const Request& req, const EnvdCall& call) {
  const std::string* p = req.query_value("path");
  if (!p || p->empty()) return make_error("the query parameter path is missing", EINVAL);
  return resolve_guest_path(*p, call.user.home);
}

Response download(E2bService& svc, Request& req) {
  auto call = rest_call(svc, req);
  if (!call) return rest_refusal(call.error());
  auto path = query_path(req, *call);
  if (!path) return api_error(path.error());
  std::string id = call->sandbox.id;
  auto info = svc.handles.with<FileInfo>(id, [&](Sandbox& sb) { return sb.stat(*path, true); });
  if (!info) return api_error(info.error());
  if (info->type == FileType::kDir) return api_error(400, "path is a directory: " + *path);
  if (info->type != FileType::kFile) return api_error(400, "path is not a regular file: " + *path);
  Response r;
  r.content_type = "application/octet-stream";
  r.headers.emplace_back("Content-Disposition", "attachment; filename=\"" + base_name(*path) + "\"");
  std::string p = *path;
  r.stream = [self = svc.shared_from_this(), id, p](int fd) {
    (void)self->handles.with<bool>(id, [&](Sandbox& sb) -> Result<bool> {
      MOAT_TRY(sb.read_file(p, fd));
      return true;
    });
  };
  return r;
}

std::string parent_of(const std::string& path) {
  std::size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

// `fill` writes the file's bytes to the fd it gets and returns how that
// went; the file lands at `path` only if it did.
Status store(E2bService& svc, const EnvdCall& call, const std::string& path,
             const std::function<Status(int write_fd)>& fill) {
  std::string parent = parent_of(path);
  auto there = svc.handles.with<FileInfo>(call.sandbox.id, [&](Sandbox& sb) { return sb.stat(parent, true); });
  if (!there) MOAT_TRY(svc.make_dirs_as(call, parent));
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return make_error("pipe", errno);
  UniqueFd read_end(fds[0]), write_end(fds[1]);
  std::string temp = upload_temp_path(path);
  WriteFileOptions o;
  o.mode = 0644;
  o.uid = call.user.uid;
  o.gid = call.user.gid;
  o.exclusive = true;
  Status wrote;
  std::thread writer([&] {
    auto done = svc.handles.with<bool>(call.sandbox.id, [&](Sandbox& sb) -> Result<bool> {
      MOAT_TRY(sb.write_file(temp, read_end.get(), o));
      return true;
    });
    if (!done) wrote = done.error();
    read_end.reset();  // a filler still writing sees EPIPE
  });
  Status filled = fill(write_end.get());
  write_end.reset();
  writer.join();
  if (!filled) wrote = filled;
  auto done = svc.handles.with<bool>(call.sandbox.id, [&](Sandbox& sb) -> Result<bool> {
    MOAT_TRY(finish_upload(sb, temp, path, std::move(wrote)));
    return true;
  });
  if (!done) return done.error();
  return ok_status();
}

Json written(const std::string& path) { return Json{{"path", path}, {"name", base_name(path)}, {"type", "file"}}; }

Result<std::size_t> read_body_fd(int fd, char* out, std::size_t max) {
  for (;;) {
    ssize_t n = ::read(fd, out, max);
    if (n >= 0) return static_cast<std::size_t>(n);
    if (errno != EINTR) return make_error("read the request body", errno);
  }
}

Response upload(E2bService& svc, Request& req) {
  auto call = rest_call(svc, req);
  if (!call) return rest_refusal(call.error());
  auto cut_short = [&] { return req.body_complete && !req.body_complete(); };
  std::string type = req.header("content-type");
  Json answer = Json::array();
  if (type.rfind("application/octet-stream", 0) == 0) {
    auto path = query_path(req, *call);
    if (!path) return api_error(path.error());
    Status s = store(svc, *call, *path, [&](int out) -> Status {
      char buf[64 << 10];
      for (;;) {
        MOAT_ASSIGN_OR_RETURN(std::size_t n, read_body_fd(req.body_fd, buf, sizeof buf));
        if (n == 0) break;
        MOAT_TRY(write_all(out, std::string_view(buf, n), "write the file"));
      }
      if (cut_short()) return make_error("the request body ended before its end", EINVAL);
      return ok_status();
    });
    if (!s) return api_error(s.error());
    answer.push_back(written(*path));
  } else {
    auto boundary = MultipartReader::boundary_of(type);
    if (!boundary) return api_error(boundary.error());
    MultipartReader reader([&](char* out, std::size_t max) { return read_body_fd(req.body_fd, out, max); },
                           *boundary);
    const std::string* query = req.query_value("path");
    for (;;) {
      auto part = reader.next_part();
      if (!part) return api_error(part.error());
      if (!*part) break;
      // One file with ?path=, else each part names its own path.
      std::string target = query && !query->empty() ? *query : (*part)->filename.value_or("");
      if (target.empty()) return api_error(400, "a file part names no path (no ?path= and no filename)");
      std::string path = resolve_guest_path(target, call->user.home);
      Status s = store(svc, *call, path, [&](int out) -> Status {
        char buf[64 << 10];
        for (;;) {
          MOAT_ASSIGN_OR_RETURN(std::size_t n, reader.read_body(buf, sizeof buf));
          if (n == 0) break;
          MOAT_TRY(write_all(out, std::string_view(buf, n), "write the file"));
        }
        return ok_status();
      });
      if (!s) return api_error(s.error());
      answer.push_back(written(path));
    }
    if (answer.empty()) return api_error(400, "the upload holds no file");
  }
  Response r;
  r.body = answer.dump();
  return r;
}

}  // namespace

void add_e2b_envd_rest_routes(ServerState& st, E2bService& svc) {
  Router& r = st.router;
  auto add = [&r](const std::string& method, const std::string& path, Route::Body body, Handler h) {
    Route route{method, path, body, false, std::move(h)};
    route.own_auth = true;
    r.add(std::move(route));
  };
  add("GET", "/health", Route::Body::kNone, [&svc](Request& req) { return health(svc, req); });
  add("GET", "/envs", Route::Body::kNone, [&svc](Request& req) { return envs(svc, req); });
  add("GET", "/files", Route::Body::kNone, [&svc](Request& req) { return download(svc, req); });
  add("POST", "/files", Route::Body::kStream, [&svc](Request& req) { return upload(svc, req); });
}

}  // namespace moat::server::e2b
