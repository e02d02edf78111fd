// envd's filesystem.Filesystem service over Connect (filesystem.proto in
// e2b-dev/E2B spec/envd): Stat, MakeDir, Move, ListDir, Remove and the
// WatchDir stream, on moat's file calls. Relative paths are under the
// user's home, as envd resolves them.
//
// WatchDir is polling here: the directory is listed every kWatchInterval and
// the differences become events (create, write, remove, chmod); the polled
// watchers (CreateWatcher, GetWatcherEvents) list it at each call. envd uses
// inotify, which reports each change; a poll sees the state between two
// looks, so a file made and removed within one interval makes no event and
// several writes make one.
#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "server/e2b/connect_call.h"
#include "server/e2b/entry_info.h"
#include "server/route_support.h"
#include "server/server_state.h"

namespace moat::server::e2b {
namespace {

using Json = nlohmann::json;

constexpr std::size_t kMaxListed = 100000;
constexpr std::uint32_t kMaxDepth = 64;
constexpr auto kWatchInterval = std::chrono::milliseconds(200);

std::atomic<std::uint64_t> next_watcher_id{1};

Result<std::string> path_field(const ConnectCall& call, const char* name) {
  const Json& v = call.message.value(name, Json());
  if (!v.is_string() || v.get<std::string>().empty()) return make_error(std::string(name) + ": expected a path", EINVAL);
  return resolve_guest_path(v.get<std::string>(), call.envd.user.home);
}

template <class T>
Result<T> on_sandbox(E2bService& svc, const ConnectCall& call, const std::function<Result<T>(Sandbox&)>& use) {
  return svc.handles.with<T>(call.envd.sandbox.id, use);
}

Response entry_answer(const ConnectCall& call, const std::string& path, const Result<FileInfo>& info) {
  if (!info) return unary_error(connect_error_of(info.error()));
  return unary_answer(call, Json{{"entry", entry_info_json(path, *info, call.envd.users)}}.dump());
}

Response stat(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kUnary, refusal);
  if (!call) return unary_error(refusal);
  auto path = path_field(*call, "path");
  if (!path) return unary_error(connect_error_of(path.error()));
  auto info = on_sandbox<FileInfo>(svc, *call, [&](Sandbox& sb) { return sb.stat(*path, false); });
  return entry_answer(*call, *path, info);
}

Response make_dir(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kUnary, refusal);
  if (!call) return unary_error(refusal);
  auto path = path_field(*call, "path");
  if (!path) return unary_error(connect_error_of(path.error()));
  auto existing = on_sandbox<FileInfo>(svc, *call, [&](Sandbox& sb) { return sb.stat(*path, false); });
  if (existing) return unary_error({ConnectCode::kAlreadyExists, "path already exists: " + *path});
  if (Status s = svc.make_dirs_as(call->envd, *path); !s) return unary_error(connect_error_of(s.error()));
  auto info = on_sandbox<FileInfo>(svc, *call, [&](Sandbox& sb) { return sb.stat(*path, false); });
  return entry_answer(*call, *path, info);
}

Response move(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kUnary, refusal);
  if (!call) return unary_error(refusal);
  auto from = path_field(*call, "source");
  if (!from) return unary_error(connect_error_of(from.error()));
  auto to = path_field(*call, "destination");
  if (!to) return unary_error(connect_error_of(to.error()));
  auto info = on_sandbox<FileInfo>(svc, *call, [&](Sandbox& sb) -> Result<FileInfo> {
    MOAT_TRY(sb.rename(*from, *to));
    return sb.stat(*to, false);
  });
  return entry_answer(*call, *to, info);
}

Response remove(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kUnary, refusal);
  if (!call) return unary_error(refusal);
  auto path = path_field(*call, "path");
  if (!path) return unary_error(connect_error_of(path.error()));
  auto done = on_sandbox<bool>(svc, *call, [&](Sandbox& sb) -> Result<bool> {
    MOAT_TRY(sb.remove(*path, /*recursive=*/true));
    return true;
  });
  if (!done) return unary_error(connect_error_of(done.error()));
  return unary_answer(*call, "{}");
}

std::string child_path(const std::string& dir, const std::string& name) {
  return dir == "/" ? "/" + name : dir + "/" + name;
}

// The entries under `dir` to `depth` levels (directories, not symlinks,
// are descended), paths relative to `dir` in `out`.
Status walk(Sandbox& sb, const std::string& dir, const std::string& rel, std::uint32_t depth,
            std::vector<std::pair<std::string, FileInfo>>& out) {
  MOAT_ASSIGN_OR_RETURN(std::vector<DirEntry> entries, sb.list_dir(dir));
  for (const DirEntry& e : entries) {
    if (out.size() >= kMaxListed) return make_error("more than 100000 entries under " + dir, E2BIG);
    std::string r = rel.empty() ? e.name : rel + "/" + e.name;
    out.emplace_back(r, e.info);
    if (depth > 1 && e.info.type == FileType::kDir) {
      Status s = walk(sb, child_path(dir, e.name), r, depth - 1, out);
      // A directory that went away or cannot be read while walking is skipped, as envd skips it.
      if (!s && s.error().kind() != ErrorKind::kNotFound && s.error().kind() != ErrorKind::kPermissionDenied)
        return s;
    }
  }
  return ok_status();
}

Response list_dir(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kUnary, refusal);
  if (!call) return unary_error(refusal);
  auto path = path_field(*call, "path");
  if (!path) return unary_error(connect_error_of(path.error()));
  long long depth = call->message.value("depth", 1LL);
  if (depth < 1) depth = 1;
  if (depth > kMaxDepth) depth = kMaxDepth;
  auto listed = on_sandbox<std::vector<std::pair<std::string, FileInfo>>>(
      svc, *call, [&](Sandbox& sb) -> Result<std::vector<std::pair<std::string, FileInfo>>> {
        MOAT_ASSIGN_OR_RETURN(FileInfo top, sb.stat(*path, true));
        if (top.type != FileType::kDir) return make_error("path is not a directory: " + *path, EINVAL);
        std::vector<std::pair<std::string, FileInfo>> out;
        MOAT_TRY(walk(sb, *path, "", static_cast<std::uint32_t>(depth), out));
        return out;
      });
  if (!listed) return unary_error(connect_error_of(listed.error()));
  Json entries = Json::array();
  for (const auto& [rel, info] : *listed) entries.push_back(entry_info_json(child_path(*path, rel), info, call->envd.users));
  return unary_answer(*call, Json{{"entries", entries}}.dump());
}

Result<DirState> snapshot(E2bService& svc, const std::string& id, const std::string& dir, bool recursive) {
  return svc.handles.with<DirState>(id, [&](Sandbox& sb) -> Result<DirState> {
    std::vector<std::pair<std::string, FileInfo>> out;
    MOAT_TRY(walk(sb, dir, "", recursive ? kMaxDepth : 1, out));
    DirState m;
    for (const auto& [rel, i] : out) m[rel] = EntryState{i.type, i.mode, i.size, i.mtime_ns};
    return m;
  });
}

// The FilesystemEvents between two looks, in name order: removals,
// creations, then writes and mode changes of what stayed.
std::vector<Json> differences(const DirState& before, const DirState& now) {
  std::vector<Json> out;
  auto event = [&](const std::string& name, const char* type) { out.push_back(Json{{"name", name}, {"type", type}}); };
  for (const auto& [name, s] : before)
    if (!now.count(name)) event(name, "EVENT_TYPE_REMOVE");
  for (const auto& [name, s] : now) {
    auto it = before.find(name);
    if (it == before.end()) {
      event(name, "EVENT_TYPE_CREATE");
      continue;
    }
    const EntryState& b = it->second;
    if (b.type != s.type) {
      event(name, "EVENT_TYPE_REMOVE");
      event(name, "EVENT_TYPE_CREATE");
    } else if (b.size != s.size || b.mtime_ns != s.mtime_ns) {
      event(name, "EVENT_TYPE_WRITE");
    } else if (b.mode != s.mode) {
      event(name, "EVENT_TYPE_CHMOD");
    }
  }
  return out;
}

Response watch_dir(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kStreaming, refusal);
  if (!call) return streaming_error(refusal);
  auto path = path_field(*call, "path");
  if (!path) return streaming_error(connect_error_of(path.error()));
  if (call->message.value("includeEntry", false))
    return streaming_error({ConnectCode::kUnimplemented, "watch events with entries are not supported"});
  bool recursive = call->message.value("recursive", false);
  std::string id = call->envd.sandbox.id;
  auto first = snapshot(svc, id, *path, recursive);
  if (!first) return streaming_error(connect_error_of(first.error()));
  Response r;
  r.content_type = stream_content_type(call->codec);
  std::string dir = *path;
  r.stream = [self = svc.shared_from_this(), codec = call->codec, id, dir, recursive,
              before = std::move(*first)](int fd) mutable {
    E2bService& svc = *self;
    auto send = [&](std::string_view json) {
      auto bytes = stream_envelope(codec, json);
      if (!bytes) {
        (void)write_all_fd(fd, end_stream(ConnectError{ConnectCode::kInternal, bytes.error().message}));
        return false;
      }
      return write_all_fd(fd, *bytes);
    };
    if (!send("{\"start\":{}}")) return;
    auto last_sent = std::chrono::steady_clock::now();
    for (;;) {
      std::this_thread::sleep_for(kWatchInterval);
      if (reader_gone(fd)) return;
      auto now = snapshot(svc, id, dir, recursive);
      if (!now) {
        (void)write_all_fd(fd, end_stream(connect_error_of(now.error())));
        return;
      }
      for (const Json& ev : differences(before, *now)) {
        if (!send(Json{{"filesystem", ev}}.dump())) return;
        last_sent = std::chrono::steady_clock::now();
      }
      before = std::move(*now);
      if (std::chrono::steady_clock::now() - last_sent > std::chrono::seconds(30)) {
        if (!send("{\"keepalive\":{}}")) return;
        last_sent = std::chrono::steady_clock::now();
      }
    }
  };
  return r;
}

// CreateWatcher, GetWatcherEvents, RemoveWatcher: the polled form of
// WatchDir (E2B's Python SDK uses it where it cannot hold a stream). Each
// GetWatcherEvents answers what changed since the previous look.
Response create_watcher(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kUnary, refusal);
  if (!call) return unary_error(refusal);
  auto path = path_field(*call, "path");
  if (!path) return unary_error(connect_error_of(path.error()));
  if (call->message.value("includeEntry", false))
    return unary_error({ConnectCode::kUnimplemented, "watch events with entries are not supported"});
  bool recursive = call->message.value("recursive", false);
  auto first = snapshot(svc, call->envd.sandbox.id, *path, recursive);
  if (!first) return unary_error(connect_error_of(first.error()));
  std::string id = "w" + std::to_string(next_watcher_id.fetch_add(1));
  if (!svc.watchers.add(id, PolledWatcher{call->envd.sandbox.id, *path, recursive, std::move(*first)}))
    return unary_error({ConnectCode::kResourceExhausted, "too many watchers in this sandbox"});
  return unary_answer(*call, Json{{"watcherId", id}}.dump());
}

Result<std::string> watcher_field(const ConnectCall& call) {
  const Json& v = call.message.value("watcherId", Json());
  if (!v.is_string() || v.get<std::string>().empty()) return make_error("watcherId: missing", EINVAL);
  return v.get<std::string>();
}

Response get_watcher_events(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kUnary, refusal);
  if (!call) return unary_error(refusal);
  auto id = watcher_field(*call);
  if (!id) return unary_error(connect_error_of(id.error()));
  std::string sandbox = call->envd.sandbox.id;
  std::optional<PolledWatcher> w;
  if (!svc.watchers.with(sandbox, *id, [&](PolledWatcher& pw) { w = pw; }))
    return unary_error({ConnectCode::kNotFound, "watcher " + *id + " not found"});
  auto now = snapshot(svc, sandbox, w->dir, w->recursive);
  if (!now) return unary_error(connect_error_of(now.error()));
  Json events = Json::array();
  // Two calls at once on one watcher: each reports against the state the
  // table holds when it stores its own, so no change is reported twice.
  svc.watchers.with(sandbox, *id, [&](PolledWatcher& pw) {
    for (Json& ev : differences(pw.last, *now)) events.push_back(std::move(ev));
    pw.last = std::move(*now);
  });
  return unary_answer(*call, Json{{"events", events}}.dump());
}

Response remove_watcher(E2bService& svc, Request& req) {
  ConnectError refusal;
  auto call = begin_call(svc, req, CallKind::kUnary, refusal);
  if (!call) return unary_error(refusal);
  auto id = watcher_field(*call);
  if (!id) return unary_error(connect_error_of(id.error()));
  if (!svc.watchers.remove(call->envd.sandbox.id, *id))
    return unary_error({ConnectCode::kNotFound, "watcher " + *id + " not found"});
  return unary_answer(*call, "{}");
}

}  // namespace

void add_e2b_filesystem_routes(ServerState& st, E2bService& svc) {
  Router& r = st.router;
  auto add = [&r](const std::string& method, Handler h) {
    Route route{"POST", "/filesystem.Filesystem/" + method, Route::Body::kWhole, false, connect_route(std::move(h))};
    route.own_auth = true;
    r.add(std::move(route));
  };
  add("Stat", [&svc](Request& req) { return stat(svc, req); });
  add("MakeDir", [&svc](Request& req) { return make_dir(svc, req); });
  add("Move", [&svc](Request& req) { return move(svc, req); });
  add("ListDir", [&svc](Request& req) { return list_dir(svc, req); });
  add("Remove", [&svc](Request& req) { return remove(svc, req); });
  add("WatchDir", [&svc](Request& req) { return watch_dir(svc, req); });
  add("CreateWatcher", [&svc](Request& req) { return create_watcher(svc, req); });
  add("GetWatcherEvents", [&svc](Request& req) { return get_watcher_events(svc, req); });
  add("RemoveWatcher", [&svc](Request& req) { return remove_watcher(svc, req); });
}

}  // namespace moat::server::e2b
