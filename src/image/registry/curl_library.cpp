#include "image/registry/curl_library.h"

#include <dlfcn.h>

#include <cerrno>
#include <mutex>
#include <string>

namespace moat::image {
namespace {

// The soname libcurl4-openssl-dev links against: what the build found.
constexpr const char* kCurlSoname = "libcurl.so.4";

struct Loaded {
  CurlLibrary lib;
  std::string error;  // empty when loaded
};

template <typename Fn>
bool bind(void* handle, const char* name, Fn& fn, std::string& error) {
  fn = reinterpret_cast<Fn>(::dlsym(handle, name));
  if (!fn && error.empty()) error = std::string(kCurlSoname) + " has no " + name;
  return fn != nullptr;
}

Loaded load() {
  Loaded out;
  // Never unloaded: handles and callbacks of it live until exit.
  void* h = ::dlopen(kCurlSoname, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* why = ::dlerror();
    out.error = std::string("cannot load ") + kCurlSoname + " (registry requests need libcurl; install libcurl4)" +
                (why ? std::string(": ") + why : std::string());
    return out;
  }
  CurlLibrary& l = out.lib;
  std::string& e = out.error;
  bind(h, "curl_global_init", l.global_init, e);
  bind(h, "curl_easy_init", l.easy_init, e);
  bind(h, "curl_easy_cleanup", l.easy_cleanup, e);
  bind(h, "curl_easy_reset", l.easy_reset, e);
  bind(h, "curl_easy_setopt", l.easy_setopt, e);
  bind(h, "curl_easy_getinfo", l.easy_getinfo, e);
  bind(h, "curl_easy_perform", l.easy_perform, e);
  bind(h, "curl_easy_strerror", l.easy_strerror, e);
  bind(h, "curl_slist_append", l.slist_append, e);
  bind(h, "curl_slist_free_all", l.slist_free_all, e);
  bind(h, "curl_url", l.url, e);
  bind(h, "curl_url_set", l.url_set, e);
  bind(h, "curl_url_get", l.url_get, e);
  bind(h, "curl_url_cleanup", l.url_cleanup, e);
  bind(h, "curl_free", l.free, e);
  if (e.empty() && l.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) e = "curl_global_init failed";
  return out;
}

}  // namespace

Result<const CurlLibrary*> curl_library() {
  static std::once_flag once;
  static Loaded loaded;
  std::call_once(once, [] { loaded = load(); });
  if (!loaded.error.empty()) return make_error(loaded.error, ENOSYS);
  return &loaded.lib;
}

}  // namespace moat::image
