// The start every envd Connect method shares: the call kind checked against
// the method's, the one request message read (bounded), the sandbox and
// user of the call. On failure `refusal` says what to answer.
#pragma once

#include <nlohmann/json.hpp>

#include "server/e2b/e2b_service.h"

namespace moat::server::e2b {

struct ConnectCall {
  EnvdCall envd;
  nlohmann::json message;
};

inline constexpr std::size_t kMaxRequestMessage = 4 << 20;

Result<ConnectCall> begin_call(E2bService& service, const Request& req, CallKind expected, ConnectError& refusal);

}  // namespace moat::server::e2b
