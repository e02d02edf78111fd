// Connect's binary codec (application/proto, application/connect+proto) for
// envd's services, as a translation to and from the JSON form of the same
// messages that the handlers work on: protobuf's own JSON mapping
// (libprotobuf) does both directions, from the message types of
// envd/process.proto and envd/filesystem.proto. E2B's Python SDK speaks
// this codec; the JS SDK speaks JSON.
//
// Request bytes come from any holder of a sandbox's access token: parsing is
// libprotobuf's (bounded nesting), the body is bounded by the server, and a
// message that does not parse is an invalid_argument error.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "moat/result.h"

namespace google::protobuf {
class MethodDescriptor;
}

namespace moat::server::e2b {

class BinaryCodec {
 public:
  // The codec of the method at `path` ("/process.Process/Start"); nullopt
  // when no such method is known.
  static std::optional<BinaryCodec> for_path(std::string_view path);

  // A request message's bytes as JSON text.
  Result<std::string> request_json(std::string_view bytes) const;
  // A response message, given as JSON text, in bytes.
  Result<std::string> response_bytes(std::string_view json) const;

 private:
  explicit BinaryCodec(const google::protobuf::MethodDescriptor* method) : method_(method) {}
  const google::protobuf::MethodDescriptor* method_;
};

}  // namespace moat::server::e2b
