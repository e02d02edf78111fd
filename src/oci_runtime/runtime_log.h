// Where moat-runtime's messages go, as runc's do: errors to stderr and, with
// --log, one line each to the log file (`--log-format json`: {"level",
// "msg", "time"}, which podman and containerd read back to show the error;
// text: time="..." level=error msg="..."). Warnings (config fields not
// applied) go only to the log, or to stderr under --debug.
#pragma once

#include <string>

namespace moat::oci {

struct LogSettings {
  std::string path;            // "" : no log file
  std::string format = "text"; // "text" | "json"
  bool debug = false;
};

void configure_log(const LogSettings& settings);
void log_error(const std::string& message);
void log_warning(const std::string& message);

}  // namespace moat::oci
