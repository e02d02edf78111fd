// Sandboxes through the C ABI: a handle (moat/sandbox.h) and the manager
// by id or name (moat/sandboxes.h).
#include "capi/handles.h"
#include "moat/json.h"
#include "moat/logs.h"
#include "moat/sandboxes.h"
#include "moat/stats.h"

using namespace moat::capi;

namespace {

moat::Result<moat::SandboxOptions> sandbox_options_of(const moat_sandbox_options* given) {
  MOAT_ASSIGN_OR_RETURN(moat_sandbox_options o, read_struct(given, "moat_sandbox_options"));
  moat::SandboxOptions s;
  s.image = text_or_empty(o.image);
  switch (o.pull) {
    case MOAT_PULL_MISSING: s.pull = moat::PullPolicy::kMissing; break;
    case MOAT_PULL_ALWAYS: s.pull = moat::PullPolicy::kAlways; break;
    case MOAT_PULL_NEVER: s.pull = moat::PullPolicy::kNever; break;
    default: return moat::make_error("pull: expected MOAT_PULL_MISSING, _ALWAYS or _NEVER", EINVAL);
  }
  s.insecure_registry = o.insecure_registry != 0;
  s.platform = text_or_empty(o.platform);
  s.on_pull_progress = progress_callback(o.on_pull_progress, o.pull_user_data);
  s.name = text_or_empty(o.name);
  MOAT_ASSIGN_OR_RETURN(s.labels, labels_of(o.labels, "label"));
  s.command = string_list(o.command);
  if (o.has_entrypoint) s.entrypoint = string_list(o.entrypoint);
  for (const auto& v : string_list(o.volumes)) {
    MOAT_ASSIGN_OR_RETURN(auto m, moat::parse_volume_mount(v));
    s.volumes.push_back(std::move(m));
  }
  for (const auto& t : string_list(o.tmpfs)) {
    MOAT_ASSIGN_OR_RETURN(auto m, moat::parse_tmpfs_mount(t));
    s.tmpfs.push_back(std::move(m));
  }
  if (o.network_json != nullptr) {
    MOAT_ASSIGN_OR_RETURN(s.network, moat::network_options_from_json_text(o.network_json));
  }
  if (o.cpus < 0 || o.memory_mib < 0 || o.idle_timeout_ms < 0 || o.max_duration_ms < 0 || o.boot_timeout_ms < 0 ||
      o.stop_timeout_ms < 0)
    return moat::make_error("moat_sandbox_options: sizes and times must not be negative", EINVAL);
  if (o.cpus) s.cpus = o.cpus;
  if (o.cpu_weight) s.cpu_weight = o.cpu_weight;
  if (o.memory_mib) s.memory_mib = o.memory_mib;
  if (o.disk_size_mib) s.disk_size_mib = o.disk_size_mib;
  switch (o.accel) {
    case MOAT_ACCEL_AUTO: s.accel = moat::Accel::kAuto; break;
    case MOAT_ACCEL_KVM: s.accel = moat::Accel::kKvm; break;
    case MOAT_ACCEL_TCG: s.accel = moat::Accel::kTcg; break;
    default: return moat::make_error("accel: expected MOAT_ACCEL_AUTO, _KVM or _TCG", EINVAL);
  }
  s.hostname = text_or_empty(o.hostname);
  s.idle_timeout = millis(o.idle_timeout_ms);
  s.max_duration = millis(o.max_duration_ms);
  if (o.boot_timeout_ms) s.boot_timeout = millis(o.boot_timeout_ms);
  if (o.stop_timeout_ms) s.stop_timeout = millis(o.stop_timeout_ms);
  s.auto_remove = o.auto_remove != 0;
  s.ephemeral = o.ephemeral != 0;
  s.rootfs_dir = text_or_empty(o.rootfs_dir);
  s.rootfs_image = text_or_empty(o.rootfs_image);
  s.writable_root = o.writable_root != 0;
  s.log_max_bytes = o.log_max_bytes;
  auto specs = string_list(o.secrets);
  auto values = string_list(o.secret_values);
  if (specs.size() != values.size())
    return moat::make_error("secrets: " + std::to_string(specs.size()) + " specs but " +
                                std::to_string(values.size()) + " values (one value per spec, at the same index)",
                            EINVAL);
  for (std::size_t i = 0; i < specs.size(); ++i) {
    MOAT_ASSIGN_OR_RETURN(auto secret, moat::parse_secret(specs[i], values[i]));
    s.secrets.push_back(std::move(secret));
  }
  if (o.stop_on_secret_violation) s.on_secret_violation = moat::SecretViolation::kBlockAndStop;
  s.from_snapshot = text_or_empty(o.from_snapshot);
  s.warm_start = o.cold == 0;
  s.io_weight = o.io_weight;
  return s;
}

moat::Duration stop_timeout_of(int64_t ms) { return ms > 0 ? millis(ms) : std::chrono::seconds(10); }

int give_handle(moat::Sandbox sb, moat_sandbox** out) {
  std::string id = sb.id();
  *out = new moat_sandbox{std::move(sb), std::move(id)};
  return 0;
}

}  // namespace

extern "C" {

int moat_sandbox_create(const moat_sandbox_options* options, moat_sandbox** out, moat_error** err) {
  return guarded(err, [&] {
    if (out == nullptr) return fail(EINVAL, "create: no place for the handle (out is NULL)", err);
    *out = nullptr;
    auto o = sandbox_options_of(options);
    if (!o) return fail(o.error(), err);
    auto sb = moat::Sandbox::create(*o);
    if (!sb) return fail(sb.error(), err);
    return give_handle(std::move(*sb), out);
  });
}

int moat_sandbox_open(const char* id_or_name, moat_sandbox** out, moat_error** err) {
  return guarded(err, [&] {
    if (out == nullptr || id_or_name == nullptr) return fail(EINVAL, "open: a sandbox and a place for the handle are required", err);
    *out = nullptr;
    auto sb = moat::Sandbox::open(id_or_name);
    if (!sb) return fail(sb.error(), err);
    return give_handle(std::move(*sb), out);
  });
}

void moat_sandbox_close(moat_sandbox* sandbox) {
  guarded(nullptr, [&] {
    delete sandbox;
    return 0;
  });
}

const char* moat_sandbox_id(const moat_sandbox* sandbox) { return sandbox ? sandbox->id.c_str() : ""; }

int moat_sandbox_info(moat_sandbox* sandbox, char** info_json, moat_error** err) {
  return guarded(err, [&] {
    if (sandbox == nullptr) return fail(EINVAL, "info: no sandbox handle", err);
    auto info = sandbox->sandbox.info();
    if (!info) return fail(info.error(), err);
    return give_string(moat::to_json_text(*info), info_json, err);
  });
}

int moat_sandbox_stop(moat_sandbox* sandbox, int64_t timeout_ms, moat_error** err) {
  return guarded(err, [&] {
    if (sandbox == nullptr) return fail(EINVAL, "stop: no sandbox handle", err);
    return done(sandbox->sandbox.stop(stop_timeout_of(timeout_ms)), err);
  });
}

int moat_sandbox_pause(moat_sandbox* sandbox, int to_disk, moat_error** err) {
  return guarded(err, [&] {
    if (sandbox == nullptr) return fail(EINVAL, "pause: no sandbox handle", err);
    return done(sandbox->sandbox.pause({to_disk != 0}), err);
  });
}

int moat_sandbox_resume(moat_sandbox* sandbox, moat_error** err) {
  return guarded(err, [&] {
    if (sandbox == nullptr) return fail(EINVAL, "resume: no sandbox handle", err);
    return done(sandbox->sandbox.resume(), err);
  });
}

int moat_sandbox_stats(moat_sandbox* sandbox, char** stats_json, moat_error** err) {
  return guarded(err, [&] {
    if (sandbox == nullptr) return fail(EINVAL, "stats: no sandbox handle", err);
    auto stats = sandbox->sandbox.stats();
    if (!stats) return fail(stats.error(), err);
    return give_string(moat::to_json_text(*stats), stats_json, err);
  });
}

int moat_sandbox_update_network(moat_sandbox* sandbox, const char* policy_json, moat_error** err) {
  return guarded(err, [&] {
    if (sandbox == nullptr || policy_json == nullptr) return fail(EINVAL, "update network: a handle and a policy are required", err);
    auto update = moat::network_update_from_json_text(policy_json);
    if (!update) return fail(update.error(), err);
    return done(sandbox->sandbox.update_network(*update), err);
  });
}

int moat_define_sandbox(const moat_sandbox_options* options, char** info_json, moat_error** err) {
  return guarded(err, [&] {
    auto o = sandbox_options_of(options);
    if (!o) return fail(o.error(), err);
    auto info = moat::create_sandbox(*o);
    if (!info) return fail(info.error(), err);
    return give_string(moat::to_json_text(*info), info_json, err);
  });
}

int moat_start_sandbox(const char* id_or_name, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "start: no sandbox given", err);
    return done(moat::start_sandbox(id_or_name), err);
  });
}

int moat_restart_sandbox(const char* id_or_name, int64_t timeout_ms, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "restart: no sandbox given", err);
    return done(moat::restart_sandbox(id_or_name, stop_timeout_of(timeout_ms)), err);
  });
}

int moat_stats_sandbox(const char* id_or_name, char** stats_json, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "stats: no sandbox given", err);
    auto stats = moat::sandbox_stats(id_or_name);
    if (!stats) return fail(stats.error(), err);
    return give_string(moat::to_json_text(*stats), stats_json, err);
  });
}

int moat_stop_sandbox(const char* id_or_name, int64_t timeout_ms, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "stop: no sandbox given", err);
    return done(moat::stop_sandbox(id_or_name, stop_timeout_of(timeout_ms)), err);
  });
}

int moat_pause_sandbox(const char* id_or_name, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "pause: no sandbox given", err);
    return done(moat::pause_sandbox(id_or_name), err);
  });
}

int moat_pause_sandbox_to_disk(const char* id_or_name, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "pause: no sandbox given", err);
    return done(moat::pause_sandbox(id_or_name, {/*to_disk=*/true}), err);
  });
}

int moat_resume_sandbox(const char* id_or_name, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "resume: no sandbox given", err);
    return done(moat::resume_sandbox(id_or_name), err);
  });
}

int moat_remove_sandbox(const char* id_or_name, int force, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "remove: no sandbox given", err);
    return done(moat::remove_sandbox(id_or_name, force != 0), err);
  });
}

int moat_inspect_sandbox(const char* id_or_name, char** info_json, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "inspect: no sandbox given", err);
    auto info = moat::inspect_sandbox(id_or_name);
    if (!info) return fail(info.error(), err);
    return give_string(moat::to_json_text(*info), info_json, err);
  });
}

int moat_list_sandboxes(const char* const* labels, char** list_json, moat_error** err) {
  return guarded(err, [&] {
    auto wanted = labels_of(labels, "label");
    if (!wanted) return fail(wanted.error(), err);
    auto list = moat::list_sandboxes(*wanted);
    if (!list) return fail(list.error(), err);
    return give_string(moat::to_json_array_text(*list), list_json, err);
  });
}

int moat_sandbox_logs(const char* id_or_name, const moat_log_callbacks* given, int follow, moat_error** err) {
  return guarded(err, [&] {
    auto read = read_struct(given, "moat_log_callbacks");
    if (!read) return fail(read.error(), err);
    const moat_log_callbacks& c = *read;
    if (id_or_name == nullptr) return fail(EINVAL, "logs: no sandbox given", err);
    moat::LogCallbacks cb;
    if (c.on_console)
      cb.on_console = [&](std::string_view s) { c.on_console(c.user_data, s.data(), s.size()); };
    if (c.on_exec_event)
      cb.on_exec_event = [&](const moat::ExecEvent& e) { c.on_exec_event(c.user_data, moat::to_json_text(e).c_str()); };
    if (c.stop) cb.stop = [&] { return c.stop(c.user_data) != 0; };
    return done(moat::read_sandbox_logs(id_or_name, cb, follow != 0), err);
  });
}

}  // extern "C"
