// Encoding of FUSE replies: a header and one payload, handed to a transport
// as two iovecs. One FuseReply per worker is reused for every request, so
// steady-state serving allocates nothing.
#pragma once

#include <linux/fuse.h>
#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace moat::fs {

class FuseReply {
 public:
  // Starts the reply to request `unique`: success with an empty payload.
  void reset(std::uint64_t unique) {
    header_ = {};
    header_.unique = unique;
    payload_.clear();
    send_ = true;
  }
  // Error replies carry no payload; `err` is a positive errno.
  void error(int err) {
    header_.error = -err;
    payload_.clear();
  }
  // FORGET, BATCH_FORGET and INTERRUPT are never answered.
  void none() { send_ = false; }

  template <typename T>
  void set(const T& value) {
    payload_.resize(sizeof(T));
    std::memcpy(payload_.data(), &value, sizeof(T));
  }
  // Two structures back to back (CREATE: fuse_entry_out + fuse_open_out).
  template <typename A, typename B>
  void set_pair(const A& a, const B& b) {
    payload_.resize(sizeof(A) + sizeof(B));
    std::memcpy(payload_.data(), &a, sizeof(A));
    std::memcpy(payload_.data() + sizeof(A), &b, sizeof(B));
  }
  void set_bytes(std::string_view bytes) { payload_.assign(bytes.begin(), bytes.end()); }
  // The payload buffer, for readers that fill it in place (READ, READDIR).
  std::vector<std::uint8_t>& payload() { return payload_; }

  bool should_send() const { return send_; }
  std::uint64_t unique() const { return header_.unique; }
  int error_code() const { return -header_.error; }
  std::size_t size() const { return sizeof(fuse_out_header) + payload_.size(); }

  // The reply as iovecs; valid until the next change to this object.
  std::array<iovec, 2> iovecs() {
    header_.len = static_cast<std::uint32_t>(size());
    return {iovec{&header_, sizeof header_}, iovec{payload_.data(), payload_.size()}};
  }

 private:
  fuse_out_header header_{};
  std::vector<std::uint8_t> payload_;
  bool send_ = true;
};

// Packs READDIR / READDIRPLUS entries into a reply payload of at most
// `limit` bytes (the size the kernel asked for).
class DirBuffer {
 public:
  DirBuffer(std::vector<std::uint8_t>& out, std::size_t limit, bool plus)
      : out_(out), limit_(limit), plus_(plus) {
    out_.clear();
  }

  bool plus() const { return plus_; }

  // Whether an entry named `name` would still fit: lets a backend skip the
  // lookup a READDIRPLUS entry implies when it would be thrown away.
  bool fits(std::string_view name) const {
    std::size_t head = plus_ ? sizeof(fuse_direntplus) : sizeof(fuse_dirent);
    return out_.size() + FUSE_DIRENT_ALIGN(head + name.size()) <= limit_;
  }

  // Adds an entry; false (and nothing added) when it does not fit. `next`
  // is the offset the kernel passes back to continue after this entry.
  // `entry` is used for READDIRPLUS only.
  bool add(std::string_view name, std::uint64_t ino, std::uint32_t type, std::uint64_t next,
           const fuse_entry_out& entry) {
    std::size_t head = plus_ ? sizeof(fuse_direntplus) : sizeof(fuse_dirent);
    std::size_t rec = FUSE_DIRENT_ALIGN(head + name.size());
    if (out_.size() + rec > limit_) return false;
    std::size_t at = out_.size();
    out_.resize(at + rec, 0);
    fuse_dirent d{};
    d.ino = ino;
    d.off = next;
    d.namelen = static_cast<std::uint32_t>(name.size());
    d.type = type;
    std::uint8_t* p = out_.data() + at;
    if (plus_) {
      std::memcpy(p, &entry, sizeof entry);
      p += sizeof(fuse_entry_out);
    }
    std::memcpy(p, &d, sizeof d);
    std::memcpy(p + sizeof(fuse_dirent), name.data(), name.size());
    ++count_;
    return true;
  }
  std::size_t count() const { return count_; }

 private:
  std::vector<std::uint8_t>& out_;
  std::size_t limit_;
  bool plus_;
  std::size_t count_ = 0;
};

}  // namespace moat::fs
