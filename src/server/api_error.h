// Errors as the server answers them: `{"error": {"kind", "message"}}` with
// the HTTP status that fits the kind (docs/server.md lists them).
#pragma once

#include <string>

#include "moat/result.h"
#include "server/http_types.h"

namespace moat::server {

int http_status_of(const Error& error);
Response error_response(const Error& error);
// For the server's own refusals: `kind` as moat's ErrorKind names it.
Response error_response(int status, const std::string& kind, const std::string& message);
std::string error_json(const std::string& kind, const std::string& message);

// Helpers for handlers.
Response json_response(int status, std::string body);

}  // namespace moat::server
