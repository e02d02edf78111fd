#include "tls/secret_rewriter.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <optional>

#include "net/policy.h"
#include "util/base64.h"

namespace moat::tls {
namespace {

constexpr std::string_view kCrlf = "\r\n";

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Replaces every `from` in `s` with `to`; how many there were.
std::size_t replace_all(std::string& s, std::string_view from, std::string_view to) {
  std::size_t n = 0;
  for (std::size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) {
    s.replace(at, from.size(), to);
    ++n;
  }
  return n;
}

// What Basic credentials decode to: nothing when they are empty, longer
// than a head can be, or not base64.
std::optional<std::string> basic_decoded(std::string_view in) {
  if (in.empty() || in.size() > SecretRewriter::kMaxHead) return std::nullopt;
  auto decoded = base64_decode(in);
  if (!decoded) return std::nullopt;
  return std::move(*decoded);
}

// `value` for a query string: everything but RFC 3986's unreserved
// characters percent-encoded, so a value cannot end the parameter.
std::string query_encoded(std::string_view value) {
  std::string out;
  for (unsigned char c : value) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += "0123456789ABCDEF"[c >> 4];
      out += "0123456789ABCDEF"[c & 15];
    }
  }
  return out;
}

Error violation(const SecretBinding& s, const std::string& host) {
  return make_error("secret " + s.name + " is not bound to " + (host.empty() ? "this server" : host) +
                        ", and its placeholder was in the request",
                    EACCES);
}

Error unframed(const std::string& why) { return make_error("the request cannot be framed safely: " + why, EPROTO); }

}  // namespace

bool host_matches(const std::vector<std::string>& patterns, std::string_view host) {
  return std::any_of(patterns.begin(), patterns.end(), [&](const std::string& h) {
    return h.rfind("*.", 0) == 0 ? net::name_in_suffix(host, std::string_view(h).substr(2)) : host == h;
  });
}

SecretRewriter::~SecretRewriter() {
  if (held_total_) *held_total_ -= reserved_;
}

SecretRewriter::SecretRewriter(const std::vector<SecretBinding>& secrets, std::string host, std::size_t* held_total,
                               bool plain)
    : secrets_(secrets), host_(std::move(host)), held_total_(held_total) {
  for (const auto& s : secrets_)
    (secret_bound_to(s, host_) && (!plain || s.plain_http) ? bound_ : unbound_).push_back(&s);
  // To a host no secret is bound to, nothing is rewritten, so nothing is
  // parsed: any protocol passes, searched for placeholders.
  if (bound_.empty()) state_ = State::kTunnel;
}

Status SecretRewriter::scan(std::string_view data) {
  std::size_t longest = 0;
  for (const auto* s : unbound_) longest = std::max(longest, s->placeholder.size());
  if (longest == 0) return ok_status();
  std::string window = carry_;
  window.append(data);
  for (const auto* s : unbound_)
    if (window.find(s->placeholder) != std::string::npos) return violation(*s, host_);
  std::size_t keep = std::min(window.size(), longest - 1);
  carry_ = window.substr(window.size() - keep);
  return ok_status();
}

Status SecretRewriter::on_head(std::string head, std::string& out) {
  MOAT_TRY(scan(head));
  std::size_t line_end = head.find(kCrlf);
  std::string_view request_line = std::string_view(head).substr(0, line_end);
  std::size_t space = request_line.find(' ');
  if (space == std::string_view::npos || space == 0) return unframed("not an HTTP/1 request line");
  std::string_view method = request_line.substr(0, space);
  std::string rebuilt(request_line);
  // :query secrets in the request target (after its '?'), percent-encoded.
  std::size_t query = rebuilt.find('?');
  std::size_t target_end = rebuilt.rfind(' ');
  if (query != std::string::npos && target_end != std::string::npos && query < target_end) {
    std::string target = rebuilt.substr(query, target_end - query);
    for (const auto* s : bound_)
      if (s->in_query) substituted_ += replace_all(target, s->placeholder, query_encoded(s->value));
    rebuilt = rebuilt.substr(0, query) + target + rebuilt.substr(target_end);
  }
  rebuilt += kCrlf;
  bool body_secrets = std::any_of(bound_.begin(), bound_.end(), [](const SecretBinding* s) { return s->in_body; });
  std::size_t length_at = std::string::npos, length_size = 0;
  std::optional<std::uint64_t> length;
  bool chunked = false, upgrade = false;
  std::size_t at = line_end + 2;
  while (at < head.size()) {
    std::size_t end = head.find(kCrlf, at);
    std::string line = head.substr(at, end - at);
    at = end + 2;
    if (line.empty()) break;  // the blank line that ends the head
    if (line[0] == ' ' || line[0] == '\t') return unframed("a folded header line");
    std::size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) return unframed("a header line without a name");
    std::string_view name = std::string_view(line).substr(0, colon);
    std::string value(trim(std::string_view(line).substr(colon + 1)));
    if (iequals(name, "Content-Length")) {
      if (value.empty() || value.size() > 18 || !std::all_of(value.begin(), value.end(), ::isdigit))
        return unframed("Content-Length \"" + value + "\"");
      std::uint64_t n = std::stoull(value);
      if (length && *length != n) return unframed("two different Content-Lengths");
      if (length && body_secrets) return unframed("two Content-Length headers");
      length = n;
    } else if (iequals(name, "Transfer-Encoding")) {
      std::string lower = value;
      std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
      if (lower.size() < 7 || lower.compare(lower.size() - 7, 7, "chunked") != 0)
        return unframed("Transfer-Encoding \"" + value + "\" does not end with chunked");
      chunked = true;
    } else if (iequals(name, "Upgrade")) {
      upgrade = true;
    }
    for (const auto* s : bound_) {
      substituted_ += replace_all(value, s->placeholder, s->value);
      if (iequals(name, "Authorization") && value.size() > 6 && iequals(std::string_view(value).substr(0, 6), "Basic ")) {
        auto decoded = basic_decoded(trim(std::string_view(value).substr(6)));
        if (decoded && decoded->find(s->placeholder) != std::string::npos) {
          substituted_ += replace_all(*decoded, s->placeholder, s->value);
          value = "Basic " + base64_encode(*decoded);
        }
      }
    }
    // Basic credentials of a secret not bound here are a violation too.
    if (iequals(name, "Authorization") && value.size() > 6 && iequals(std::string_view(value).substr(0, 6), "Basic ")) {
      if (auto decoded = basic_decoded(trim(std::string_view(value).substr(6))))
        for (const auto* s : unbound_)
          if (decoded->find(s->placeholder) != std::string::npos) return violation(*s, host_);
    }
    rebuilt.append(name);
    rebuilt += ": ";
    if (iequals(name, "Content-Length")) {
      length_at = rebuilt.size();
      length_size = value.size();
    }
    rebuilt += value;
    rebuilt += kCrlf;
  }
  rebuilt += kCrlf;
  if (length && chunked) return unframed("both Content-Length and Transfer-Encoding");
  bool tunnel = method == "CONNECT" || upgrade;
  bool room = !held_total_ || *held_total_ + (length ? *length : 0) <= kMaxHeldTotal;
  if (!tunnel && body_secrets && room && length && *length > 0 && *length <= kMaxBody &&
      length_at != std::string::npos) {
    if (held_total_) {
      reserved_ = static_cast<std::size_t>(*length);
      *held_total_ += reserved_;
    }
    // Held until whole: the value changes the body's length.
    held_head_ = std::move(rebuilt);
    held_body_.clear();
    held_length_at_ = length_at;
    held_length_size_ = length_size;
    remaining_ = *length;
    state_ = State::kHeldBody;
    return ok_status();
  }
  if (!tunnel && chunked && body_secrets) {
    held_head_ = std::move(rebuilt);
    held_body_.clear();
    holding_chunks_ = true;
    state_ = State::kChunkSize;
    return ok_status();
  }
  out += rebuilt;
  if (tunnel) {
    state_ = State::kTunnel;
  } else if (chunked) {
    state_ = State::kChunkSize;
  } else if (length && *length > 0) {
    remaining_ = *length;
    state_ = State::kBody;
  } else {
    state_ = State::kHead;
  }
  return ok_status();
}

void SecretRewriter::release_held(std::string& out) {
  for (const auto* s : bound_)
    if (s->in_body) substituted_ += replace_all(held_body_, s->placeholder, s->value);
  held_head_.replace(held_length_at_, held_length_size_, std::to_string(held_body_.size()));
  out += held_head_;
  out += held_body_;
  held_head_.clear();
  held_body_.clear();
  if (held_total_) *held_total_ -= reserved_;
  reserved_ = 0;
  state_ = State::kHead;
}

// Whether `n` more bytes of a chunked body may be held.
bool SecretRewriter::hold_more(std::size_t n) {
  if (held_body_.size() + n > kMaxBody) return false;
  if (held_total_ && *held_total_ + n > kMaxHeldTotal) return false;
  if (held_total_) *held_total_ += n;
  reserved_ += n;
  return true;
}

// Sends the held head and the held chunked body, substituted, as one chunk.
void SecretRewriter::flush_held_chunks(std::string& out) {
  for (const auto* s : bound_)
    if (s->in_body) substituted_ += replace_all(held_body_, s->placeholder, s->value);
  out += held_head_;
  if (!held_body_.empty()) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", held_body_.size());
    out += size;
    out += held_body_;
    out += kCrlf;
  }
  held_head_.clear();
  held_body_.clear();
  if (held_total_) *held_total_ -= reserved_;
  reserved_ = 0;
  holding_chunks_ = false;
}

Status SecretRewriter::chunk_size_line(std::string_view line) {
  std::string_view size = line.substr(0, line.find(';'));
  size = trim(size);
  if (size.empty() || size.size() > 15) return unframed("a chunk size line");
  std::uint64_t n = 0;
  for (char c : size) {
    int d = std::isdigit(static_cast<unsigned char>(c)) ? c - '0'
            : (c >= 'a' && c <= 'f')                    ? c - 'a' + 10
            : (c >= 'A' && c <= 'F')                    ? c - 'A' + 10
                                                        : -1;
    if (d < 0) return unframed("a chunk size line");
    n = n * 16 + static_cast<std::uint64_t>(d);
  }
  remaining_ = n;
  state_ = n == 0 ? State::kTrailers : State::kChunkData;
  return ok_status();
}

Status SecretRewriter::feed(std::string_view in, std::string& out) {
  std::string spill;  // what follows a head, taken from buffer_
  while (!in.empty()) {
    switch (state_) {
      case State::kTunnel:
        MOAT_TRY(scan(in));
        out.append(in);
        return ok_status();
      case State::kHeldBody: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
        MOAT_TRY(scan(in.substr(0, n)));
        held_body_.append(in.substr(0, n));
        in.remove_prefix(n);
        remaining_ -= n;
        if (remaining_ == 0) release_held(out);
        break;
      }
      case State::kBody:
      case State::kChunkData: {
        std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
        MOAT_TRY(scan(in.substr(0, n)));
        if (holding_chunks_ && hold_more(n)) {
          held_body_.append(in.substr(0, n));
          in.remove_prefix(n);
          remaining_ -= n;
          if (remaining_ == 0) state_ = State::kChunkEnd;
          break;
        }
        if (holding_chunks_) {
          // Too large to hold: what is held goes now, the rest as it comes,
          // starting with the rest of this chunk.
          flush_held_chunks(out);
          char size[32];
          std::snprintf(size, sizeof size, "%llx\r\n", static_cast<unsigned long long>(remaining_));
          out += size;
        }
        out.append(in.substr(0, n));
        in.remove_prefix(n);
        remaining_ -= n;
        if (remaining_ == 0) state_ = state_ == State::kBody ? State::kHead : State::kChunkEnd;
        break;
      }
      case State::kHead: {
        std::size_t from = buffer_.size() >= 3 ? buffer_.size() - 3 : 0;
        buffer_.append(in);
        in = {};
        std::size_t end = buffer_.find("\r\n\r\n", from);
        if (end == std::string::npos) {
          if (buffer_.size() > kMaxHead) return unframed("a request head larger than 64 KiB");
          return ok_status();
        }
        if (end + 4 > kMaxHead) return unframed("a request head larger than 64 KiB");
        std::string head = buffer_.substr(0, end + 4);
        spill = buffer_.substr(end + 4);
        buffer_.clear();
        MOAT_TRY(on_head(std::move(head), out));
        in = spill;
        break;
      }
      case State::kChunkSize:
      case State::kChunkEnd:
      case State::kTrailers: {
        std::size_t from = buffer_.empty() ? 0 : buffer_.size() - 1;
        std::size_t take = std::min(in.size(), kMaxLine + 2 - std::min(buffer_.size(), kMaxLine + 2));
        buffer_.append(in.substr(0, take));
        std::size_t end = buffer_.find(kCrlf, from);
        if (end == std::string::npos) {
          if (buffer_.size() > kMaxLine) return unframed("a line longer than 4 KiB in a chunked body");
          in.remove_prefix(take);
          break;
        }
        // Only the line and its CRLF are consumed; the rest stays in `in`.
        std::size_t used_of_in = take - (buffer_.size() - (end + 2));
        in.remove_prefix(used_of_in);
        std::string line = buffer_.substr(0, end);
        buffer_.clear();
        MOAT_TRY(scan(line + "\r\n"));
        // A held chunked body is framed again when it is sent.
        bool reframed = holding_chunks_ && (state_ == State::kChunkSize || state_ == State::kChunkEnd);
        if (!reframed) {
          out += line;
          out += kCrlf;
        }
        if (state_ == State::kChunkSize) {
          MOAT_TRY(chunk_size_line(line));
          if (reframed && state_ == State::kTrailers) {  // the last chunk
            flush_held_chunks(out);
            out += "0\r\n";
          }
        } else if (state_ == State::kChunkEnd) {
          if (!line.empty()) return unframed("chunk data longer than its size");
          state_ = State::kChunkSize;
        } else if (line.empty()) {
          state_ = State::kHead;  // the end of the trailers
        }
        break;
      }
    }
  }
  return ok_status();
}

}  // namespace moat::tls
