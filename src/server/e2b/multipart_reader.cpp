#include "server/e2b/multipart_reader.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/ascii_case.h"

namespace moat::server::e2b {
namespace {

constexpr std::size_t kReadChunk = 64 << 10;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string unescape_quoted(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      out += s[++i];
    } else if (s[i] == '%' && i + 2 < s.size()) {
      std::string_view code = s.substr(i + 1, 2);
      if (code == "22") out += '"';
      else if (code == "0D" || code == "0d") out += '\r';
      else if (code == "0A" || code == "0a") out += '\n';
      else {
        out += '%';
        continue;
      }
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> disposition_parameter(std::string_view value, std::string_view name) {
  std::size_t i = value.find(';');
  while (i != std::string_view::npos) {
    ++i;
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    std::size_t eq = value.find('=', i);
    if (eq == std::string_view::npos) return std::nullopt;
    std::string key = ascii_lower(trim(value.substr(i, eq - i)));
    std::size_t v = eq + 1;
    std::string val;
    std::size_t next;
    if (v < value.size() && value[v] == '"') {
      std::size_t end = v + 1;
      while (end < value.size() && value[end] != '"') end += value[end] == '\\' ? 2 : 1;
      if (end >= value.size()) return std::nullopt;  // unterminated
      val = unescape_quoted(value.substr(v + 1, end - v - 1));
      next = value.find(';', end);
    } else {
      next = value.find(';', v);
      val = std::string(trim(value.substr(v, next == std::string_view::npos ? std::string_view::npos : next - v)));
    }
    if (key == name) return val;
    i = next;
  }
  return std::nullopt;
}

Result<std::string> MultipartReader::boundary_of(std::string_view content_type) {
  std::string type = ascii_lower(trim(content_type.substr(0, content_type.find(';'))));
  if (type != "multipart/form-data") return make_error("expected multipart/form-data, got '" + type + "'", EINVAL);
  auto b = disposition_parameter(content_type, "boundary");
  if (!b || b->empty()) return make_error("multipart/form-data without a boundary", EINVAL);
  if (b->size() > kMaxBoundary) return make_error("the multipart boundary is over 70 characters", EINVAL);
  return *b;
}

MultipartReader::MultipartReader(Source source, std::string boundary)
    : source_(std::move(source)), delimiter_("\r\n--" + boundary) {
  // The first delimiter has no line break before it: start as if it had.
  buf_ = "\r\n";
}

Result<bool> MultipartReader::fill() {
  if (eof_) return false;
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  std::size_t old = buf_.size();
  buf_.resize(old + kReadChunk);
  auto n = source_(buf_.data() + old, kReadChunk);
  if (!n) {
    buf_.resize(old);
    return n.error();
  }
  buf_.resize(old + *n);
  if (*n == 0) eof_ = true;
  return *n > 0;
}

// Where the next delimiter starts, once enough is buffered to tell; nullopt
// when the bytes before `safe` (returned via pos arithmetic) are body.
Result<std::optional<std::size_t>> MultipartReader::find_delimiter() {
  for (;;) {
    auto at = std::string_view(buf_).find(delimiter_, pos_);
    if (at != std::string_view::npos) return std::optional<std::size_t>(at);
    if (buf_.size() - pos_ >= delimiter_.size() || eof_) return std::optional<std::size_t>();
    MOAT_ASSIGN_OR_RETURN(bool more, fill());
    (void)more;
  }
}

Result<std::size_t> MultipartReader::read_body(char* out, std::size_t max) {
  if (state_ != State::kBody || max == 0) return std::size_t{0};
  for (;;) {
    MOAT_ASSIGN_OR_RETURN(auto at, find_delimiter());
    std::size_t avail;
    if (at) {
      avail = *at - pos_;
      if (avail == 0) {
        pos_ += delimiter_.size();
        state_ = State::kAfterDelimiter;
        return std::size_t{0};
      }
    } else {
      if (eof_) return make_error("the multipart body ended inside a part", EINVAL);
      // Keep what could be the start of a delimiter split across reads.
      avail = buf_.size() - pos_ - (delimiter_.size() - 1);
      if (avail == 0) {
        MOAT_TRY(fill());
        continue;
      }
    }
    std::size_t n = std::min(avail, max);
    std::memcpy(out, buf_.data() + pos_, n);
    pos_ += n;
    return n;
  }
}

Status MultipartReader::skip_to_head() {
  // Past a delimiter: "--" ends the body, else optional spaces and CRLF.
  for (;;) {
    if (buf_.size() - pos_ >= 2) break;
    MOAT_ASSIGN_OR_RETURN(bool more, fill());
    if (!more && buf_.size() - pos_ < 2) return make_error("the multipart body ended after a delimiter", EINVAL);
  }
  if (buf_.compare(pos_, 2, "--") == 0) {
    state_ = State::kDone;
    return ok_status();
  }
  for (;;) {
    std::size_t crlf = buf_.find("\r\n", pos_);
    if (crlf != std::string::npos) {
      for (std::size_t i = pos_; i < crlf; ++i)
        if (buf_[i] != ' ' && buf_[i] != '\t') return make_error("garbage after a multipart delimiter", EINVAL);
      pos_ = crlf + 2;
      state_ = State::kHead;
      return ok_status();
    }
    if (buf_.size() - pos_ > 256) return make_error("garbage after a multipart delimiter", EINVAL);
    MOAT_ASSIGN_OR_RETURN(bool more, fill());
    if (!more) return make_error("the multipart body ended after a delimiter", EINVAL);
  }
}

Result<MultipartReader::PartHead> MultipartReader::read_head() {
  std::size_t end;
  for (;;) {
    // An empty head is allowed: the body follows the CRLF at once.
    if (buf_.compare(pos_, 2, "\r\n") == 0 && buf_.size() - pos_ >= 2) {
      end = pos_;
      break;
    }
    end = buf_.find("\r\n\r\n", pos_);
    if (end != std::string::npos) {
      end += 2;
      break;
    }
    if (buf_.size() - pos_ > kMaxHeadBytes) return make_error("a multipart part's head is over 16 KiB", EINVAL);
    MOAT_ASSIGN_OR_RETURN(bool more, fill());
    if (!more) return make_error("the multipart body ended inside a part's head", EINVAL);
  }
  if (end - pos_ > kMaxHeadBytes) return make_error("a multipart part's head is over 16 KiB", EINVAL);
  PartHead head;
  bool disposition = false;
  std::string_view lines(buf_.data() + pos_, end - pos_);
  while (!lines.empty()) {
    std::size_t nl = lines.find("\r\n");
    std::string_view line = lines.substr(0, nl);
    lines = nl == std::string_view::npos ? std::string_view() : lines.substr(nl + 2);
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return make_error("a multipart head line without ':'", EINVAL);
    std::string name = ascii_lower(trim(line.substr(0, colon)));
    std::string_view value = trim(line.substr(colon + 1));
    if (name == "content-disposition") {
      disposition = true;
      if (ascii_lower(trim(value.substr(0, value.find(';')))) != "form-data")
        return make_error("a multipart part that is not form-data", EINVAL);
      head.name = disposition_parameter(value, "name").value_or("");
      head.filename = disposition_parameter(value, "filename");
    } else if (name == "content-type") {
      head.content_type = std::string(value);
    }
  }
  if (!disposition) return make_error("a multipart part without Content-Disposition", EINVAL);
  pos_ = end + 2;
  state_ = State::kBody;
  return head;
}

Result<std::optional<MultipartReader::PartHead>> MultipartReader::next_part() {
  if (state_ == State::kDone) return std::optional<PartHead>();
  if (state_ == State::kPreamble) {
    // Everything up to the first delimiter is preamble.
    std::size_t skipped = 0;
    for (;;) {
      MOAT_ASSIGN_OR_RETURN(auto at, find_delimiter());
      if (at) {
        pos_ = *at + delimiter_.size();
        state_ = State::kAfterDelimiter;
        break;
      }
      if (eof_) return make_error("no multipart delimiter in the body", EINVAL);
      std::size_t keep_from = buf_.size() - (delimiter_.size() - 1);
      skipped += keep_from - pos_;
      pos_ = keep_from;
      if (skipped > 64 << 10) return make_error("no multipart delimiter in the body's first 64 KiB", EINVAL);
      MOAT_TRY(fill());
    }
  }
  if (state_ == State::kBody) {
    char sink[16 << 10];
    for (;;) {
      MOAT_ASSIGN_OR_RETURN(std::size_t n, read_body(sink, sizeof sink));
      if (n == 0) break;
    }
  }
  MOAT_TRY(skip_to_head());
  if (state_ == State::kDone) return std::optional<PartHead>();
  MOAT_ASSIGN_OR_RETURN(PartHead head, read_head());
  return std::optional<PartHead>(std::move(head));
}

}  // namespace moat::server::e2b
