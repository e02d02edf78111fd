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
  std::optional<BinaryCodec> codec;
  std::string decoded;
  if (binary_codec_of(req)) {
    codec = BinaryCodec::for_path(req.path);
    if (!codec) {
      refusal = {ConnectCode::kUnimplemented, "no binary codec for " + req.path};
      return make_error(refusal.message, ENOTSUP);
    }
  }
  if (*kind == CallKind::kStreaming) {
    auto one = single_message(req.body);
    if (!one) {
      refusal = connect_error_of(one.error());
      return one.error();
    }
    text = *one;
  }
  if (codec) {
    auto json = codec->request_json(text);
    if (!json) {
      refusal = connect_error_of(json.error());
      return json.error();
    }
    decoded = std::move(*json);
    text = decoded;
  }
  auto message = parse_json_object(text.empty() ? std::string_view("{}") : text, "request", kMaxRequestMessage);
  if (!message) {
    refusal = connect_error_of(message.error());
    return message.error();
  }
  return ConnectCall{std::move(*envd), std::move(*message), std::move(codec)};
}

Response unary_answer(const ConnectCall& call, const std::string& json) {
  if (!call.codec) return unary_ok(json);
  auto bytes = call.codec->response_bytes(json);
  if (!bytes) return unary_error({ConnectCode::kInternal, bytes.error().message});
  Response r = unary_ok(std::move(*bytes));
  r.content_type = "application/proto";
  return r;
}

Result<std::string> stream_envelope(const std::optional<BinaryCodec>& codec, std::string_view json) {
  if (!codec) return envelope(json);
  MOAT_ASSIGN_OR_RETURN(std::string bytes, codec->response_bytes(json));
  return envelope(bytes);
}

const char* stream_content_type(const std::optional<BinaryCodec>& codec) {
  return codec ? "application/connect+proto" : "application/connect+json";
}

Handler connect_route(Handler handler) {
  return [handler = std::move(handler)](Request& req) {
    Response r = handler(req);
    if (binary_codec_of(req) && r.content_type == "application/connect+json") r.content_type = "application/connect+proto";
    return r;
  };
}

}  // namespace moat::server::e2b
