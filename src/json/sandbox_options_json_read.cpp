// SandboxOptions from JSON (docs/json.md "Sandbox options"): what the
// server's POST /v1/sandboxes takes. Names follow SandboxInfo's form, so what
// `moat inspect` prints of a sandbox can be sent back to make another.
#include <limits>

#include "json/json_fields.h"
#include "moat/json.h"

namespace moat {
namespace {

using json_fields::bad;
using json_fields::Json;
using json_fields::Object;
using json_fields::refused;

constexpr std::size_t kMaxSandboxJson = 4 << 20;  // patches may carry file texts
constexpr std::uint64_t kDaySeconds = 24 * 3600;

Result<RootPatch::Kind> patch_kind(const std::string& text, const std::string& where) {
  if (text == "copy") return RootPatch::Kind::kCopy;
  if (text == "mkdir") return RootPatch::Kind::kMkdir;
  if (text == "write") return RootPatch::Kind::kWrite;
  if (text == "remove") return RootPatch::Kind::kRemove;
  return bad(where, "expected \"copy\", \"mkdir\", \"write\" or \"remove\"");
}

Result<RootPatch> patch_of(const Json& j, const std::string& where) {
  Object o(j, where);
  MOAT_TRY(o.only({"kind", "path", "host_path", "text", "mode", "uid", "gid"}));
  if (!o.has("kind") || !o.has("path")) return bad(where, "\"kind\" and \"path\" are required");
  RootPatch p;
  MOAT_ASSIGN_OR_RETURN(auto kind, o.string("kind"));
  MOAT_ASSIGN_OR_RETURN(p.kind, patch_kind(kind, o.at("kind")));
  MOAT_ASSIGN_OR_RETURN(p.guest_path, o.string("path"));
  if (o.has("host_path")) {
    MOAT_ASSIGN_OR_RETURN(p.host_path, o.string("host_path"));
  }
  if (o.has("text")) {
    MOAT_ASSIGN_OR_RETURN(p.text, o.string("text"));
  }
  if ((p.kind == RootPatch::Kind::kCopy) != !p.host_path.empty())
    return bad(where, "\"host_path\" is given for, and only for, kind \"copy\"");
  if (p.kind != RootPatch::Kind::kWrite && o.has("text")) return bad(o.at("text"), "only for kind \"write\"");
  if (o.has("mode")) {
    MOAT_ASSIGN_OR_RETURN(auto mode, o.whole("mode", 0, 07777));
    p.mode = static_cast<std::uint32_t>(mode);
  }
  if (o.has("uid")) {
    MOAT_ASSIGN_OR_RETURN(auto uid, o.whole("uid", 0, std::numeric_limits<std::uint32_t>::max() - 1));
    p.uid = static_cast<std::uint32_t>(uid);
  }
  if (o.has("gid")) {
    MOAT_ASSIGN_OR_RETURN(auto gid, o.whole("gid", 0, std::numeric_limits<std::uint32_t>::max() - 1));
    p.gid = static_cast<std::uint32_t>(gid);
  }
  // The same checks as the command-line form (absolute, no climbing out),
  // on that form's text. It splits a write at the first "=" and a copy at
  // the last ":/", so a path holding those would be checked as another path
  // than the one given ("/x=/.." as "/x", writing the root): refused.
  auto checked = parse_root_patch(p.kind, p.kind == RootPatch::Kind::kCopy ? p.host_path + ":" + p.guest_path
                                          : p.kind == RootPatch::Kind::kWrite ? p.guest_path + "=" + p.text
                                                                               : p.guest_path);
  if (!checked) return refused(checked.error(), where);
  if (checked->host_path != p.host_path || checked->text != p.text)
    return bad(o.at("path"), p.kind == RootPatch::Kind::kWrite ? "a write's path cannot hold \"=\""
                                                                : "a copy's path cannot hold \":/\"");
  // The path as the command line makes it ("/a/../b" is "/b").
  checked->mode = p.mode;
  checked->uid = p.uid;
  checked->gid = p.gid;
  return *checked;
}

Result<Secret> secret_of(const Json& j, const std::string& where) {
  Object o(j, where);
  MOAT_TRY(o.only({"name", "value", "hosts", "in_query", "in_body", "plain_http"}));
  if (!o.has("name") || !o.has("value") || !o.has("hosts"))
    return bad(where, "\"name\", \"value\" and \"hosts\" are required");
  Secret s;
  MOAT_ASSIGN_OR_RETURN(s.name, o.string("name"));
  MOAT_ASSIGN_OR_RETURN(s.value, o.string("value"));
  MOAT_ASSIGN_OR_RETURN(s.hosts, o.strings("hosts"));
  if (o.has("in_query")) {
    MOAT_ASSIGN_OR_RETURN(s.in_query, o.boolean("in_query"));
  }
  if (o.has("in_body")) {
    MOAT_ASSIGN_OR_RETURN(s.in_body, o.boolean("in_body"));
  }
  if (o.has("plain_http")) {
    MOAT_ASSIGN_OR_RETURN(s.plain_http, o.boolean("plain_http"));
  }
  // The CLI form's checks of the name and hosts, on the same text.
  std::string spec = s.name + "@";
  for (std::size_t i = 0; i < s.hosts.size(); ++i) spec += (i ? "," : "") + s.hosts[i];
  auto checked = parse_secret(spec, s.value);
  if (!checked) return refused(checked.error(), where);
  // A separator of that text in a name or host would be read as another
  // part: the host "a.com:query" as "a.com" with the query option.
  if (checked->name != s.name || checked->hosts != s.hosts)
    return bad(where, "the name cannot hold \"@\", nor a host \",\" or \":\"");
  checked->in_query = s.in_query;
  checked->in_body = s.in_body;
  checked->plain_http = s.plain_http;
  return *checked;
}

// A volume as its command-line text ("SOURCE:GUEST[:ro,size=1g]") or as
// the object `moat inspect` shows.
Result<VolumeMount> volume_of(const Json& j, const std::string& where) {
  if (j.is_string()) {
    auto v = parse_volume_mount(j.get<std::string>());
    if (!v) return refused(v.error(), where);
    return *v;
  }
  Object o(j, where);
  MOAT_TRY(o.only({"source", "guest_path", "read_only", "size_bytes"}));
  if (!o.has("source") || !o.has("guest_path")) return bad(where, "\"source\" and \"guest_path\" are required");
  MOAT_ASSIGN_OR_RETURN(auto source, o.string("source"));
  MOAT_ASSIGN_OR_RETURN(auto guest, o.string("guest_path"));
  // The fields are checked as the command-line text "SOURCE:GUEST:OPTIONS",
  // where a ":" in either would be read as the next part: the guest path
  // "/data:ro" as a read-only "/data".
  if (source.find(':') != std::string::npos) return bad(o.at("source"), "cannot hold \":\"");
  if (guest.find(':') != std::string::npos) return bad(o.at("guest_path"), "cannot hold \":\"");
  std::string text = source + ":" + guest;
  std::string opts;
  if (o.has("read_only")) {
    MOAT_ASSIGN_OR_RETURN(bool ro, o.boolean("read_only"));
    opts = ro ? "ro" : "rw";
  }
  if (o.has("size_bytes")) {
    MOAT_ASSIGN_OR_RETURN(auto size, o.whole("size_bytes", kMinVolumeSize, kMaxVolumeSize));
    opts += (opts.empty() ? "" : ",") + std::string("size=") + std::to_string(size);
  }
  if (!opts.empty()) text += ":" + opts;
  auto v = parse_volume_mount(text);
  if (!v) return refused(v.error(), where);
  return *v;
}

Result<TmpfsMount> tmpfs_of(const Json& j, const std::string& where) {
  if (j.is_string()) {
    auto t = parse_tmpfs_mount(j.get<std::string>());
    if (!t) return refused(t.error(), where);
    return *t;
  }
  Object o(j, where);
  MOAT_TRY(o.only({"guest_path", "size_bytes"}));
  if (!o.has("guest_path")) return bad(where, "\"guest_path\" is required");
  MOAT_ASSIGN_OR_RETURN(auto guest, o.string("guest_path"));
  // Checked as "GUEST[:SIZE]": a ":" in the path would be read as a size.
  if (guest.find(':') != std::string::npos) return bad(o.at("guest_path"), "cannot hold \":\"");
  std::string text = guest;
  if (o.has("size_bytes")) {
    MOAT_ASSIGN_OR_RETURN(auto size, o.whole("size_bytes", 1, kMaxVolumeSize));
    text += ":" + std::to_string(size);
  }
  auto t = parse_tmpfs_mount(text);
  if (!t) return refused(t.error(), where);
  return *t;
}

template <class T, class F>
Result<std::vector<T>> list_of(const Object& o, const char* key, F read_one) {
  const Json& v = o.raw(key);
  if (!v.is_array()) return bad(o.at(key), "expected an array");
  std::vector<T> out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    MOAT_ASSIGN_OR_RETURN(T item, read_one(v[i], o.at(key) + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(item));
  }
  return out;
}

Result<PullPolicy> pull_policy(const std::string& text, const std::string& where) {
  if (text == "missing") return PullPolicy::kMissing;
  if (text == "always") return PullPolicy::kAlways;
  if (text == "never") return PullPolicy::kNever;
  return bad(where, "expected \"missing\", \"always\" or \"never\"");
}

Status read_image_fields(const Object& o, SandboxOptions& s) {
  if (o.has("image")) {
    MOAT_ASSIGN_OR_RETURN(s.image, o.string("image"));
  }
  if (o.has("pull")) {
    MOAT_ASSIGN_OR_RETURN(auto pull, o.string("pull"));
    MOAT_ASSIGN_OR_RETURN(s.pull, pull_policy(pull, o.at("pull")));
  }
  if (o.has("insecure_registry")) {
    MOAT_ASSIGN_OR_RETURN(s.insecure_registry, o.boolean("insecure_registry"));
  }
  if (o.has("platform")) {
    MOAT_ASSIGN_OR_RETURN(s.platform, o.string("platform"));
  }
  if (o.has("rootfs_dir")) {
    MOAT_ASSIGN_OR_RETURN(s.rootfs_dir, o.string("rootfs_dir"));
  }
  if (o.has("rootfs_image")) {
    MOAT_ASSIGN_OR_RETURN(s.rootfs_image, o.string("rootfs_image"));
  }
  if (o.has("writable_root")) {
    MOAT_ASSIGN_OR_RETURN(s.writable_root, o.boolean("writable_root"));
  }
  if (o.has("from_snapshot")) {
    MOAT_ASSIGN_OR_RETURN(s.from_snapshot, o.string("from_snapshot"));
  }
  return ok_status();
}

Status read_identity_fields(const Object& o, SandboxOptions& s) {
  if (o.has("name")) {
    MOAT_ASSIGN_OR_RETURN(s.name, o.string("name"));
  }
  if (o.has("labels")) {
    MOAT_ASSIGN_OR_RETURN(s.labels, o.string_map("labels"));
  }
  if (o.has("hostname")) {
    MOAT_ASSIGN_OR_RETURN(s.hostname, o.string("hostname"));
  }
  if (o.has("command")) {
    MOAT_ASSIGN_OR_RETURN(s.command, o.strings("command"));
  }
  if (o.has("entrypoint")) {
    MOAT_ASSIGN_OR_RETURN(s.entrypoint, o.strings("entrypoint"));
  }
  return ok_status();
}

Status read_resource_fields(const Object& o, SandboxOptions& s) {
  if (o.has("cpus")) {
    MOAT_ASSIGN_OR_RETURN(auto cpus, o.whole("cpus", 1, 256));
    s.cpus = static_cast<int>(cpus);
  }
  if (o.has("io_weight")) {
    MOAT_ASSIGN_OR_RETURN(auto weight, o.whole("io_weight", 0, 10000));
    s.io_weight = static_cast<std::uint32_t>(weight);
  }
  if (o.has("cpu_weight")) {
    MOAT_ASSIGN_OR_RETURN(auto weight, o.whole("cpu_weight", 1, 10000));
    s.cpu_weight = static_cast<std::uint32_t>(weight);
  }
  if (o.has("memory_mib")) {
    MOAT_ASSIGN_OR_RETURN(auto mib, o.whole("memory_mib", 64, 1 << 20));
    s.memory_mib = static_cast<int>(mib);
  }
  if (o.has("disk_size_mib")) {
    MOAT_ASSIGN_OR_RETURN(s.disk_size_mib, o.whole("disk_size_mib", 16, 1ull << 30));
  }
  if (o.has("accel")) {
    MOAT_ASSIGN_OR_RETURN(auto accel, o.string("accel"));
    auto parsed = parse_accel(accel);
    if (!parsed) return refused(parsed.error(), o.at("accel"));
    s.accel = *parsed;
  }
  if (o.has("log_max_bytes")) {
    MOAT_ASSIGN_OR_RETURN(s.log_max_bytes, o.whole("log_max_bytes", 0, 1ull << 30));
  }
  return ok_status();
}

Status read_lifetime_fields(const Object& o, SandboxOptions& s) {
  if (o.has("idle_timeout_s")) {
    MOAT_ASSIGN_OR_RETURN(s.idle_timeout, o.seconds("idle_timeout_s", 365 * kDaySeconds));
  }
  if (o.has("max_duration_s")) {
    MOAT_ASSIGN_OR_RETURN(s.max_duration, o.seconds("max_duration_s", 365 * kDaySeconds));
  }
  if (o.has("boot_timeout_s")) {
    MOAT_ASSIGN_OR_RETURN(s.boot_timeout, o.seconds("boot_timeout_s", kDaySeconds));
  }
  if (o.has("stop_timeout_s")) {
    MOAT_ASSIGN_OR_RETURN(s.stop_timeout, o.seconds("stop_timeout_s", kDaySeconds));
  }
  if (o.has("auto_remove")) {
    MOAT_ASSIGN_OR_RETURN(s.auto_remove, o.boolean("auto_remove"));
  }
  if (o.has("warm_start")) {
    MOAT_ASSIGN_OR_RETURN(s.warm_start, o.boolean("warm_start"));
  }
  return ok_status();
}

Status read_content_fields(const Object& o, SandboxOptions& s) {
  if (o.has("patches")) {
    MOAT_ASSIGN_OR_RETURN(s.patches, list_of<RootPatch>(o, "patches", patch_of));
  }
  if (o.has("secrets")) {
    MOAT_ASSIGN_OR_RETURN(s.secrets, list_of<Secret>(o, "secrets", secret_of));
  }
  if (o.has("on_secret_violation")) {
    MOAT_ASSIGN_OR_RETURN(auto text, o.string("on_secret_violation"));
    auto parsed = parse_secret_violation(text);
    if (!parsed) return refused(parsed.error(), o.at("on_secret_violation"));
    s.on_secret_violation = *parsed;
  }
  if (o.has("volumes")) {
    MOAT_ASSIGN_OR_RETURN(s.volumes, list_of<VolumeMount>(o, "volumes", volume_of));
  }
  if (o.has("tmpfs")) {
    MOAT_ASSIGN_OR_RETURN(s.tmpfs, list_of<TmpfsMount>(o, "tmpfs", tmpfs_of));
  }
  if (o.has("network")) {
    auto network = network_options_from_json_text(o.raw("network").dump());
    if (!network) return network.error();
    s.network = std::move(*network);
  }
  return ok_status();
}

}  // namespace

Result<SandboxOptions> sandbox_options_from_json_text(std::string_view text) {
  MOAT_ASSIGN_OR_RETURN(Json j, json_fields::parse_object(text, "sandbox", kMaxSandboxJson));
  Object o(j, "sandbox");
  MOAT_TRY(o.only({"image", "pull", "insecure_registry", "platform", "rootfs_dir", "rootfs_image", "writable_root",
                   "name", "labels", "hostname", "command", "entrypoint", "cpus", "cpu_weight", "io_weight", "memory_mib",
                   "disk_size_mib", "accel", "log_max_bytes", "idle_timeout_s", "max_duration_s", "boot_timeout_s",
                   "stop_timeout_s", "auto_remove", "warm_start", "patches", "secrets", "on_secret_violation",
                   "volumes", "tmpfs", "network", "from_snapshot"}));
  SandboxOptions s;
  MOAT_TRY(read_image_fields(o, s));
  MOAT_TRY(read_identity_fields(o, s));
  MOAT_TRY(read_resource_fields(o, s));
  MOAT_TRY(read_lifetime_fields(o, s));
  MOAT_TRY(read_content_fields(o, s));
  return s;
}

}  // namespace moat
