#include "image/oci/reference.h"

#include <cctype>

#include "image/oci/digest.h"

namespace moat::image {
namespace {

// The distribution spec caps the full name (registry + repository).
constexpr std::size_t kMaxNameLength = 255;
constexpr std::size_t kMaxTagLength = 128;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; }

Error bad(std::string_view text, const std::string& why) {
  return make_error("invalid image reference '" + std::string(text) + "': " + why, EINVAL);
}

// component := [a-z0-9]+ (("." | "_" | "__" | "-"+) [a-z0-9]+)*
bool valid_path_component(std::string_view c) {
  std::size_t i = 0;
  while (true) {
    std::size_t start = i;
    while (i < c.size() && is_lower_alnum(c[i])) ++i;
    if (i == start) return false;  // empty, or a separator at a boundary
    if (i == c.size()) return true;
    if (c[i] == '.') {
      ++i;
    } else if (c[i] == '_') {
      ++i;
      if (i < c.size() && c[i] == '_') ++i;
    } else if (c[i] == '-') {
      while (i < c.size() && c[i] == '-') ++i;
    } else {
      return false;
    }
  }
}

bool has_upper(std::string_view s) {
  for (char c : s) {
    if (c >= 'A' && c <= 'Z') return true;
  }
  return false;
}

// host label: alnum, with inner dashes.
bool valid_host_label(std::string_view label) {
  if (label.empty() || !is_alnum(label.front()) || !is_alnum(label.back())) return false;
  for (char c : label) {
    if (!is_alnum(c) && c != '-') return false;
  }
  return true;
}

bool valid_port(std::string_view port) {
  if (port.empty() || port.size() > 5) return false;
  unsigned value = 0;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  return value > 0 && value <= 65535;
}

bool valid_ipv6_literal(std::string_view inside) {
  if (inside.empty() || inside.size() > 45) return false;
  for (char c : inside) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
  }
  return inside.find(':') != std::string_view::npos;
}

Status validate_registry(std::string_view text, std::string_view registry) {
  std::string_view host = registry;
  std::string_view port;
  if (!registry.empty() && registry.front() == '[') {
    auto close = registry.find(']');
    if (close == std::string_view::npos || !valid_ipv6_literal(registry.substr(1, close - 1))) {
      return bad(text, "malformed IPv6 registry address");
    }
    host = registry.substr(0, close + 1);
    std::string_view rest = registry.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad(text, "malformed registry address");
      port = rest.substr(1);
      if (!valid_port(port)) return bad(text, "invalid registry port '" + std::string(port) + "'");
    }
    return ok_status();
  }
  if (auto colon = registry.find(':'); colon != std::string_view::npos) {
    host = registry.substr(0, colon);
    port = registry.substr(colon + 1);
    if (!valid_port(port)) return bad(text, "invalid registry port '" + std::string(port) + "'");
  }
  std::size_t pos = 0;
  while (true) {
    auto dot = host.find('.', pos);
    std::string_view label = host.substr(pos, dot == std::string_view::npos ? dot : dot - pos);
    if (!valid_host_label(label)) {
      return bad(text, "invalid registry host '" + std::string(host) + "'");
    }
    if (dot == std::string_view::npos) break;
    pos = dot + 1;
  }
  return ok_status();
}

Status validate_repository(std::string_view text, std::string_view repo) {
  if (repo.empty()) return bad(text, "empty repository name");
  if (has_upper(repo)) return bad(text, "repository name must be lowercase");
  std::size_t pos = 0;
  while (true) {
    auto slash = repo.find('/', pos);
    std::string_view comp = repo.substr(pos, slash == std::string_view::npos ? slash : slash - pos);
    if (comp.empty()) return bad(text, "empty path component in repository name");
    if (!valid_path_component(comp)) {
      return bad(text, "invalid repository path component '" + std::string(comp) + "'");
    }
    if (slash == std::string_view::npos) break;
    pos = slash + 1;
  }
  return ok_status();
}

Status validate_tag(std::string_view text, std::string_view tag) {
  if (tag.empty()) return bad(text, "empty tag");
  if (tag.size() > kMaxTagLength) return bad(text, "tag longer than 128 characters");
  if (!is_alnum(tag.front()) && tag.front() != '_') {
    return bad(text, "tag must start with a letter, digit or '_'");
  }
  for (char c : tag) {
    if (!is_alnum(c) && c != '_' && c != '.' && c != '-') {
      return bad(text, "invalid character in tag '" + std::string(tag) + "'");
    }
  }
  return ok_status();
}

// Docker's rule: the first component names a registry when it looks like a
// host ("." or ":" in it, or "localhost"), or has capitals (repositories cannot).
bool looks_like_registry(std::string_view first) {
  return first.find_first_of(".:") != std::string_view::npos || first == "localhost" ||
         has_upper(first) || (!first.empty() && first.front() == '[');
}

}  // namespace

std::string Reference::to_string() const {
  std::string out = name();
  if (!tag.empty()) out += ":" + tag;
  if (!digest.empty()) out += "@" + digest;
  return out;
}

std::string Reference::api_host() const {
  return registry == kDefaultRegistry ? std::string("registry-1.docker.io") : registry;
}

Result<Reference> parse_reference(std::string_view text) {
  if (text.empty()) return bad(text, "empty reference");
  if (text.size() > kMaxNameLength + 1 + kMaxTagLength + 1 + 7 + kSha256HexLength) {
    return bad(text.substr(0, 64), "reference too long");
  }
  Reference ref;
  std::string_view rest = text;
  if (auto at = rest.find('@'); at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    if (auto st = validate_digest(digest); !st.ok()) return bad(text, st.error().message);
    ref.digest = std::string(digest);
    rest = rest.substr(0, at);
  }
  // A tag is a ':' after the last '/', so a registry port is never taken for one.
  auto last_slash = rest.rfind('/');
  auto colon = rest.rfind(':');
  if (colon != std::string_view::npos &&
      (last_slash == std::string_view::npos || colon > last_slash)) {
    std::string_view tag = rest.substr(colon + 1);
    MOAT_TRY(validate_tag(text, tag));
    ref.tag = std::string(tag);
    rest = rest.substr(0, colon);
  }
  if (rest.empty()) return bad(text, "empty repository name");

  auto first_slash = rest.find('/');
  if (first_slash != std::string_view::npos && looks_like_registry(rest.substr(0, first_slash))) {
    ref.registry = std::string(rest.substr(0, first_slash));
    if (ref.registry.empty()) return bad(text, "empty registry");
    MOAT_TRY(validate_registry(text, ref.registry));
    ref.repository = std::string(rest.substr(first_slash + 1));
  } else {
    ref.registry = std::string(kDefaultRegistry);
    ref.repository = std::string(rest);
  }
  if (ref.registry == "index.docker.io" || ref.registry == "registry-1.docker.io") {
    ref.registry = std::string(kDefaultRegistry);
  }
  MOAT_TRY(validate_repository(text, ref.repository));
  if (ref.registry == kDefaultRegistry && ref.repository.find('/') == std::string::npos) {
    ref.repository = "library/" + ref.repository;
  }
  if (ref.name().size() > kMaxNameLength) return bad(text, "repository name too long");
  if (ref.tag.empty() && ref.digest.empty()) ref.tag = std::string(kDefaultTag);
  return ref;
}

}  // namespace moat::image
