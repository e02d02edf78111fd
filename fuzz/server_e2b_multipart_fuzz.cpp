// The body of an envd upload (POST /files) as any holder of a sandbox's
// access token may send it, read by the E2B front end's MultipartReader.
// Input: the first byte picks the read size (1..256), the next line is the
// boundary, the rest the body. Checked: no part's data holds the delimiter,
// parts never hold more bytes than the body, and the same body read at any
// read size gives the same parts or the same failure.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "server/e2b/multipart_reader.h"

namespace {

using moat::server::e2b::MultipartReader;

void require(bool ok) {
  if (!ok) __builtin_trap();
}

struct Outcome {
  bool ok = true;
  std::vector<std::string> parts;
};

Outcome read_all(const std::string& boundary, const std::string& body, std::size_t step) {
  std::size_t pos = 0;
  MultipartReader r(
      [&](char* out, std::size_t max) -> moat::Result<std::size_t> {
        std::size_t n = std::min({step, max, body.size() - pos});
        std::memcpy(out, body.data() + pos, n);
        pos += n;
        return n;
      },
      boundary);
  Outcome o;
  for (int i = 0; i < 64; ++i) {
    auto head = r.next_part();
    if (!head) return {false, {}};
    if (!*head) return o;
    std::string data;
    char buf[300];
    for (;;) {
      auto n = r.read_body(buf, 1 + (data.size() % sizeof buf));
      if (!n) return {false, {}};
      if (*n == 0) break;
      data.append(buf, *n);
      require(data.size() <= body.size());
    }
    require(data.find("\r\n--" + boundary) == std::string::npos);
    o.parts.push_back(std::move(data));
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  std::size_t step = 1 + data[0];
  std::string rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::size_t nl = rest.find('\n');
  if (nl == std::string::npos || nl == 0 || nl > MultipartReader::kMaxBoundary) return 0;
  std::string boundary = rest.substr(0, nl);
  std::string body = rest.substr(nl + 1);
  Outcome a = read_all(boundary, body, step);
  Outcome b = read_all(boundary, body, 4096);
  require(a.ok == b.ok);
  if (a.ok) require(a.parts == b.parts);
  // The Content-Type parser on the same bytes.
  (void)MultipartReader::boundary_of(rest);
  return 0;
}
