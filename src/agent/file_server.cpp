#include "agent/file_server.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "agent/guest_tar.h"
#include "tree/tree_writer.h"
#include "proto/exec.h"
#include "util/unique_fd.h"
#include "util/write_all.h"

namespace moat::agent {
namespace {

using proto::FileRequest;
using proto::Message;

// Incoming data is acknowledged in batches of this size.
constexpr std::uint64_t kGrantBatch = proto::kFileWindow / 4;
// Deeper trees than this are not removed recursively (bounded recursion in PID 1).
constexpr int kMaxRemoveDepth = 1024;

Message error_message(std::uint32_t stream, const Error& e) {
  return proto::make_error_message(stream, proto::errno_name(e.code ? e.code : EIO), e.message, true);
}

Message result_message(std::uint32_t stream, proto::Json p = proto::Json::object()) {
  return proto::make_message(stream, proto::msg::kResult, std::move(p), proto::kFlagEndStream);
}

proto::FileType type_of(mode_t m) {
  if (S_ISDIR(m)) return proto::FileType::kDir;
  if (S_ISLNK(m)) return proto::FileType::kSymlink;
  if (S_ISCHR(m)) return proto::FileType::kChar;
  if (S_ISBLK(m)) return proto::FileType::kBlock;
  if (S_ISFIFO(m)) return proto::FileType::kFifo;
  if (S_ISSOCK(m)) return proto::FileType::kSocket;
  return proto::FileType::kFile;
}

proto::FileStat to_file_stat(const struct stat& st, int dirfd, const char* leaf) {
  proto::FileStat s;
  s.type = type_of(st.st_mode);
  s.mode = st.st_mode & 07777;
  s.uid = st.st_uid;
  s.gid = st.st_gid;
  s.size = static_cast<std::uint64_t>(st.st_size);
  s.nlink = st.st_nlink;
  s.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (S_ISLNK(st.st_mode)) {
    char buf[4096];
    ssize_t n = ::readlinkat(dirfd, leaf, buf, sizeof(buf));
    if (n > 0) s.target.assign(buf, static_cast<std::size_t>(n));
  }
  return s;
}

// ---- one-shot operations ----

Result<proto::Json> do_stat(const FileRequest& r) {
  struct stat st {};
  int rc = r.follow ? ::stat(r.path.c_str(), &st) : ::lstat(r.path.c_str(), &st);
  if (rc != 0) return errno_error(r.path);
  return to_payload(to_file_stat(st, AT_FDCWD, r.path.c_str()));
}

Status do_mkdir(const FileRequest& r) {
  mode_t mode = r.mode ? r.mode : 0755;
  if (r.parents) {
    // Every missing ancestor, then the directory itself; existing ones are fine.
    for (std::size_t pos = 1; pos <= r.path.size(); ++pos) {
      if (pos != r.path.size() && r.path[pos] != '/') continue;
      std::string prefix = r.path.substr(0, pos);
      if (::mkdir(prefix.c_str(), pos == r.path.size() ? mode : 0755) != 0) {
        struct stat st {};
        if (errno != EEXIST) return errno_error("mkdir " + prefix);
        if (::stat(prefix.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
          return make_error(prefix + " exists and is not a directory", ENOTDIR);
        continue;
      }
    }
  } else if (::mkdir(r.path.c_str(), mode) != 0) {
    return errno_error("mkdir " + r.path);
  }
  // The agent's umask must not change the mode asked for.
  if (r.mode && ::chmod(r.path.c_str(), r.mode) != 0) return errno_error("chmod " + r.path);
  return ok_status();
}

Status remove_tree(int parent, const std::string& leaf, const std::string& shown, int depth) {
  if (depth > kMaxRemoveDepth) return make_error(shown + ": directory tree too deep", ELOOP);
  if (::unlinkat(parent, leaf.c_str(), 0) == 0) return ok_status();
  if (errno != EISDIR && errno != EPERM) return errno_error("remove " + shown);
  int fd = ::openat(parent, leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno_error("remove " + shown);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return errno_error("remove " + shown);
  }
  Status st = ok_status();
  while (struct dirent* de = ::readdir(d)) {
    std::string name = de->d_name;
    if (name == "." || name == "..") continue;
    st = remove_tree(::dirfd(d), name, shown + "/" + name, depth + 1);
    if (!st) break;
  }
  ::closedir(d);
  MOAT_TRY(std::move(st));
  if (::unlinkat(parent, leaf.c_str(), AT_REMOVEDIR) != 0) return errno_error("remove " + shown);
  return ok_status();
}

Status do_remove(const FileRequest& r) {
  if (r.path.find_first_not_of('/') == std::string::npos)
    return make_error("refusing to remove /", EBUSY);
  if (r.recursive) return remove_tree(AT_FDCWD, r.path, r.path, 0);
  if (::unlink(r.path.c_str()) == 0) return ok_status();
  if (errno == EISDIR || errno == EPERM) {
    if (::rmdir(r.path.c_str()) == 0) return ok_status();
  }
  return errno_error("remove " + r.path);
}

Status do_simple(const FileRequest& r) {
  if (r.op == proto::msg::kMkdir) return do_mkdir(r);
  if (r.op == proto::msg::kRemove) return do_remove(r);
  if (r.op == proto::msg::kRename) {
    if (::rename(r.path.c_str(), r.to.c_str()) != 0) return errno_error("rename " + r.path + " to " + r.to);
    return ok_status();
  }
  if (r.op == proto::msg::kChmod) {
    if (::chmod(r.path.c_str(), r.mode) != 0) return errno_error("chmod " + r.path);
    return ok_status();
  }
  // chown
  uid_t uid = r.uid ? *r.uid : static_cast<uid_t>(-1);
  gid_t gid = r.gid ? *r.gid : static_cast<gid_t>(-1);
  int rc = r.follow ? ::chown(r.path.c_str(), uid, gid) : ::lchown(r.path.c_str(), uid, gid);
  if (rc != 0) return errno_error("chown " + r.path);
  return ok_status();
}

// ---- outgoing streams: read, tar_out ----

// Writes at most `max` bytes of the stream to `dst`; 0 at its end.
using Source = Outbox::Filler;

class OutStream : public FileStream {
 public:
  OutStream(std::uint32_t stream, Outbox& out, Source source, std::function<std::uint64_t()> entries)
      : stream_(stream), out_(out), source_(std::move(source)), entries_(std::move(entries)) {}

  void on_message(const Message& m) override {
    if (m.type == proto::msg::kWindow) {
      if (auto n = proto::get_uint(m.payload, "n", 1ull << 32)) credit_ += *n;
    } else if (m.type == proto::msg::kCancel) {
      finished_ = true;
    }
  }
  bool wants_to_produce() const override { return !finished_ && credit_ > 0; }
  void produce(std::size_t budget) override {
    while (!finished_ && credit_ > 0 && budget > 0) {
      std::size_t want = static_cast<std::size_t>(
          std::min<std::uint64_t>({credit_, proto::kMaxDataChunk, budget}));
      auto got = out_.fill_data(stream_, proto::msg::kData, want, source_);
      if (!got) {
        out_.send(error_message(stream_, got.error()));
        finished_ = true;
        return;
      }
      if (*got == 0) {
        proto::FileResult r{bytes_, entries_ ? entries_() : 0};
        out_.send(result_message(stream_, to_payload(r)));
        finished_ = true;
        return;
      }
      credit_ -= *got;
      budget -= std::min(budget, *got);
      bytes_ += *got;
    }
  }

 private:
  std::uint32_t stream_;
  Outbox& out_;
  Source source_;
  std::function<std::uint64_t()> entries_;
  std::uint64_t credit_ = proto::kFileWindow;
  std::uint64_t bytes_ = 0;
};

Result<std::unique_ptr<FileStream>> open_read(std::uint32_t stream, Outbox& out, const FileRequest& r) {
  UniqueFd fd(::open(r.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error(r.path);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return errno_error(r.path);
  if (S_ISDIR(st.st_mode)) return make_error(r.path + " is a directory", EISDIR);
  if (r.offset && ::lseek(fd.get(), static_cast<off_t>(r.offset), SEEK_SET) < 0) return errno_error(r.path);
  auto shared = std::make_shared<UniqueFd>(std::move(fd));
  std::uint64_t limit = r.length ? r.length : ~0ull;
  auto left = std::make_shared<std::uint64_t>(limit);
  Source src = [shared, left](char* dst, std::size_t max) -> Result<std::size_t> {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(*left, max));
    if (want == 0) return std::size_t{0};
    while (true) {
      ssize_t n = ::read(shared->get(), dst, want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_error("read");
      *left -= static_cast<std::uint64_t>(n);
      return static_cast<std::size_t>(n);
    }
  };
  return std::unique_ptr<FileStream>(new OutStream(stream, out, std::move(src), nullptr));
}

Result<std::unique_ptr<FileStream>> open_tar_out(std::uint32_t stream, Outbox& out, const FileRequest& r) {
  std::string name = r.name;
  if (name.empty()) {
    std::string p = r.path;
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    name = p == "/" ? "root" : p.substr(p.rfind('/') + 1);
  }
  MOAT_ASSIGN_OR_RETURN(auto w, GuestTarWriter::open(r.path, name));
  std::shared_ptr<GuestTarWriter> writer(std::move(w));
  Source src = [writer](char* dst, std::size_t max) { return writer->read(dst, max); };
  auto entries = [writer]() { return writer->entries(); };
  return std::unique_ptr<FileStream>(new OutStream(stream, out, std::move(src), entries));
}

// ---- listing ----

class ListStream : public FileStream {
 public:
  ListStream(std::uint32_t stream, Outbox& out, DIR* dir) : stream_(stream), out_(out), dir_(dir) {}
  ~ListStream() override { ::closedir(dir_); }

  void on_message(const Message& m) override {
    if (m.type == proto::msg::kCancel) finished_ = true;
  }
  bool wants_to_produce() const override { return !finished_; }
  void produce(std::size_t) override {
    std::vector<proto::DirEntry> batch;
    while (batch.size() < proto::kMaxEntriesPerBatch) {
      errno = 0;
      struct dirent* de = ::readdir(dir_);
      if (!de) {
        if (errno) {
          out_.send(error_message(stream_, errno_error("readdir")));
          finished_ = true;
          return;
        }
        break;
      }
      std::string name = de->d_name;
      if (name == "." || name == "..") continue;
      struct stat st {};
      if (::fstatat(::dirfd(dir_), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // vanished
      batch.push_back({name, to_file_stat(st, ::dirfd(dir_), de->d_name)});
    }
    total_ += batch.size();
    if (!batch.empty()) out_.send(proto::make_message(stream_, proto::msg::kEntries, to_payload(batch)));
    if (batch.size() < proto::kMaxEntriesPerBatch) {
      proto::FileResult r{0, total_};
      out_.send(result_message(stream_, to_payload(r)));
      finished_ = true;
    }
  }

 private:
  std::uint32_t stream_;
  Outbox& out_;
  DIR* dir_;
  std::uint64_t total_ = 0;
};

Result<std::unique_ptr<FileStream>> open_list(std::uint32_t stream, Outbox& out, const FileRequest& r) {
  int fd = ::open(r.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_error(r.path);
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return errno_error(r.path);
  }
  return std::unique_ptr<FileStream>(new ListStream(stream, out, d));
}

// ---- incoming streams: write, tar_in ----

using Sink = std::function<Status(std::string_view)>;
using Finish = std::function<Result<proto::FileResult>()>;

class InStream : public FileStream {
 public:
  InStream(std::uint32_t stream, Outbox& out, Sink sink, Finish finish)
      : stream_(stream), out_(out), sink_(std::move(sink)), finish_(std::move(finish)) {}

  void on_data(std::string_view data) override {
    if (finished_) return;
    if (data.size() > allowed_) return fail(make_error("data beyond the granted window", EPROTO));
    allowed_ -= data.size();
    if (auto st = sink_(data); !st) return fail(st.error());
    bytes_ += data.size();
    ungranted_ += data.size();
    if (ungranted_ >= kGrantBatch) {
      out_.send(proto::make_message(stream_, proto::msg::kWindow, proto::Json{{"n", ungranted_}}));
      allowed_ += ungranted_;
      ungranted_ = 0;
    }
  }

  void on_message(const Message& m) override {
    if (finished_) return;
    if (m.type == proto::msg::kData) {
      auto data = proto::data_of(m);
      if (!data) return fail(make_error(data.error().message, EINVAL));
      on_data(*data);
    } else if (m.type == proto::msg::kEnd) {
      auto r = finish_();
      if (!r) return fail(r.error());
      r->bytes = bytes_;
      out_.send(result_message(stream_, to_payload(*r)));
      finished_ = true;
    } else if (m.type == proto::msg::kCancel) {
      finished_ = true;
    }
  }

 private:
  void fail(const Error& e) {
    out_.send(error_message(stream_, e));
    finished_ = true;
  }

  std::uint32_t stream_;
  Outbox& out_;
  Sink sink_;
  Finish finish_;
  std::uint64_t allowed_ = proto::kFileWindow;
  std::uint64_t ungranted_ = 0;
  std::uint64_t bytes_ = 0;
};

Result<std::unique_ptr<FileStream>> open_write(std::uint32_t stream, Outbox& out, const FileRequest& r) {
  int flags = O_WRONLY | O_CREAT | O_CLOEXEC;
  flags |= r.append ? O_APPEND : O_TRUNC;
  if (r.exclusive) flags |= O_EXCL;
  mode_t mode = r.mode ? r.mode : 0644;
  UniqueFd fd(::open(r.path.c_str(), flags, mode));
  if (!fd) return errno_error(r.path);
  if (r.mode && ::fchmod(fd.get(), r.mode) != 0) return errno_error("chmod " + r.path);
  if ((r.uid || r.gid) &&
      ::fchown(fd.get(), r.uid ? *r.uid : static_cast<uid_t>(-1), r.gid ? *r.gid : static_cast<gid_t>(-1)) != 0)
    return errno_error("chown " + r.path);
  auto shared = std::make_shared<UniqueFd>(std::move(fd));
  std::string path = r.path;
  Sink sink = [shared, path](std::string_view d) -> Status {
    auto st = write_all(shared->get(), d);
    if (!st) return st.error().wrap(path);
    return ok_status();
  };
  Finish finish = [shared, path]() -> Result<proto::FileResult> {
    if (::close(shared->release()) != 0) return errno_error("close " + path);
    return proto::FileResult{};
  };
  return std::unique_ptr<FileStream>(new InStream(stream, out, std::move(sink), std::move(finish)));
}

Result<std::unique_ptr<FileStream>> open_tar_in(std::uint32_t stream, Outbox& out, const FileRequest& r) {
  // The destination directory itself is resolved as the guest sees it;
  // nothing inside the archive is ever followed (TreeWriter).
  UniqueFd dir(::open(r.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return errno_error(r.path);
  struct State {
    UniqueFd dir;
    std::unique_ptr<TreeWriter> writer;
    std::unique_ptr<GuestTarReader> reader;
  };
  auto s = std::make_shared<State>();
  s->dir = std::move(dir);
  TreeWriterOptions opt;
  opt.chown = true;
  s->writer = std::make_unique<TreeWriter>(s->dir.get(), opt);
  s->reader = std::make_unique<GuestTarReader>(*s->writer);
  Sink sink = [s](std::string_view d) { return s->reader->feed(d); };
  Finish finish = [s]() -> Result<proto::FileResult> {
    MOAT_TRY(s->reader->finish());
    return proto::FileResult{s->writer->bytes(), s->writer->entries()};
  };
  return std::unique_ptr<FileStream>(new InStream(stream, out, std::move(sink), std::move(finish)));
}

}  // namespace

void FileServer::open(const proto::Message& m) {
  if (streams_.count(m.stream)) {
    out_.send(proto::make_error_message(m.stream, "stream_in_use", "stream id already in use", false));
    return;
  }
  auto req = proto::parse_file_request(m.type, m.payload);
  if (!req) return out_.send(error_message(m.stream, make_error(req.error().message, EINVAL)));
  const std::string& op = req->op;
  if (op == proto::msg::kStat) {
    auto st = do_stat(*req);
    if (!st) return out_.send(error_message(m.stream, st.error()));
    return out_.send(result_message(m.stream, proto::Json{{"stat", *st}}));
  }
  if (op == proto::msg::kMkdir || op == proto::msg::kRemove || op == proto::msg::kRename ||
      op == proto::msg::kChmod || op == proto::msg::kChown) {
    auto st = do_simple(*req);
    if (!st) return out_.send(error_message(m.stream, st.error()));
    return out_.send(result_message(m.stream));
  }
  if (streams_.size() >= kMaxFileStreams)
    return out_.send(error_message(m.stream, make_error("too many open file streams", EMFILE)));
  Result<std::unique_ptr<FileStream>> s = make_error("unknown file request", EINVAL);
  if (op == proto::msg::kRead) s = open_read(m.stream, out_, *req);
  else if (op == proto::msg::kTarOut) s = open_tar_out(m.stream, out_, *req);
  else if (op == proto::msg::kList) s = open_list(m.stream, out_, *req);
  else if (op == proto::msg::kWrite) s = open_write(m.stream, out_, *req);
  else if (op == proto::msg::kTarIn) s = open_tar_in(m.stream, out_, *req);
  if (!s) return out_.send(error_message(m.stream, s.error()));
  streams_[m.stream] = std::move(*s);
}

bool FileServer::on_message(const proto::Message& m) {
  auto it = streams_.find(m.stream);
  if (it == streams_.end()) return false;
  it->second->on_message(m);
  drop_finished();
  return true;
}

bool FileServer::on_data(std::uint32_t stream, std::string_view data) {
  auto it = streams_.find(stream);
  if (it == streams_.end()) return false;
  it->second->on_data(data);
  drop_finished();
  return true;
}

bool FileServer::wants_to_produce() const {
  for (const auto& [id, s] : streams_)
    if (s->wants_to_produce()) return true;
  return false;
}

void FileServer::produce(std::size_t budget_per_stream) {
  for (auto& [id, s] : streams_)
    if (s->wants_to_produce()) s->produce(budget_per_stream);
  drop_finished();
}

void FileServer::drop_finished() {
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (it->second->finished()) it = streams_.erase(it);
    else ++it;
  }
}

}  // namespace moat::agent
