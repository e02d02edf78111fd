#include <cstdlib>
#include <map>

#include "capi/handles.h"
#include "moat/version.h"

namespace moat::capi {

int fail(const Error& e, moat_error** err) {
  int code = e.code != 0 ? e.code : -1;
  if (err != nullptr) {
    // Not guarded: a failure to allocate the error itself leaves *err NULL
    // and the code still says what happened.
    auto* out = new (std::nothrow) moat_error;
    if (out != nullptr) {
      try {
        out->code = e.code;
        out->kind = to_string(e.kind());
        out->message = e.message;
      } catch (...) {
        delete out;
        out = nullptr;
      }
    }
    *err = out;
  }
  return code;
}

char* copy_out(const std::string& s) {
  auto* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

int give_string(const std::string& s, char** out, moat_error** err) {
  if (out == nullptr) return 0;
  *out = copy_out(s);
  return *out ? 0 : fail(ENOMEM, "out of memory", err);
}

std::string text_or_empty(const char* s) { return s ? std::string(s) : std::string(); }

std::vector<std::string> string_list(const char* const* list) {
  std::vector<std::string> out;
  for (; list != nullptr && *list != nullptr; ++list) out.emplace_back(*list);
  return out;
}

Result<std::map<std::string, std::string>> labels_of(const char* const* list, const char* what) {
  std::map<std::string, std::string> labels;
  for (const auto& l : string_list(list)) {
    auto eq = l.find('=');
    if (eq == std::string::npos || eq == 0)
      return make_error(std::string(what) + " \"" + l + "\": expected KEY=VALUE", EINVAL);
    labels[l.substr(0, eq)] = l.substr(eq + 1);
  }
  return labels;
}

Duration millis(std::int64_t ms) { return std::chrono::milliseconds(ms); }

}  // namespace moat::capi

using namespace moat::capi;

extern "C" {

const char* moat_version(void) { return moat::version(); }
int moat_abi_version(void) { return MOAT_ABI_VERSION; }

int moat_error_code(const moat_error* err) { return err ? err->code : 0; }
const char* moat_error_kind(const moat_error* err) { return err ? err->kind.c_str() : "unknown"; }
const char* moat_error_message(const moat_error* err) { return err ? err->message.c_str() : ""; }
void moat_error_free(moat_error* err) { delete err; }
void moat_string_free(char* s) { std::free(s); }

}  // extern "C"
