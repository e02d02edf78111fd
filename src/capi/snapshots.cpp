// Disk snapshots and forks through the C ABI (moat/snapshots.h).
#include "capi/handles.h"
#include "moat/json.h"
#include "moat/snapshots.h"

using namespace moat::capi;

namespace {

int fork_sandbox_as(const char* sandbox, int count, const char* name_prefix, int no_start, bool memory,
                    char** sandboxes_json, moat_error** err) {
  return guarded(err, [&] {
    if (sandbox == nullptr) return fail(EINVAL, "fork: no sandbox given", err);
    moat::ForkOptions o;
    o.count = count;
    o.name_prefix = name_prefix ? name_prefix : "";
    o.start = no_start == 0;
    o.memory = memory;
    auto children = moat::fork_sandbox(sandbox, o);
    if (!children) return fail(children.error(), err);
    return give_string(moat::to_json_array_text(*children), sandboxes_json, err);
  });
}

}  // namespace

extern "C" {

int moat_snapshot_create(const char* sandbox, const char* name, const char* const* labels, int64_t freeze_timeout_ms,
                         char** snapshot_json, moat_error** err) {
  return guarded(err, [&] {
    if (sandbox == nullptr || name == nullptr) return fail(EINVAL, "snapshot create: no sandbox or name given", err);
    if (freeze_timeout_ms < 0) return fail(EINVAL, "snapshot create: freeze_timeout_ms must not be negative", err);
    moat::SnapshotOptions o;
    auto l = labels_of(labels, "label");
    if (!l) return fail(l.error(), err);
    o.labels = *l;
    if (freeze_timeout_ms > 0) o.freeze_timeout = millis(freeze_timeout_ms);
    auto s = moat::create_snapshot(sandbox, name, o);
    if (!s) return fail(s.error(), err);
    return give_string(moat::to_json_text(*s), snapshot_json, err);
  });
}

int moat_snapshot_inspect(const char* id_or_name, char** snapshot_json, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "snapshot inspect: no snapshot given", err);
    auto s = moat::inspect_snapshot(id_or_name);
    if (!s) return fail(s.error(), err);
    return give_string(moat::to_json_text(*s), snapshot_json, err);
  });
}

int moat_snapshot_list(char** snapshots_json, moat_error** err) {
  return guarded(err, [&] {
    auto list = moat::list_snapshots();
    if (!list) return fail(list.error(), err);
    return give_string(moat::to_json_array_text(*list), snapshots_json, err);
  });
}

int moat_snapshot_remove(const char* id_or_name, moat_error** err) {
  return guarded(err, [&] {
    if (id_or_name == nullptr) return fail(EINVAL, "snapshot remove: no snapshot given", err);
    return done(moat::remove_snapshot(id_or_name), err);
  });
}

int moat_sandbox_fork(const char* sandbox, int count, const char* name_prefix, int no_start, char** sandboxes_json,
                      moat_error** err) {
  return fork_sandbox_as(sandbox, count, name_prefix, no_start, /*memory=*/false, sandboxes_json, err);
}

int moat_sandbox_fork_warm(const char* sandbox, int count, const char* name_prefix, int no_start,
                           char** sandboxes_json, moat_error** err) {
  return fork_sandbox_as(sandbox, count, name_prefix, no_start, /*memory=*/true, sandboxes_json, err);
}

}  // extern "C"
