#include "server/api_error.h"

#include <nlohmann/json.hpp>

namespace moat::server {

int http_status_of(const Error& error) {
  switch (error.kind()) {
    case ErrorKind::kNotFound: return 404;
    case ErrorKind::kAlreadyExists: return 409;
    case ErrorKind::kInvalidArgument: return 400;
    case ErrorKind::kBusy: return 409;
    case ErrorKind::kNotRunning: return 409;
    case ErrorKind::kTimedOut: return 504;
    case ErrorKind::kInterrupted: return 503;
    case ErrorKind::kPermissionDenied: return 403;
    case ErrorKind::kResourceExhausted: return 507;
    case ErrorKind::kUnsupported: return 501;
    case ErrorKind::kProtocol: return 502;
    case ErrorKind::kIo:
    case ErrorKind::kUnknown: return 500;
  }
  return 500;
}

std::string error_json(const std::string& kind, const std::string& message) {
  nlohmann::json j = {{"error", {{"kind", kind}, {"message", message}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response error_response(int status, const std::string& kind, const std::string& message) {
  return json_response(status, error_json(kind, message));
}

Response error_response(const Error& error) {
  return error_response(http_status_of(error), to_string(error.kind()), error.message);
}

Response json_response(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

}  // namespace moat::server
