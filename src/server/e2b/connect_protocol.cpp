#include "server/e2b/connect_protocol.h"

#include <cerrno>

#include <nlohmann/json.hpp>

#include "util/ascii_case.h"

namespace moat::server::e2b {

const char* wire_name(ConnectCode code) {
  switch (code) {
    case ConnectCode::kCanceled: return "canceled";
    case ConnectCode::kUnknown: return "unknown";
    case ConnectCode::kInvalidArgument: return "invalid_argument";
    case ConnectCode::kDeadlineExceeded: return "deadline_exceeded";
    case ConnectCode::kNotFound: return "not_found";
    case ConnectCode::kAlreadyExists: return "already_exists";
    case ConnectCode::kPermissionDenied: return "permission_denied";
    case ConnectCode::kResourceExhausted: return "resource_exhausted";
    case ConnectCode::kFailedPrecondition: return "failed_precondition";
    case ConnectCode::kAborted: return "aborted";
    case ConnectCode::kOutOfRange: return "out_of_range";
    case ConnectCode::kUnimplemented: return "unimplemented";
    case ConnectCode::kInternal: return "internal";
    case ConnectCode::kUnavailable: return "unavailable";
    case ConnectCode::kDataLoss: return "data_loss";
    case ConnectCode::kUnauthenticated: return "unauthenticated";
  }
  return "unknown";
}

int http_status_of(ConnectCode code) {
  switch (code) {
    case ConnectCode::kCanceled: return 499;
    case ConnectCode::kInvalidArgument: return 400;
    case ConnectCode::kDeadlineExceeded: return 504;
    case ConnectCode::kNotFound: return 404;
    case ConnectCode::kAlreadyExists: return 409;
    case ConnectCode::kPermissionDenied: return 403;
    case ConnectCode::kResourceExhausted: return 429;
    case ConnectCode::kFailedPrecondition: return 400;
    case ConnectCode::kAborted: return 409;
    case ConnectCode::kOutOfRange: return 400;
    case ConnectCode::kUnimplemented: return 501;
    case ConnectCode::kUnavailable: return 503;
    case ConnectCode::kUnauthenticated: return 401;
    case ConnectCode::kUnknown:
    case ConnectCode::kInternal:
    case ConnectCode::kDataLoss: return 500;
  }
  return 500;
}

ConnectCode connect_code_of(const Error& error) {
  switch (error.kind()) {
    case ErrorKind::kNotFound: return ConnectCode::kNotFound;
    case ErrorKind::kAlreadyExists: return ConnectCode::kAlreadyExists;
    case ErrorKind::kInvalidArgument: return ConnectCode::kInvalidArgument;
    case ErrorKind::kBusy: return ConnectCode::kAborted;
    // The SDK reads unavailable as "the sandbox is not running anymore".
    case ErrorKind::kNotRunning: return ConnectCode::kUnavailable;
    case ErrorKind::kTimedOut: return ConnectCode::kDeadlineExceeded;
    case ErrorKind::kInterrupted: return ConnectCode::kCanceled;
    case ErrorKind::kPermissionDenied: return ConnectCode::kPermissionDenied;
    case ErrorKind::kResourceExhausted: return ConnectCode::kResourceExhausted;
    case ErrorKind::kUnsupported: return ConnectCode::kUnimplemented;
    case ErrorKind::kProtocol:
    case ErrorKind::kIo: return ConnectCode::kInternal;
    case ErrorKind::kUnknown: return ConnectCode::kUnknown;
  }
  return ConnectCode::kUnknown;
}

ConnectError connect_error_of(const Error& error) { return {connect_code_of(error), error.message}; }

std::string error_json(const ConnectError& error) {
  return nlohmann::json{{"code", wire_name(error.code)}, {"message", error.message}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string envelope(std::string_view payload, std::uint8_t flags) {
  std::string out;
  out.reserve(kEnvelopeHeadSize + payload.size());
  auto n = static_cast<std::uint32_t>(payload.size());
  out.push_back(static_cast<char>(flags));
  out.push_back(static_cast<char>(n >> 24));
  out.push_back(static_cast<char>(n >> 16));
  out.push_back(static_cast<char>(n >> 8));
  out.push_back(static_cast<char>(n));
  out.append(payload);
  return out;
}

std::string end_stream(const std::optional<ConnectError>& error) {
  if (!error) return envelope("{}", kEnvelopeEndStream);
  return envelope("{\"error\":" + error_json(*error) + "}", kEnvelopeEndStream);
}

Result<std::string_view> single_message(std::string_view body) {
  if (body.size() < kEnvelopeHeadSize)
    return make_error("the request is not a Connect envelope (" + std::to_string(body.size()) + " bytes)", EINVAL);
  auto flags = static_cast<std::uint8_t>(body[0]);
  if (flags & kEnvelopeCompressed) return make_error("compressed request messages are not supported", EINVAL);
  if (flags != 0) return make_error("unexpected envelope flags " + std::to_string(flags), EINVAL);
  std::uint64_t n = 0;
  for (int i = 1; i <= 4; ++i) n = (n << 8) | static_cast<std::uint8_t>(body[i]);
  if (n != body.size() - kEnvelopeHeadSize)
    return make_error("the envelope says " + std::to_string(n) + " bytes but " +
                          std::to_string(body.size() - kEnvelopeHeadSize) + " follow (one message per request)",
                      EINVAL);
  return body.substr(kEnvelopeHeadSize);
}

namespace {

std::string media_type(const Request& req) {
  std::string type = req.header("content-type");
  std::size_t semi = type.find(';');
  if (semi != std::string::npos) type.resize(semi);
  while (!type.empty() && type.back() == ' ') type.pop_back();
  return ascii_lower(type);
}

}  // namespace

Result<CallKind> call_kind_of(const Request& req) {
  std::string type = media_type(req);
  std::string encoding = req.header("content-encoding");
  std::string stream_encoding = req.header("connect-content-encoding");
  if ((!encoding.empty() && encoding != "identity") || (!stream_encoding.empty() && stream_encoding != "identity"))
    return make_error("compressed requests are not supported (send them uncompressed)", ENOTSUP);
  if (type == "application/json" || type == "application/proto") return CallKind::kUnary;
  if (type == "application/connect+json" || type == "application/connect+proto") return CallKind::kStreaming;
  return make_error("content type '" + type +
                        "' is not served: this endpoint speaks Connect with the JSON or binary codec "
                        "(application/json, application/proto, application/connect+json, application/connect+proto)",
                    ENOTSUP);
}

bool binary_codec_of(const Request& req) {
  std::string type = media_type(req);
  return type == "application/proto" || type == "application/connect+proto";
}

Response unary_ok(std::string json) {
  Response r;
  r.body = std::move(json);
  return r;
}

Response unary_error(const ConnectError& error) {
  Response r;
  r.status = http_status_of(error.code);
  r.body = error_json(error);
  return r;
}

Response streaming_error(const ConnectError& error) {
  Response r;
  r.content_type = "application/connect+json";
  r.body = end_stream(error);
  return r;
}

Response error_for(CallKind kind, const ConnectError& error) {
  return kind == CallKind::kStreaming ? streaming_error(error) : unary_error(error);
}

}  // namespace moat::server::e2b
