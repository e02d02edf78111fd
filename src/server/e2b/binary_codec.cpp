#include "server/e2b/binary_codec.h"

#include <cerrno>
#include <memory>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>
#include <google/protobuf/util/json_util.h>

#include "server/e2b/envd/filesystem.pb.h"
#include "server/e2b/envd/process.pb.h"

namespace moat::server::e2b {
namespace {

namespace pb = google::protobuf;

// The generated files register their types in the generated pool when
// linked; naming one type of each keeps the linker from dropping them.
const pb::DescriptorPool& envd_pool() {
  static const bool linked = [] {
    (void)process::StartRequest::descriptor();
    (void)filesystem::StatRequest::descriptor();
    return true;
  }();
  (void)linked;
  return *pb::DescriptorPool::generated_pool();
}

std::unique_ptr<pb::Message> new_message(const pb::Descriptor* type) {
  const pb::Message* prototype = pb::MessageFactory::generated_factory()->GetPrototype(type);
  return std::unique_ptr<pb::Message>(prototype ? prototype->New() : nullptr);
}

}  // namespace

std::optional<BinaryCodec> BinaryCodec::for_path(std::string_view path) {
  // "/process.Process/Start" → "process.Process.Start"
  if (path.size() < 4 || path.front() != '/') return std::nullopt;
  std::string name(path.substr(1));
  std::size_t slash = name.find('/');
  if (slash == std::string::npos || name.find('/', slash + 1) != std::string::npos) return std::nullopt;
  name[slash] = '.';
  const pb::MethodDescriptor* m = envd_pool().FindMethodByName(name);
  if (!m) return std::nullopt;
  return BinaryCodec(m);
}

Result<std::string> BinaryCodec::request_json(std::string_view bytes) const {
  auto msg = new_message(method_->input_type());
  if (!msg) return make_error("no type for " + method_->full_name(), EINVAL);
  if (!msg->ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return make_error("the request is not a " + method_->input_type()->full_name() + " message", EINVAL);
  std::string json;
  pb::util::JsonPrintOptions options;
  auto st = pb::util::MessageToJsonString(*msg, &json, options);
  if (!st.ok()) return make_error("the request as JSON: " + std::string(st.message()), EINVAL);
  return json;
}

Result<std::string> BinaryCodec::response_bytes(std::string_view json) const {
  auto msg = new_message(method_->output_type());
  if (!msg) return make_error("no type for " + method_->full_name(), EIO);
  pb::util::JsonParseOptions options;
  // A command's config in List is what its starter sent, which a JSON
  // client may have given fields the message does not have.
  options.ignore_unknown_fields = true;
  auto st = pb::util::JsonStringToMessage(pb::StringPiece(json.data(), json.size()), msg.get(), options);
  if (!st.ok())
    return make_error("the answer as " + method_->output_type()->full_name() + ": " + std::string(st.message()), EIO);
  std::string out;
  if (!msg->SerializeToString(&out)) return make_error("serialize " + method_->output_type()->full_name(), EIO);
  return out;
}

}  // namespace moat::server::e2b
