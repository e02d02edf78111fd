// Named volumes: host directories that moat manages under
// $MOAT_HOME/volumes/<name>/data and that several sandboxes may mount at
// once (`moat run -v NAME:/guest/path`).
//
//   moat::create_volume("cache");
//   moat::create_sandbox({.name = "a", .volumes = {{"cache", "/cache"}}});
//   moat::remove_volume("cache");   // refused while a sandbox uses it
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "moat/result.h"

namespace moat {

struct VolumeInfo {
  std::string name;
  std::string path;  // the host directory the sandboxes see
  std::int64_t created_at = 0;  // unix seconds
  std::map<std::string, std::string> labels;
  std::vector<std::string> used_by;  // names of sandboxes that mount it
};

// Creates a volume; an empty name gets a random one. Creating a volume that
// exists is an error (EEXIST).
Result<VolumeInfo> create_volume(const std::string& name, const std::map<std::string, std::string>& labels = {});
Result<VolumeInfo> inspect_volume(const std::string& name);
Result<std::vector<VolumeInfo>> list_volumes();
// Removes a volume and its data. Refused while any sandbox (running or not)
// mounts it; force removes it anyway and those sandboxes fail to start.
Status remove_volume(const std::string& name, bool force = false);

// Whether `source` of a VolumeMount names a volume (no '/' and not starting
// with '.') rather than a host directory.
bool is_volume_name(const std::string& source);

}  // namespace moat
