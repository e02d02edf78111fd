#include "server/e2b/e2b_service.h"

#include <nlohmann/json.hpp>

#include "moat/sandboxes.h"
#include "server/api_error.h"
#include "server/bearer_token.h"
#include "server/server_state.h"
#include "util/base64.h"

namespace moat::server::e2b {
namespace {

constexpr std::size_t kMaxAccountFile = 4 << 20;

// "Basic base64(NAME:)" → NAME; empty if the header is absent or not that.
std::string basic_user(const std::string& authorization) {
  if (authorization.rfind("Basic ", 0) != 0) return {};
  auto decoded = base64_decode(authorization.substr(6));
  if (!decoded) return {};
  return decoded->substr(0, decoded->find(':'));
}

}  // namespace

E2bService::E2bService(TemplateMap t, std::string api_key)
    : templates(std::move(t)), api_key_(std::move(api_key)) {
  reaper_ = std::thread([this] { reap_loop(); });
}

E2bService::~E2bService() {
  {
    std::lock_guard lock(reaper_mu_);
    stopping_ = true;
  }
  reaper_cv_.notify_all();
  reaper_.join();
}

// Sandboxes past their end are removed, as E2B ends them; checked every
// second, so one lives at most a second past its timeout.
void E2bService::reap_loop() {
  std::unique_lock lock(reaper_mu_);
  while (!stopping_) {
    reaper_cv_.wait_for(lock, std::chrono::seconds(1));
    if (stopping_) break;
    lock.unlock();
    for (const std::string& id : sandboxes.take_expired(Clock::now())) {
      forget(id);
      Status s = remove_sandbox(id, /*force=*/true);
      if (!s && s.error().kind() != ErrorKind::kNotFound)
        std::fprintf(stderr, "moat serve: e2b: remove expired sandbox %s: %s\n", id.c_str(), s.error().message.c_str());
    }
    lock.lock();
  }
}

Status E2bService::keep_records_in(const std::string& dir) {
  MOAT_ASSIGN_OR_RETURN(SandboxRecords records, SandboxRecords::open(dir));
  std::vector<std::string> problems;
  for (E2bSandbox& s : records.load(problems)) {
    auto info = inspect_sandbox(s.id);
    if (info && info->state == SandboxState::kRunning) {
      sandboxes.add(std::move(s));
    } else {
      records.remove(s.id);
    }
  }
  for (const std::string& p : problems) std::fprintf(stderr, "moat serve: e2b: skipped %s\n", p.c_str());
  sandboxes.persist_to(std::move(records));
  return ok_status();
}

std::optional<Response> E2bService::check_api_key(const Request& req) const {
  std::string given = req.header("x-api-key");
  if (given.empty()) given = bearer_of(req.header("authorization"));
  if (!api_key_.empty() && (given.empty() || !token_matches(given, api_key_)))
    return api_error(401, given.empty() ? "this server needs the header X-API-Key (E2B_API_KEY: the token of moat serve)"
                                        : "the API key is wrong");
  return std::nullopt;
}

Result<GuestUsers> E2bService::users_of(const std::string& id, bool refresh) {
  if (!refresh) {
    std::lock_guard lock(users_mu_);
    auto it = users_.find(id);
    if (it != users_.end()) return it->second;
  }
  auto read_small = [&](Sandbox& sb, const std::string& path) -> Result<std::string> {
    std::string text;
    Status s = sb.read_file(path, [&](std::string_view d) -> Status {
      if (text.size() + d.size() > kMaxAccountFile) return make_error(path + " is over 4 MiB", EFBIG);
      text.append(d);
      return ok_status();
    });
    if (!s && s.error().kind() != ErrorKind::kNotFound) return s.error();
    return text;
  };
  MOAT_ASSIGN_OR_RETURN(GuestUsers users, handles.with<GuestUsers>(id, [&](Sandbox& sb) -> Result<GuestUsers> {
    MOAT_ASSIGN_OR_RETURN(std::string passwd, read_small(sb, "/etc/passwd"));
    MOAT_ASSIGN_OR_RETURN(std::string group, read_small(sb, "/etc/group"));
    return GuestUsers::parse(passwd, group);
  }));
  std::lock_guard lock(users_mu_);
  users_[id] = users;
  return users;
}

Result<EnvdCall> E2bService::envd_call(const Request& req, ConnectError& refusal) {
  std::string id = req.header("e2b-sandbox-id");
  if (id.empty()) {
    refusal = {ConnectCode::kInvalidArgument,
               "the request names no sandbox: set E2B_SANDBOX_URL to this server, the SDK then sends E2b-Sandbox-Id"};
    return make_error(refusal.message, EINVAL);
  }
  auto sandbox = sandboxes.find(id);
  // Unknown and wrong-token look the same, so a client cannot probe ids.
  if (!sandbox || !token_matches(req.header("x-access-token"), sandbox->access_token)) {
    refusal = sandbox ? ConnectError{ConnectCode::kUnauthenticated, "the access token is wrong for sandbox " + id}
                      : ConnectError{ConnectCode::kUnavailable, "sandbox " + id + " is not running (or not known here)"};
    return make_error(refusal.message, sandbox ? EACCES : ENOTCONN);
  }
  std::string name = basic_user(req.header("authorization"));
  if (name.empty()) name = sandbox->user;
  auto users = users_of(id);
  if (!users) {
    refusal = connect_error_of(users.error());
    return users.error();
  }
  auto user = users->by_name(name);
  if (!user) {
    users = users_of(id, /*refresh=*/true);
    if (users) user = users->by_name(name);
  }
  if (!user) {
    refusal = {ConnectCode::kInvalidArgument, "user '" + name + "' does not exist in sandbox " + id};
    return make_error(refusal.message, EINVAL);
  }
  return EnvdCall{std::move(*sandbox), std::move(*user), std::move(*users)};
}

// A directory and its missing parents, owned by the calling user as envd
// makes them (moat's mkdir makes root's; a user's go through its shell).
Status E2bService::make_dirs_as(const EnvdCall& call, const std::string& path) {
  if (call.user.uid == 0) {
    auto made = handles.with<bool>(call.sandbox.id, [&](Sandbox& sb) -> Result<bool> {
      MOAT_TRY(sb.mkdir(path, /*parents=*/true, 0755));
      return true;
    });
    if (!made) return made.error();
    return ok_status();
  }
  ExecOptions o;
  o.argv = {"mkdir", "-p", "--", path};
  o.user = call.user.name;
  std::string err;
  ExecIo io;
  io.on_stderr = [&](std::string_view s) {
    if (err.size() < 4096) err.append(s);
  };
  auto st = handles.with<ExitStatus>(call.sandbox.id, [&](Sandbox& sb) { return sb.exec(o, io); });
  if (!st) return st.error();
  if (st->shell_code() != 0) {
    while (!err.empty() && err.back() == '\n') err.pop_back();
    int code = err.find("Permission denied") != std::string::npos ? EACCES : EIO;
    return make_error("mkdir " + path + ": " + (err.empty() ? "failed" : err), code);
  }
  return ok_status();
}

void E2bService::forget(const std::string& id) {
  processes->forget_sandbox(id);
  watchers.forget_sandbox(id);
  handles.forget(id);
  std::lock_guard lock(users_mu_);
  users_.erase(id);
}

Status E2bService::kill(const std::string& id) {
  sandboxes.erase(id);
  forget(id);
  return remove_sandbox(id, /*force=*/true);
}

Response api_error(int status, const std::string& message) {
  Response r;
  r.status = status;
  r.body = nlohmann::json{{"code", status}, {"message", message}}.dump(-1, ' ', false,
                                                                       nlohmann::json::error_handler_t::replace);
  return r;
}

Response api_error(const Error& error) { return api_error(server::http_status_of(error), error.message); }

void add_e2b_routes(ServerState& state, E2bService& service) {
  add_e2b_control_routes(state, service);
  add_e2b_process_routes(state, service);
  add_e2b_filesystem_routes(state, service);
  add_e2b_envd_rest_routes(state, service);
}

}  // namespace moat::server::e2b
