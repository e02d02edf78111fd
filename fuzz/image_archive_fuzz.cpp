// Fuzzes the metadata parsers of image archives (image_archive_index.h):
// docker-archive manifest.json, index.json with the names its annotations
// give, oci-layout, and the lexical handling of archive entry paths and
// symlink targets. The first byte picks the parser; the rest is its input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "image/oci/image_archive_index.h"

using namespace moat::image;

namespace {

// A ".." component or a leading "/" would let an entry leave the archive.
bool escapes(const std::string& p) {
  if (!p.empty() && p.front() == '/') return true;
  std::string padded = "/" + p + "/";
  return padded.find("/../") != std::string::npos;
}

void check_clean(std::string_view path) {
  auto p = clean_archive_path(path);
  if (!p) return;
  if (escapes(*p)) __builtin_trap();
  auto again = clean_archive_path(*p);
  if (!again || *again != *p) __builtin_trap();  // cleaning is idempotent
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      auto images = parse_docker_archive_manifest(in);
      if (images) {
        for (const auto& img : *images) {
          check_clean(img.config);
          for (const auto& l : img.layers) check_clean(l);
          for (const auto& t : img.repo_tags) (void)name_from_repo_tag(t);
        }
      }
      break;
    }
    case 1: {
      auto index = parse_layout_index(in);
      if (index) {
        for (const auto& d : index->manifests) (void)names_from_annotations(d);
      }
      break;
    }
    case 2:
      (void)check_oci_layout_file(in);
      break;
    case 3: {
      auto nl = in.find('\n');
      std::string_view link = in.substr(0, nl);
      std::string_view target = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
      check_clean(link);
      auto r = resolve_archive_link(link, target);
      if (r && escapes(*r)) __builtin_trap();
      (void)digest_from_blob_path(link);
      break;
    }
  }
  return 0;
}
