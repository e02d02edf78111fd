// Image references: `[registry/]repository[:tag][@digest]`, normalised the way
// Docker does it, so `busybox` means `docker.io/library/busybox:latest`.
//
// The grammar follows the distribution reference grammar:
//   registry   := host [":" port]      (first component with "." or ":", or "localhost")
//   repository := component ("/" component)*
//   component  := [a-z0-9]+ (separator [a-z0-9]+)*   separator := "." | "_" | "__" | "-"+
//   tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
//   digest     := "sha256:" 64 lowercase hex digits
#pragma once

#include <string>
#include <string_view>

#include "util/result.h"

namespace moat::image {

inline constexpr std::string_view kDefaultRegistry = "docker.io";
inline constexpr std::string_view kDefaultTag = "latest";

struct Reference {
  std::string registry;    // "docker.io", "localhost:5000", "[::1]:5000"
  std::string repository;  // "library/busybox"
  std::string tag;         // empty only when a digest pins the image
  std::string digest;      // "sha256:…" or empty

  // "docker.io/library/busybox"
  std::string name() const { return registry + "/" + repository; }
  // Full canonical form: name, then ":tag" if any, then "@digest" if any.
  std::string to_string() const;
  // The host to talk to: Docker Hub's API lives on registry-1.docker.io.
  std::string api_host() const;

  bool operator==(const Reference&) const = default;
};

// Parses and normalises a reference; the error says which part is malformed.
Result<Reference> parse_reference(std::string_view text);

}  // namespace moat::image
