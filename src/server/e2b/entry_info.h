// envd's filesystem.EntryInfo as JSON, from moat's FileInfo.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "moat/sandbox.h"
#include "server/e2b/guest_users.h"

namespace moat::server::e2b {

// `path` is absolute; its last part is the name.
nlohmann::json entry_info_json(const std::string& path, const FileInfo& info, const GuestUsers& users);
// "FILE_TYPE_FILE", "FILE_TYPE_DIRECTORY", "FILE_TYPE_SYMLINK"; anything
// else (devices, fifos, sockets) "FILE_TYPE_UNSPECIFIED".
const char* file_type_name(FileType type);
// As Go's fs.FileMode.String() writes it ("drwxr-xr-x"), which envd sends.
std::string permissions_text(FileType type, std::uint32_t mode);
// RFC 3339 in UTC with nanoseconds, as protobuf's JSON Timestamp.
std::string timestamp_text(std::int64_t unix_ns);
std::string base_name(const std::string& path);

}  // namespace moat::server::e2b
