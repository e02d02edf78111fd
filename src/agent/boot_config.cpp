#include "agent/boot_config.h"

#include "proto/boot_args.h"

namespace moat::agent {
namespace {

void apply_option(BootConfig& cfg, std::string_view key, std::string_view value) {
  if (key == "moat.root") {
    if (value == "overlay") cfg.root = RootMode::kOverlay;
    else if (value == "rw") cfg.root = RootMode::kWritable;
    else if (value == "virtiofs") cfg.root = RootMode::kVirtiofs;
    else cfg.root = RootMode::kNone;
  } else if (key == "moat.lowerfs") {
    if (value == "erofs" || value == "ext4") cfg.lower_fs = std::string(value);
  } else if (key == "moat.hostname") {
    if (proto::valid_hostname(value)) cfg.hostname = std::string(value);
  } else if (key == "moat.mount") {
    auto m = proto::decode_guest_mount(value);
    if (!m) {
      cfg.mount_error = m.error().message;
    } else if (cfg.mounts.size() >= proto::kMaxGuestMounts) {
      cfg.mount_error = "more than " + std::to_string(proto::kMaxGuestMounts) + " moat.mount options";
    } else {
      cfg.mounts.push_back(std::move(*m));
    }
  } else if (key == "moat.net") {
    cfg.network = value == "1";
  } else if (key == "moat.port") {
    if (!value.empty() && value.size() < 64) cfg.port_name = std::string(value);
  }
}

}  // namespace

BootConfig parse_boot_config(std::string_view cmdline) {
  BootConfig cfg;
  std::size_t pos = 0;
  while (pos < cmdline.size()) {
    while (pos < cmdline.size() && (cmdline[pos] == ' ' || cmdline[pos] == '\n')) ++pos;
    std::size_t end = pos;
    while (end < cmdline.size() && cmdline[end] != ' ' && cmdline[end] != '\n') ++end;
    std::string_view word = cmdline.substr(pos, end - pos);
    auto eq = word.find('=');
    // The host percent-encodes every moat.* value (proto/boot_args.h); one
    // that does not decode is ignored like any other malformed value.
    if (eq != std::string_view::npos) {
      auto value = proto::decode_boot_value(word.substr(eq + 1));
      if (value) apply_option(cfg, word.substr(0, eq), *value);
    }
    pos = end;
  }
  return cfg;
}

}  // namespace moat::agent
