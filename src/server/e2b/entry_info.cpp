#include "server/e2b/entry_info.h"

#include <ctime>

namespace moat::server::e2b {

const char* file_type_name(FileType type) {
  switch (type) {
    case FileType::kFile: return "FILE_TYPE_FILE";
    case FileType::kDir: return "FILE_TYPE_DIRECTORY";
    case FileType::kSymlink: return "FILE_TYPE_SYMLINK";
    default: return "FILE_TYPE_UNSPECIFIED";
  }
}

std::string permissions_text(FileType type, std::uint32_t mode) {
  std::string out;
  switch (type) {
    case FileType::kDir: out += 'd'; break;
    case FileType::kSymlink: out += 'L'; break;
    case FileType::kBlock: out += 'D'; break;
    case FileType::kChar: out += "Dc"; break;
    case FileType::kFifo: out += 'p'; break;
    case FileType::kSocket: out += 'S'; break;
    case FileType::kFile: break;
  }
  if (mode & 04000) out += 'u';
  if (mode & 02000) out += 'g';
  if (mode & 01000) out += 't';
  if (out.empty()) out += '-';
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) out += (mode & (0400 >> i)) ? rwx[i] : '-';
  return out;
}

std::string timestamp_text(std::int64_t unix_ns) {
  std::int64_t secs = unix_ns / 1000000000;
  std::int64_t nanos = unix_ns % 1000000000;
  if (nanos < 0) {
    nanos += 1000000000;
    secs -= 1;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(buf, n);
  if (nanos) {
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%09lld", static_cast<long long>(nanos));
    out += frac;
  }
  return out + "Z";
}

std::string base_name(const std::string& path) {
  if (path == "/") return "/";
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  std::size_t slash = p.rfind('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

nlohmann::json entry_info_json(const std::string& path, const FileInfo& info, const GuestUsers& users) {
  nlohmann::json j = {
      {"name", base_name(path)},
      {"type", file_type_name(info.type)},
      {"path", path},
      {"size", std::to_string(info.size)},  // int64: a string in protobuf's JSON
      {"mode", info.mode & 07777},
      {"permissions", permissions_text(info.type, info.mode)},
      {"owner", users.user_name(info.uid)},
      {"group", users.group_name(info.gid)},
      {"modifiedTime", timestamp_text(info.mtime_ns)},
  };
  if (info.type == FileType::kSymlink) j["symlinkTarget"] = info.target;
  return j;
}

}  // namespace moat::server::e2b
