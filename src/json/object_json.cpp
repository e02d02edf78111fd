// The JSON forms of include/moat/json.h. They are displays, free to gain
// fields: the stored forms (moat.db, the shim's config) live elsewhere and
// change apart from these.
#include <ctime>

#include <nlohmann/json.hpp>

#include "moat/json.h"

namespace moat {
namespace {

using Json = nlohmann::json;

std::string text_of(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::int64_t seconds_of(Duration d) { return std::chrono::duration_cast<std::chrono::seconds>(d).count(); }

Json volumes_json(const std::vector<VolumeMount>& volumes) {
  Json out = Json::array();
  for (const auto& v : volumes) {
    out.push_back({{"source", v.source},
                   {"type", is_volume_name(v.source) ? "volume" : "directory"},
                   {"guest_path", v.guest_path},
                   {"read_only", v.read_only},
                   {"size_bytes", v.size_bytes}});
  }
  return out;
}

Json tmpfs_json(const std::vector<TmpfsMount>& tmpfs) {
  Json out = Json::array();
  for (const auto& t : tmpfs) out.push_back({{"guest_path", t.guest_path}, {"size_bytes", t.size_bytes}});
  return out;
}

Json network_json(const NetworkOptions& n) {
  Json rules = Json::array();
  for (const auto& r : n.rules) rules.push_back({{"allow", r.allow}, {"rule", r.rule}});
  Json hosts = Json::array();
  for (const auto& h : n.hosts) hosts.push_back({{"name", h.name}, {"address", h.address}});
  Json ports = Json::array();
  for (const auto& p : n.ports)
    ports.push_back({{"host_ip", p.host_ip},
                     {"host_port", p.host_port},
                     {"guest_port", p.guest_port},
                     {"protocol", p.udp ? "udp" : "tcp"}});
  return Json{{"mode", to_string(n.mode)},
              {"rules", std::move(rules)},
              {"hosts", std::move(hosts)},
              {"dns", n.dns},
              {"ports", std::move(ports)},
              {"publish_listening", n.publish_listening},
              {"max_connections", n.max_connections},
              {"egress_bytes_per_second", n.egress_bytes_per_second},
              {"tls",
               {{"intercept", n.tls.enabled},
                {"ports", n.tls.ports},
                {"bypass", n.tls.bypass},
                {"proxies", n.tls.proxies},
                {"upstream_ca_file", n.tls.upstream_ca_file},
                {"ca_certificate_file", n.tls.ca_certificate_file}}}};
}

const char* file_type_name(FileType t) {
  switch (t) {
    case FileType::kFile: return "file";
    case FileType::kDir: return "dir";
    case FileType::kSymlink: return "symlink";
    case FileType::kChar: return "char";
    case FileType::kBlock: return "block";
    case FileType::kFifo: return "fifo";
    case FileType::kSocket: return "socket";
  }
  return "file";
}

Json file_info_json(const FileInfo& f) {
  Json j{{"type", file_type_name(f.type)}, {"mode", f.mode},   {"uid", f.uid},          {"gid", f.gid},
         {"size", f.size},                 {"nlink", f.nlink}, {"mtime_ns", f.mtime_ns}};
  if (f.type == FileType::kSymlink) j["target"] = f.target;
  return j;
}

}  // namespace

std::string utc_time_text(std::int64_t t) {
  if (t <= 0) return "-";
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  ::gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string to_json_text(const SandboxInfo& i) {
  return text_of(Json{{"id", i.id},
                      {"name", i.name},
                      {"image", i.image},
                      {"image_digest", i.image_digest},
                      {"state", to_string(i.state)},
                      {"paused", i.paused},
                      {"saved", i.saved},
                      {"reason", i.reason},
                      {"created_at", utc_time_text(i.created_at)},
                      {"started_at", utc_time_text(i.started_at)},
                      {"finished_at", utc_time_text(i.finished_at)},
                      {"labels", i.labels},
                      {"cpus", i.cpus},
                      {"cpu_weight", i.cpu_weight},
                      {"io_weight", i.io_weight},
                      {"memory_mib", i.memory_mib},
                      {"disk_size_mib", i.disk_size_mib},
                      {"idle_timeout_s", seconds_of(i.idle_timeout)},
                      {"max_duration_s", seconds_of(i.max_duration)},
                      {"auto_remove", i.auto_remove},
                      {"command", i.command},
                      {"env", i.env},
                      {"workdir", i.workdir},
                      {"user", i.user},
                      {"dir", i.dir},
                      {"shim_pid", i.shim_pid},
                      {"volumes", volumes_json(i.volumes)},
                      {"tmpfs", tmpfs_json(i.tmpfs)},
                      {"network", network_json(i.network)},
                      {"snapshot", i.snapshot}});
}

std::string to_json_text(const NetworkOptions& network) { return text_of(network_json(network)); }

std::string to_json_text(const ImageSummary& i) {
  return text_of(Json{{"ref", i.ref},
                      {"digest", i.digest},
                      {"manifestDigest", i.manifest_digest},
                      {"platform", i.platform},
                      {"size", i.size}});
}

std::string to_json_text(const ImageDetails& d) {
  Json layers = Json::array();
  for (const auto& l : d.layers)
    layers.push_back({{"digest", l.digest}, {"mediaType", l.media_type}, {"diffID", l.diff_id}, {"size", l.size}});
  return text_of(Json{
      {"ref", d.ref},
      {"digest", d.digest},
      {"manifestDigest", d.manifest_digest},
      {"mediaType", d.media_type},
      {"platform", d.platform},
      {"size", d.size},
      {"config",
       {{"digest", d.config_digest},
        {"Entrypoint", d.entrypoint},
        {"Cmd", d.cmd},
        {"Env", d.env},
        {"WorkingDir", d.working_dir},
        {"User", d.user},
        {"Labels", d.labels}}},
      {"layers", layers},
      {"erofs", d.root_path.empty() ? Json() : Json(d.root_path)},
  });
}

std::string to_json_text(const PulledImage& p) {
  return text_of(Json{{"ref", p.ref},
                      {"digest", p.digest},
                      {"manifestDigest", p.manifest_digest},
                      {"erofs", p.root_path},
                      {"builtRoot", p.built_root},
                      {"bytesDownloaded", p.bytes_downloaded}});
}

std::string to_json_text(const VolumeInfo& v) {
  return text_of(Json{{"name", v.name},
                      {"path", v.path},
                      {"created_at", utc_time_text(v.created_at)},
                      {"labels", v.labels},
                      {"used_by", v.used_by}});
}

std::string to_json_text(const SnapshotInfo& s) {
  return text_of(Json{{"id", s.id},
                      {"name", s.name},
                      {"created_at", utc_time_text(s.created_at)},
                      {"labels", s.labels},
                      {"source_id", s.source_id},
                      {"source_name", s.source_name},
                      {"image", s.image},
                      {"image_digest", s.image_digest},
                      {"lower_path", s.lower_path},
                      {"disk_size_mib", s.disk_size_mib},
                      {"allocated_bytes", s.allocated_bytes},
                      {"content_digest", s.content_digest},
                      {"command", s.command},
                      {"used_by", s.used_by},
                      {"memory", s.memory},
                      {"memory_mib", s.memory_mib},
                      {"cpus", s.cpus}});
}

std::string to_json_text(const RootChange& c) {
  return text_of(Json{{"kind", std::string(1, to_char(c.kind))}, {"path", c.path}});
}

std::string to_json_text(const CommittedImage& i) {
  return text_of(Json{{"ref", i.ref},
                      {"manifest_digest", i.manifest_digest},
                      {"layer_digest", i.layer_digest},
                      {"layer_size", i.layer_size}});
}

std::string to_json_text(const SandboxStats& s) {
  return text_of(Json{{"source", s.source},
                      {"cpu_ns", s.cpu_ns},
                      {"memory_bytes", s.memory_bytes},
                      {"memory_limit_bytes", s.memory_limit_bytes},
                      {"pids", s.pids},
                      {"pids_limit", s.pids_limit},
                      {"oom_kills", s.oom_kills},
                      {"net_tx_bytes", s.net_tx_bytes},
                      {"net_rx_bytes", s.net_rx_bytes},
                      {"net_tx_packets", s.net_tx_packets},
                      {"net_rx_packets", s.net_rx_packets},
                      {"net_connections", s.net_connections},
                      {"host_rss_bytes", s.host_rss_bytes},
                      {"disk_bytes", s.disk_bytes},
                      {"disk_size_bytes", s.disk_size_bytes},
                      {"guest_memory_total_bytes", s.guest_memory_total_bytes},
                      {"guest_memory_used_bytes", s.guest_memory_used_bytes},
                      {"execs", s.execs},
                      {"uptime_ms", s.uptime_ms},
                      {"sampled_ns", s.sampled_ns}});
}

std::string to_json_text(const FileInfo& info) { return text_of(file_info_json(info)); }

std::string to_json_text(const DirEntry& e) {
  Json j = file_info_json(e.info);
  j["name"] = e.name;
  return text_of(j);
}

std::string to_json_text(const ExecEvent& e) {
  Json j{{"time", utc_time_text(e.time)}, {"stream", e.stream}, {"event", e.event}};
  if (e.event == "exec") {
    j["argv"] = e.argv;
    j["argv_truncated"] = e.argv_truncated;
  } else if (e.event == "exit") {
    j["code"] = e.code;
    j["signal"] = e.signal;
    j["timed_out"] = e.timed_out;
  } else {
    j["message"] = e.message;
  }
  return text_of(j);
}

std::string to_json_text(const RuntimeReport& r) {
  Json checks = Json::array();
  for (const auto& c : r.checks)
    checks.push_back(
        {{"what", c.what}, {"ok", c.ok}, {"required", c.required}, {"value", c.value}, {"detail", c.detail}});
  return text_of(Json{{"ready", r.ready()},
                      {"accel", r.accel},
                      {"accel_ok", r.accel_ok},
                      {"accel_reason", r.accel_reason},
                      {"kvm",
                       {{"device_exists", r.kvm.device_exists},
                        {"device_openable", r.kvm.device_openable},
                        {"api_version", r.kvm.api_version}}},
                      {"checks", std::move(checks)}});
}

std::string to_json_text(const SandboxEvent& e) {
  return text_of(Json{{"seq", e.seq},
                      {"time", utc_time_text(e.time)},
                      {"event", to_string(e.kind)},
                      {"id", e.id},
                      {"name", e.name},
                      {"reason", e.reason}});
}

std::string to_json_text(const LoadedImage& i) {
  return text_of(Json{{"names", i.names},
                      {"digest", i.digest},
                      {"manifestDigest", i.manifest_digest},
                      {"erofs", i.root_path},
                      {"builtRoot", i.built_root}});
}

std::string to_json_text(const ImageCheck& c) {
  return text_of(Json{{"ref", c.ref}, {"digest", c.digest}, {"ok", c.ok()}, {"problems", c.problems}});
}

std::string to_json_text(const PruneReport& r) {
  return text_of(Json{{"images", r.images},
                      {"blobs", r.blobs},
                      {"roots", r.roots},
                      {"tempFiles", r.temp_files},
                      {"bytes", r.bytes}});
}

}  // namespace moat
