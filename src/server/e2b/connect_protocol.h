// The Connect protocol (connectrpc.com/docs/protocol) as E2B's envd speaks
// it to the e2b SDKs, with the JSON codec (the JS SDK) or the binary one
// (the Python SDK; binary_codec.h translates it to JSON for the handlers):
//   unary:            POST /pkg.Service/Method, Content-Type application/json,
//                     the message as the body; an error is an HTTP status
//                     with {"code", "message"}.
//   server streaming: Content-Type application/connect+json; request and
//                     answer are envelopes (flags u8, length u32 big-endian,
//                     payload); the last answer envelope has flag 0x02 and
//                     carries {} or {"error": {"code", "message"}}.
// The request bodies come from any client that has the sandbox's access
// token: every length is checked against the body, and one message is the
// most a server-streaming request may carry.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "moat/result.h"
#include "server/http_types.h"

namespace moat::server::e2b {

// Connect's error codes, as their wire names ("not_found").
enum class ConnectCode {
  kCanceled,
  kUnknown,
  kInvalidArgument,
  kDeadlineExceeded,
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,
  kResourceExhausted,
  kFailedPrecondition,
  kAborted,
  kOutOfRange,
  kUnimplemented,
  kInternal,
  kUnavailable,
  kDataLoss,
  kUnauthenticated,
};

const char* wire_name(ConnectCode code);
// The HTTP status a unary error goes with (Connect's table).
int http_status_of(ConnectCode code);
// A moat error as the Connect code the SDK maps to its own error types:
// ENOENT not_found (NotFoundError), EEXIST already_exists, a stopped
// sandbox unavailable, ...
ConnectCode connect_code_of(const Error& error);

struct ConnectError {
  ConnectCode code = ConnectCode::kUnknown;
  std::string message;
};
ConnectError connect_error_of(const Error& error);
// {"code": "...", "message": "..."}
std::string error_json(const ConnectError& error);

// Envelope flags.
constexpr std::uint8_t kEnvelopeCompressed = 0x01;
constexpr std::uint8_t kEnvelopeEndStream = 0x02;
constexpr std::size_t kEnvelopeHeadSize = 5;

std::string envelope(std::string_view payload, std::uint8_t flags = 0);
// The end-of-stream envelope: {} or the error.
std::string end_stream(const std::optional<ConnectError>& error = std::nullopt);

// The one message of a server-streaming request body: exactly one
// uncompressed envelope, nothing after it. EINVAL naming what is wrong.
Result<std::string_view> single_message(std::string_view body);

// What kind of call a request is, from its Content-Type; an error for a
// codec or compression this server does not speak (gzip, ...).
enum class CallKind { kUnary, kStreaming };
Result<CallKind> call_kind_of(const Request& req);
// Whether the request is in Connect's binary codec (application/proto,
// application/connect+proto).
bool binary_codec_of(const Request& req);

// Answers in the form the call kind needs.
Response unary_ok(std::string json);
Response unary_error(const ConnectError& error);
// For a streaming call that fails before its first message: the HTTP
// answer is 200 and the error rides the end-of-stream envelope.
Response streaming_error(const ConnectError& error);
Response error_for(CallKind kind, const ConnectError& error);

}  // namespace moat::server::e2b
