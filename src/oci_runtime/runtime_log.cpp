#include "oci_runtime/runtime_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "oci_runtime/container_state.h"
#include "util/write_all.h"

namespace moat::oci {
namespace {

LogSettings g_log;

void append(const char* level, const std::string& message) {
  if (g_log.path.empty()) return;
  int fd = ::open(g_log.path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return;
  std::string line;
  if (g_log.format == "json") {
    line = nlohmann::json{{"level", level}, {"msg", message}, {"time", rfc3339_now()}}.dump() + "\n";
  } else {
    line = "time=\"" + rfc3339_now() + "\" level=" + level + " msg=" + nlohmann::json(message).dump() + "\n";
  }
  (void)write_all(fd, line);
  ::close(fd);
}

}  // namespace

void configure_log(const LogSettings& settings) { g_log = settings; }

void log_error(const std::string& message) {
  std::fprintf(stderr, "moat-runtime: %s\n", message.c_str());
  append("error", message);
}

void log_warning(const std::string& message) {
  if (g_log.debug) std::fprintf(stderr, "moat-runtime: warning: %s\n", message.c_str());
  append("warning", message);
}

}  // namespace moat::oci
