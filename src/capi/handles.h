// What the C ABI's opaque types hold, and the helpers every entry point
// uses: catch what the C++ side might throw, turn an Error into a code and
// a moat_error, copy caller structures whatever size they were compiled
// with.
#pragma once

#include <cstring>
#include <functional>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "moat/exec.h"
#include "moat/images.h"
#include "moat/moat.h"
#include "moat/result.h"
#include "moat/sandbox.h"

struct moat_error {
  int code = 0;
  std::string kind;
  std::string message;
};

struct moat_sandbox {
  moat::Sandbox sandbox;
  std::string id;
};

struct moat_exec {
  moat::Exec exec;
};

namespace moat::capi {

// The return value for `e`, with *err set when the caller asked for it.
int fail(const Error& e, moat_error** err);
inline int fail(int code, const std::string& message, moat_error** err) { return fail(Error{code, message}, err); }

// Where this library's own files are, unless the caller or the MOAT_*
// variables say otherwise (runtime.cpp); once, before the first call does
// anything.
void ensure_runtime_defaults();

// Runs `body` (returning int) so nothing escapes into C: std::bad_alloc is
// ENOMEM, anything else EIO with its message.
template <class Body>
int guarded(moat_error** err, Body body) noexcept {
  try {
    ensure_runtime_defaults();
    return body();
  } catch (const std::bad_alloc&) {
    return fail(ENOMEM, "out of memory", err);
  } catch (const std::exception& e) {
    return fail(EIO, std::string("internal error: ") + e.what(), err);
  } catch (...) {
    return fail(EIO, "internal error", err);
  }
}

// `Status` or `Result` to a return code.
template <class R>
int done(const R& r, moat_error** err) {
  return r.ok() ? 0 : fail(r.error(), err);
}

// A caller's structure as this library knows it: the bytes the caller's
// struct_size covers (at most ours), the rest zero. NULL: all zero (the
// defaults). A struct_size too small to hold itself is EINVAL naming the
// type: the caller forgot to set it.
template <class T>
Result<T> read_struct(const T* given, const char* type_name) {
  T out;
  std::memset(static_cast<void*>(&out), 0, sizeof(T));
  if (given == nullptr) return out;
  if (given->struct_size < sizeof(given->struct_size))
    return make_error(std::string(type_name) + ": struct_size not set", EINVAL);
  std::memcpy(static_cast<void*>(&out), given, given->struct_size < sizeof(T) ? given->struct_size : sizeof(T));
  return out;
}

char* copy_out(const std::string& s);  // malloc'd, NUL-terminated; NULL on no memory
// Sets *out to a copy of `s`; ENOMEM when it cannot.
int give_string(const std::string& s, char** out, moat_error** err);
std::string text_or_empty(const char* s);
std::vector<std::string> string_list(const char* const* list);
// "KEY=VALUE" items to a map; EINVAL naming a bad one.
Result<std::map<std::string, std::string>> labels_of(const char* const* list, const char* what);
Duration millis(std::int64_t ms);
// The C callback behind a PullProgress callback; `fn` NULL: none.
std::function<void(const PullProgress&)> progress_callback(moat_pull_progress_fn fn, void* user);

}  // namespace moat::capi
