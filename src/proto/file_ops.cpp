#include "proto/file_ops.h"

#include <cerrno>
#include <cstring>

#include "proto/data_frame.h"
#include "proto/text.h"

namespace moat::proto {
namespace {

constexpr std::string_view kRequestTypes[] = {msg::kStat,   msg::kList,  msg::kRead,   msg::kWrite,
                                              msg::kMkdir,  msg::kRemove, msg::kRename, msg::kChmod,
                                              msg::kChown,  msg::kTarOut, msg::kTarIn};

constexpr std::pair<FileType, std::string_view> kTypeNames[] = {
    {FileType::kFile, "file"},   {FileType::kDir, "dir"},   {FileType::kSymlink, "symlink"},
    {FileType::kChar, "char"},   {FileType::kBlock, "block"}, {FileType::kFifo, "fifo"},
    {FileType::kSocket, "socket"}};

// Guest paths are absolute so that no request depends on the agent's cwd.
Result<std::string> get_path(const Json& p, const char* key) {
  MOAT_ASSIGN_OR_RETURN(auto s, get_string(p, key, kMaxFilePath));
  if (s.empty() || s[0] != '/')
    return make_error(std::string("field \"") + key + "\" must be an absolute path", EINVAL);
  if (s.find('\0') != std::string::npos)
    return make_error(std::string("field \"") + key + "\" contains a NUL byte", EINVAL);
  return s;
}

Result<bool> opt_bool(const Json& p, const char* key) {
  if (!has(p, key)) return false;
  return get_bool(p, key);
}

Result<std::optional<std::uint32_t>> opt_id(const Json& p, const char* key) {
  if (!has(p, key)) return std::optional<std::uint32_t>();
  MOAT_ASSIGN_OR_RETURN(auto v, get_uint(p, key, kMaxUidGid));
  return std::optional<std::uint32_t>(static_cast<std::uint32_t>(v));
}

}  // namespace

bool is_file_request(std::string_view type) {
  for (auto t : kRequestTypes)
    if (t == type) return true;
  return false;
}

std::string_view to_string(FileType t) {
  for (const auto& [type, name] : kTypeNames)
    if (type == t) return name;
  return "file";
}

std::optional<FileType> file_type_from(std::string_view s) {
  for (const auto& [type, name] : kTypeNames)
    if (name == s) return type;
  return std::nullopt;
}

Json to_payload(const FileStat& s) {
  Json p = Json::object();
  p["type"] = std::string(to_string(s.type));
  p["mode"] = s.mode;
  p["uid"] = s.uid;
  p["gid"] = s.gid;
  p["size"] = s.size;
  p["nlink"] = s.nlink;
  p["mtime_ns"] = s.mtime_ns;
  if (s.type == FileType::kSymlink) p["target"] = bytes_value(s.target);
  return p;
}

Result<FileStat> parse_file_stat(const Json& p) {
  if (!p.is_object()) return make_error("stat: not a map");
  FileStat s;
  MOAT_ASSIGN_OR_RETURN(auto type, get_string(p, "type", 16));
  auto t = file_type_from(type);
  if (!t) return make_error("stat: unknown file type \"" + type + "\"");
  s.type = *t;
  MOAT_ASSIGN_OR_RETURN(auto mode, get_uint(p, "mode", 07777));
  s.mode = static_cast<std::uint32_t>(mode);
  MOAT_ASSIGN_OR_RETURN(auto uid, get_uint(p, "uid", 0xffffffffu));
  MOAT_ASSIGN_OR_RETURN(auto gid, get_uint(p, "gid", 0xffffffffu));
  s.uid = static_cast<std::uint32_t>(uid);
  s.gid = static_cast<std::uint32_t>(gid);
  MOAT_ASSIGN_OR_RETURN(s.size, get_uint(p, "size", ~0ull));
  MOAT_ASSIGN_OR_RETURN(s.nlink, get_uint(p, "nlink", ~0ull));
  MOAT_ASSIGN_OR_RETURN(s.mtime_ns, get_int(p, "mtime_ns", INT64_MIN, INT64_MAX));
  if (s.type == FileType::kSymlink) {
    MOAT_ASSIGN_OR_RETURN(s.target, get_string(p, "target", kMaxFilePath));
  }
  return s;
}

Json to_payload(const std::vector<DirEntry>& entries) {
  Json list = Json::array();
  for (const auto& e : entries) {
    Json item = to_payload(e.stat);
    item["name"] = bytes_value(e.name);
    list.push_back(std::move(item));
  }
  Json p = Json::object();
  p["entries"] = std::move(list);
  return p;
}

Result<std::vector<DirEntry>> parse_entries(const Json& p) {
  auto it = p.find("entries");
  if (it == p.end() || !it->is_array()) return make_error("entries: missing list");
  if (it->size() > kMaxEntriesPerBatch) return make_error("entries: batch too large");
  std::vector<DirEntry> out;
  for (const auto& item : *it) {
    DirEntry e;
    MOAT_ASSIGN_OR_RETURN(e.stat, parse_file_stat(item));
    MOAT_ASSIGN_OR_RETURN(e.name, get_string(item, "name", kMaxNameLength));
    if (e.name.empty() || e.name == "." || e.name == ".." ||
        e.name.find_first_of(std::string_view("/\0", 2)) != std::string::npos)
      return make_error("entries: bad name");
    out.push_back(std::move(e));
  }
  return out;
}

Json to_payload(const FileRequest& r) {
  Json p = Json::object();
  // Byte strings: paths and names are bytes.
  p["path"] = bytes_value(r.path);
  if (r.op == msg::kRename) p["to"] = bytes_value(r.to);
  if (!r.name.empty()) p["name"] = bytes_value(r.name);
  if (r.mode) p["mode"] = r.mode;
  if (r.uid) p["uid"] = *r.uid;
  if (r.gid) p["gid"] = *r.gid;
  if (r.follow) p["follow"] = true;
  if (r.parents) p["parents"] = true;
  if (r.recursive) p["recursive"] = true;
  if (r.append) p["append"] = true;
  if (r.exclusive) p["exclusive"] = true;
  if (r.offset) p["offset"] = r.offset;
  if (r.length) p["length"] = r.length;
  return p;
}

namespace {

Result<FileRequest> parse_request_fields(std::string_view type, const Json& p) {
  if (!is_file_request(type)) return make_error("not a file request", EINVAL);
  FileRequest r;
  r.op = std::string(type);
  MOAT_ASSIGN_OR_RETURN(r.path, get_path(p, "path"));
  if (type == msg::kRename) { MOAT_ASSIGN_OR_RETURN(r.to, get_path(p, "to")); }
  if (has(p, "name")) {
    MOAT_ASSIGN_OR_RETURN(r.name, get_string(p, "name", kMaxNameLength));
    if (r.name.empty() || r.name == "." || r.name == ".." ||
        r.name.find_first_of(std::string_view("/\0", 2)) != std::string::npos)
      return make_error("field \"name\" must be a single path component", EINVAL);
  }
  if (has(p, "mode")) {
    MOAT_ASSIGN_OR_RETURN(auto mode, get_uint(p, "mode", 07777));
    r.mode = static_cast<std::uint32_t>(mode);
  } else if (type == msg::kChmod) {
    return make_error("chmod: field \"mode\" is required", EINVAL);
  }
  MOAT_ASSIGN_OR_RETURN(r.uid, opt_id(p, "uid"));
  MOAT_ASSIGN_OR_RETURN(r.gid, opt_id(p, "gid"));
  if (type == msg::kChown && !r.uid && !r.gid)
    return make_error("chown: give \"uid\" or \"gid\"", EINVAL);
  MOAT_ASSIGN_OR_RETURN(r.follow, opt_bool(p, "follow"));
  MOAT_ASSIGN_OR_RETURN(r.parents, opt_bool(p, "parents"));
  MOAT_ASSIGN_OR_RETURN(r.recursive, opt_bool(p, "recursive"));
  MOAT_ASSIGN_OR_RETURN(r.append, opt_bool(p, "append"));
  MOAT_ASSIGN_OR_RETURN(r.exclusive, opt_bool(p, "exclusive"));
  if (r.append && r.exclusive) return make_error("write: append and exclusive exclude each other", EINVAL);
  if (has(p, "offset")) { MOAT_ASSIGN_OR_RETURN(r.offset, get_uint(p, "offset", INT64_MAX)); }
  if (has(p, "length")) { MOAT_ASSIGN_OR_RETURN(r.length, get_uint(p, "length", INT64_MAX)); }
  return r;
}

}  // namespace

Result<FileRequest> parse_file_request(std::string_view type, const Json& p) {
  auto r = parse_request_fields(type, p);
  // Every malformed request is EINVAL to the client, whatever check caught it.
  if (!r) return make_error(std::string(type) + ": " + r.error().message, EINVAL);
  return r;
}

Json to_payload(const FileResult& r) {
  Json p = Json::object();
  p["bytes"] = r.bytes;
  p["entries"] = r.entries;
  return p;
}

Result<FileResult> parse_file_result(const Json& p) {
  FileResult r;
  if (has(p, "bytes")) { MOAT_ASSIGN_OR_RETURN(r.bytes, get_uint(p, "bytes", ~0ull)); }
  if (has(p, "entries")) { MOAT_ASSIGN_OR_RETURN(r.entries, get_uint(p, "entries", ~0ull)); }
  return r;
}

std::optional<std::string_view> data_fast_path(std::string_view body) {
  auto v = view_data_body(body);
  if (!v || v->type != msg::kData || v->version != kProtocolVersion) return std::nullopt;
  return v->bytes;
}

std::string errno_name(int err) {
  const char* name = ::strerrorname_np(err);
  return name ? name : "EIO";
}

int errno_from_name(std::string_view name) {
  if (name.size() < 2 || name[0] != 'E') return 0;
  for (int e = 1; e < 134; ++e) {
    const char* n = ::strerrorname_np(e);
    if (n && name == n) return e;
  }
  return 0;
}

}  // namespace moat::proto
