// multipart/form-data (RFC 7578) read part by part from a request body
// stream, each part's body handed on as it arrives: envd's upload (POST
// /files) carries files of any size this way. The body is the client's:
// a part's head is bounded (kMaxHeadBytes), bytes after the closing
// delimiter are ignored, and a body that ends inside a part is an error,
// never a short file taken for a whole one.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "moat/result.h"

namespace moat::server::e2b {

class MultipartReader {
 public:
  static constexpr std::size_t kMaxHeadBytes = 16 << 10;
  static constexpr std::size_t kMaxBoundary = 70;  // RFC 2046

  // Reads up to `max` bytes of the body into `out`; 0 at its end.
  using Source = std::function<Result<std::size_t>(char* out, std::size_t max)>;

  // The boundary parameter of a multipart/form-data Content-Type.
  static Result<std::string> boundary_of(std::string_view content_type);

  MultipartReader(Source source, std::string boundary);

  struct PartHead {
    std::string name;          // Content-Disposition's name
    std::optional<std::string> filename;
    std::string content_type;
  };
  // The next part's head (what is left of the current part is skipped);
  // nullopt after the last one.
  Result<std::optional<PartHead>> next_part();
  // Up to `max` bytes of the current part's body; 0 at its end.
  Result<std::size_t> read_body(char* out, std::size_t max);

 private:
  enum class State { kPreamble, kHead, kBody, kAfterDelimiter, kDone };
  Result<bool> fill();  // false at the body's end
  Result<std::optional<std::size_t>> find_delimiter();
  Status skip_to_head();
  Result<PartHead> read_head();

  Source source_;
  std::string delimiter_;  // "\r\n--" + boundary
  std::string buf_;
  std::size_t pos_ = 0;
  bool eof_ = false;
  State state_ = State::kPreamble;
};

// Content-Disposition parameters: form-data; name="file"; filename="a b".
// The quoted forms undo the escapes browsers and Node use (%22, %0D, %0A, \").
std::optional<std::string> disposition_parameter(std::string_view header_value, std::string_view name);

}  // namespace moat::server::e2b
