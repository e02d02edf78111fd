// Untrusted manifest, index and config bodies: every parser must return a
// value or an error, never crash or throw.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "image/oci/manifest.h"
#include "image/oci/reference.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace moat::image;
  std::string_view body(reinterpret_cast<const char*>(data), size);
  (void)detect_manifest_kind(body, "");
  if (auto index = parse_index(body); index.ok()) {
    (void)select_platform(*index, default_platform());
  }
  auto manifest = parse_manifest(body);
  auto config = parse_config(body);
  if (manifest.ok() && config.ok()) (void)check_layer_count(*manifest, *config);
  (void)parse_reference(body.substr(0, 512));
  (void)parse_platform(body.substr(0, 64));
  return 0;
}
