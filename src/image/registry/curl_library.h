// libcurl, loaded when the registry client first needs it rather than when a
// moat program starts.
//
// Linked directly, libcurl's dependency chain (gnutls, krb5, ldap, ssh2,
// rtmp, idn2, ... 24 shared libraries on Debian) was mapped and relocated by
// every `moat` call and every program loading libmoat: ~9 ms of each start
// (an empty program linked with moat's libraries starts in 22.6 ms with
// libcurl, 13.8 ms without), while only pulls and logins make requests.
#pragma once

#include <curl/curl.h>

#include "util/result.h"

namespace moat::image {

// The functions of libcurl the registry client uses.
struct CurlLibrary {
  decltype(&::curl_global_init) global_init = nullptr;
  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&::curl_easy_reset) easy_reset = nullptr;
  decltype(&::curl_easy_setopt) easy_setopt = nullptr;
  decltype(&::curl_easy_getinfo) easy_getinfo = nullptr;
  decltype(&::curl_easy_perform) easy_perform = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  decltype(&::curl_slist_append) slist_append = nullptr;
  decltype(&::curl_slist_free_all) slist_free_all = nullptr;
  decltype(&::curl_url) url = nullptr;
  decltype(&::curl_url_set) url_set = nullptr;
  decltype(&::curl_url_get) url_get = nullptr;
  decltype(&::curl_url_cleanup) url_cleanup = nullptr;
  decltype(&::curl_free) free = nullptr;
};

// The library, loaded (and curl_global_init run) on the first call; later
// calls return the same. If it cannot be loaded, every call says why
// (libcurl.so.4 missing, or a symbol of it).
Result<const CurlLibrary*> curl_library();

}  // namespace moat::image
