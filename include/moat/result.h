// Result<T>: a value or an Error with context. Errors are values in moat;
// nothing is thrown across component boundaries or the C ABI.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace moat {

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
};

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

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const { return std::get<1>(v_); }

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
