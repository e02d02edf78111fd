#include "proto/message.h"

#include <limits>

#include "proto/cbor_guard.h"
#include "proto/data_frame.h"
#include "proto/text.h"

namespace moat::proto {

void encode_message(const Message& m, std::string& out) {
  Json body = Json::object();
  body["v"] = m.version;
  body["t"] = m.type;
  body["p"] = m.payload;
  std::vector<std::uint8_t> cbor = Json::to_cbor(body);
  encode_frame(m.stream, m.flags,
               std::string_view(reinterpret_cast<const char*>(cbor.data()), cbor.size()), out);
}

std::string encode_message(const Message& m) {
  std::string out;
  encode_message(m, out);
  return out;
}

Result<Message> decode_message(const Frame& frame) {
  // Data messages (every byte of output and file data) are read without
  // the general parser, which handles byte strings a byte at a time.
  if (auto d = view_data_body(frame.body)) {
    Message m;
    m.stream = frame.stream;
    m.flags = frame.flags;
    m.version = d->version;
    m.type = std::string(d->type);
    m.payload = Json::object();
    m.payload["d"] = Json::binary(std::vector<std::uint8_t>(d->bytes.begin(), d->bytes.end()));
    return m;
  }
  MOAT_TRY(check_cbor_structure(frame.body));
  Json body = Json::from_cbor(frame.body.begin(), frame.body.end(), /*strict=*/true,
                              /*allow_exceptions=*/false);
  if (body.is_discarded()) return make_error("cbor: body does not parse");
  if (!body.is_object()) return make_error("message body is not a map");
  Message m;
  m.stream = frame.stream;
  m.flags = frame.flags;
  auto v = body.find("v");
  if (v == body.end() || !v->is_number_unsigned())
    return make_error("message has no unsigned version \"v\"");
  if (v->get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max())
    return make_error("message version out of range");
  m.version = static_cast<std::uint32_t>(v->get<std::uint64_t>());
  auto t = body.find("t");
  if (t == body.end() || !t->is_string()) return make_error("message has no type \"t\"");
  m.type = t->get<std::string>();
  if (m.type.empty() || m.type.size() > kMaxTypeLength)
    return make_error("message type has a bad length");
  auto p = body.find("p");
  if (p != body.end()) {
    if (!p->is_object()) return make_error("message payload \"p\" is not a map");
    m.payload = std::move(*p);
  }
  return m;
}

Message make_message(std::uint32_t stream, std::string_view type, Json payload,
                     std::uint8_t flags) {
  Message m;
  m.stream = stream;
  m.flags = flags;
  m.type = std::string(type);
  m.payload = std::move(payload);
  return m;
}

Message make_error_message(std::uint32_t stream, std::string_view code, std::string_view text,
                           bool end_stream) {
  Json p = Json::object();
  p["code"] = std::string(code);
  p["message"] = text_value(text);  // may name a path, which is bytes
  return make_message(stream, msg::kError, std::move(p), end_stream ? kFlagEndStream : 0);
}

Message make_data_message(std::uint32_t stream, std::string_view type, std::string_view bytes) {
  Json p = Json::object();
  p["d"] = Json::binary(std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
  return make_message(stream, type, std::move(p));
}

Result<std::string> data_of(const Message& m) {
  auto it = m.payload.find("d");
  if (it == m.payload.end() || !it->is_binary())
    return make_error("message \"" + m.type + "\" has no byte string \"d\"");
  const auto& bin = it->get_binary();
  return std::string(bin.begin(), bin.end());
}

bool has(const Json& p, const char* key) { return p.is_object() && p.contains(key); }

Result<std::uint64_t> get_uint(const Json& p, const char* key, std::uint64_t max) {
  auto it = p.find(key);
  if (it == p.end() || !it->is_number_unsigned())
    return make_error(std::string("field \"") + key + "\" must be an unsigned integer");
  auto v = it->get<std::uint64_t>();
  if (v > max) return make_error(std::string("field \"") + key + "\" is out of range");
  return v;
}

Result<std::int64_t> get_int(const Json& p, const char* key, std::int64_t min, std::int64_t max) {
  auto it = p.find(key);
  if (it == p.end() || !it->is_number_integer())
    return make_error(std::string("field \"") + key + "\" must be an integer");
  std::int64_t v = 0;
  if (it->is_number_unsigned()) {
    auto u = it->get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
      return make_error(std::string("field \"") + key + "\" is out of range");
    v = static_cast<std::int64_t>(u);
  } else {
    v = it->get<std::int64_t>();
  }
  if (v < min || v > max) return make_error(std::string("field \"") + key + "\" is out of range");
  return v;
}

Result<std::string> get_string(const Json& p, const char* key, std::size_t max_len) {
  auto it = p.find(key);
  if (it == p.end() || !(it->is_string() || it->is_binary()))
    return make_error(std::string("field \"") + key + "\" must be a string");
  std::size_t size = it->is_string() ? it->get_ref<const std::string&>().size() : it->get_binary().size();
  if (size > max_len) return make_error(std::string("field \"") + key + "\" is too long");
  return *string_bytes(*it);
}

Result<bool> get_bool(const Json& p, const char* key) {
  auto it = p.find(key);
  if (it == p.end() || !it->is_boolean())
    return make_error(std::string("field \"") + key + "\" must be a boolean");
  return it->get<bool>();
}

ErrorInfo parse_error(const Json& p, std::string_view code_fallback, std::string_view message_fallback) {
  ErrorInfo e{std::string(code_fallback), std::string(message_fallback)};
  if (!p.is_object()) return e;
  if (auto code = get_string(p, "code", kMaxErrorCode)) e.code = std::move(*code);
  if (auto text = get_string(p, "message", kMaxErrorText)) e.message = std::move(*text);
  return e;
}

}  // namespace moat::proto
