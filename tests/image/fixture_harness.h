// Test support for the fixture images: where the OCI layouts come from
// (the scripts in tests/image and tests/fixtures), pushing a layout into a
// LocalRegistry with skopeo, and checks that a failed pull left nothing
// visible behind.
#pragma once

#include <string>
#include <vector>

#include "image/oci/digest.h"
#include "image/registry_harness.h"

namespace moat::image::testing {

// The Debian minbase + python3 OCI layout (tag "python3"), built by
// tests/fixtures/make-debian-python.sh on first use (debootstrap, a few
// minutes, needs root and the apt mirror) and cached under
// ${XDG_CACHE_HOME:-~/.cache}/moat/fixtures. Empty on failure, with the
// script's stderr in *err.
inline std::string debian_python_layout(const std::string& scratch, std::string* err) {
  auto r = run({std::string(MOAT_FIXTURES_DIR) + "/make-debian-python.sh"}, {}, scratch);
  std::string path = r.out.substr(0, r.out.find('\n'));
  if (r.exit_code != 0 || path.empty()) {
    *err = "make-debian-python.sh exited " + std::to_string(r.exit_code) + ": " + r.err;
    return "";
  }
  return path;
}

// skopeo copy oci:LAYOUT:TAG docker://DEST (plain HTTP).
inline CmdResult skopeo_push(const std::string& layout, const std::string& tag, const std::string& dest,
                             const std::string& scratch) {
  return run({"skopeo", "copy", "--quiet", "--dest-tls-verify=false", "oci:" + layout + ":" + tag,
              "docker://" + dest},
             {}, scratch);
}

// The digest the registry serves for a reference (sha256 of the raw manifest).
inline std::string registry_digest(const std::string& ref, const std::string& scratch) {
  auto r = run({"skopeo", "inspect", "--tls-verify=false", "--raw", "docker://" + ref}, {}, scratch);
  return r.exit_code == 0 ? sha256_digest(r.out) : "skopeo inspect failed: " + r.err;
}

// Files in blobs/sha256 whose content does not hash to their name: must be
// none, whatever a pull did.
inline std::vector<std::string> unverified_blobs(const std::string& home) {
  std::vector<std::string> bad;
  for (const auto& name : list_dir(home + "/blobs/sha256")) {
    if (sha256_digest(read_file(home + "/blobs/sha256/" + name)) != "sha256:" + name) bad.push_back(name);
  }
  return bad;
}

// Every file below `dir`, relative, sorted (a sentinel's inventory).
inline std::vector<std::string> tree_listing(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    out.push_back(std::filesystem::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace moat::image::testing
