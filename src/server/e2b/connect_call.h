// The start every envd Connect method shares: the call kind checked against
// the method's, the one request message read (bounded), the sandbox and
// user of the call. On failure `refusal` says what to answer.
#pragma once

#include <optional>

#include <nlohmann/json.hpp>

#include "server/e2b/binary_codec.h"
#include "server/e2b/e2b_service.h"

namespace moat::server::e2b {

struct ConnectCall {
  EnvdCall envd;
  nlohmann::json message;
  std::optional<BinaryCodec> codec;  // set when the call is in the binary codec
};

inline constexpr std::size_t kMaxRequestMessage = 4 << 20;

Result<ConnectCall> begin_call(E2bService& service, const Request& req, CallKind expected, ConnectError& refusal);

// A unary call's answer, `json` in the call's codec.
Response unary_answer(const ConnectCall& call, const std::string& json);
// A stream's message (the JSON of one response) as the envelope to send.
Result<std::string> stream_envelope(const std::optional<BinaryCodec>& codec, std::string_view json);
// The Content-Type of a stream answer in the call's codec.
const char* stream_content_type(const std::optional<BinaryCodec>& codec);
// Wraps an envd Connect handler: a stream refused before its first message
// still answers in the content type of the request's codec.
Handler connect_route(Handler handler);

}  // namespace moat::server::e2b
