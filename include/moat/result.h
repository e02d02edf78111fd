// Result<T>: a value or an Error with context. Errors are values in moat;
// nothing is thrown across component boundaries or the C ABI.
#pragma once

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace moat {

// What kind of failure an Error is, for callers that branch on it (an SDK
// raising a matching exception, a server choosing an HTTP status) without
// reading the message. Derived from the errno-style code.
enum class ErrorKind {
  kUnknown,          // no code
  kNotFound,         // ENOENT, ESRCH: no such sandbox, image, file, volume
  kAlreadyExists,    // EEXIST
  kInvalidArgument,  // EINVAL, ENAMETOOLONG, E2BIG, ERANGE, EDOM: bad input
  kBusy,             // EBUSY, EAGAIN: another operation holds it, try again
  kNotRunning,       // ENOTCONN: the sandbox is not running
  kTimedOut,         // ETIMEDOUT
  kInterrupted,      // EINTR, ECANCELED: stopped waiting on a signal
  kPermissionDenied, // EACCES, EPERM
  kResourceExhausted,// ENOSPC, EMFILE, ENFILE, ENOMEM, EFBIG, EDQUOT
  kUnsupported,      // ENOSYS, ENOTSUP, EOPNOTSUPP
  kProtocol,         // EPROTO, EBADMSG: a peer (guest, registry) sent something wrong
  kIo,               // any other errno
};

const char* to_string(ErrorKind kind);

struct Error {
  // errno-style code where one applies (0 otherwise), and a message that
  // already carries the context a user needs ("open /x: No such file").
  int code = 0;
  std::string message;

  // Prepends context: Error{"read failed"}.wrap("loading config") gives
  // "loading config: read failed".
  Error wrap(const std::string& context) const {
    return Error{code, context + ": " + message};
  }

  ErrorKind kind() const;
};

inline ErrorKind Error::kind() const {
  switch (code) {
    case 0: return ErrorKind::kUnknown;
    case ENOENT: case ESRCH: return ErrorKind::kNotFound;
    case EEXIST: return ErrorKind::kAlreadyExists;
    case EINVAL: case ENAMETOOLONG: case E2BIG: case ERANGE: case EDOM: case ENOTDIR: case EISDIR: case ELOOP:
      return ErrorKind::kInvalidArgument;
    case EBUSY: case EAGAIN: return ErrorKind::kBusy;
    case ENOTCONN: return ErrorKind::kNotRunning;
    case ETIMEDOUT: return ErrorKind::kTimedOut;
    case EINTR: case ECANCELED: return ErrorKind::kInterrupted;
    case EACCES: case EPERM: return ErrorKind::kPermissionDenied;
    case ENOSPC: case EMFILE: case ENFILE: case ENOMEM: case EFBIG: case EDQUOT: return ErrorKind::kResourceExhausted;
    case ENOSYS: case EOPNOTSUPP: return ErrorKind::kUnsupported;
    case EPROTO: case EBADMSG: return ErrorKind::kProtocol;
    default: return ErrorKind::kIo;
  }
}

inline const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kUnknown: return "unknown";
    case ErrorKind::kNotFound: return "not_found";
    case ErrorKind::kAlreadyExists: return "already_exists";
    case ErrorKind::kInvalidArgument: return "invalid_argument";
    case ErrorKind::kBusy: return "busy";
    case ErrorKind::kNotRunning: return "not_running";
    case ErrorKind::kTimedOut: return "timed_out";
    case ErrorKind::kInterrupted: return "interrupted";
    case ErrorKind::kPermissionDenied: return "permission_denied";
    case ErrorKind::kResourceExhausted: return "resource_exhausted";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kProtocol: return "protocol";
    case ErrorKind::kIo: return "io";
  }
  return "unknown";
}

namespace detail {
// value() of a Result that holds an error is a caller's bug; libmoat throws
// nothing, so it ends the process with the error rather than throwing
// std::bad_variant_access across the API.
[[noreturn]] inline void value_of_error(const Error& e) {
  std::fprintf(stderr, "moat: Result::value() called on an error: %s\n", e.message.c_str());
  std::abort();
}
}  // namespace detail

inline Error make_error(std::string message, int code = 0) {
  return Error{code, std::move(message)};
}

// An Error from the current errno, e.g. errno_error("open " + path).
inline Error errno_error(const std::string& what, int err = errno) {
  return Error{err, what + ": " + std::strerror(err)};
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}     // NOLINT: implicit by design

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    if (!ok()) detail::value_of_error(error());
    return *std::get_if<0>(&v_);
  }
  const T& value() const& {
    if (!ok()) detail::value_of_error(error());
    return *std::get_if<0>(&v_);
  }
  T&& value() && {
    if (!ok()) detail::value_of_error(error());
    return std::move(*std::get_if<0>(&v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  // An empty Error (code 0, no message) when the Result holds a value.
  const Error& error() const {
    static const Error kNone{};
    const Error* e = std::get_if<1>(&v_);
    return e ? *e : kNone;
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return error_; }

 private:
  Error error_;
  bool ok_ = true;
};

using Status = Result<void>;

inline Status ok_status() { return Status(); }

}  // namespace moat

// Propagates an error from an expression returning Result/Status.
#define MOAT_TRY(expr)                                  \
  do {                                                  \
    auto moat_try_result_ = (expr);                     \
    if (!moat_try_result_.ok()) return moat_try_result_.error(); \
  } while (0)

#define MOAT_CONCAT_INNER_(a, b) a##b
#define MOAT_CONCAT_(a, b) MOAT_CONCAT_INNER_(a, b)

// Declares `lhs` from a Result<T> expression or returns its error.
#define MOAT_ASSIGN_OR_RETURN(lhs, expr)                              \
  auto MOAT_CONCAT_(moat_r_, __LINE__) = (expr);                      \
  if (!MOAT_CONCAT_(moat_r_, __LINE__).ok())                          \
    return MOAT_CONCAT_(moat_r_, __LINE__).error();                   \
  lhs = std::move(MOAT_CONCAT_(moat_r_, __LINE__)).value()
