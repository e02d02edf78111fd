#include "server/e2b/connect_call.h"

#include "util/json_object.h"

namespace moat::server::e2b {

Result<ConnectCall> begin_call(E2bService& svc, const Request& req, CallKind expected, ConnectError& refusal) {
  auto kind = call_kind_of(req);
  if (!kind) {
    refusal = connect_error_of(kind.error());
    return kind.error();
  }
  if (*kind != expected) {
    refusal = {ConnectCode::kInvalidArgument,
               std::string("this method is ") + (expected == CallKind::kUnary ? "unary" : "server-streaming") +
                   ": send it with the matching content type"};
    return make_error(refusal.message, EINVAL);
  }
  // Who is asking before anything of the body is read.
  auto envd = svc.envd_call(req, refusal);
  if (!envd) return envd.error();
  std::string_view text = req.body;
  if (*kind == CallKind::kStreaming) {
    auto one = single_message(req.body);
    if (!one) {
      refusal = connect_error_of(one.error());
      return one.error();
    }
    text = *one;
  }
  auto message = parse_json_object(text.empty() ? std::string_view("{}") : text, "request", kMaxRequestMessage);
  if (!message) {
    refusal = connect_error_of(message.error());
    return message.error();
  }
  return ConnectCall{std::move(*envd), std::move(*message)};
}

}  // namespace moat::server::e2b
