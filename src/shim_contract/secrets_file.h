// A sandbox's secrets (docs/tls.md): written by libmoat at create, mode
// 0600 in the sandbox's directory, read by its shim at every start. The
// values are here and nowhere else: not in config.json, the record in
// moat.db, `moat inspect` or anything the guest can read.
//
//   {"on_violation": "block",                       block | block-and-stop
//    "secrets": [{"name": "API_KEY", "placeholder": "moat-secret-…",
//                 "value": "…", "hosts": ["api.example.com", "*.corp.test"],
//                 "query": false, "body": false, "http": false}]}
#pragma once

#include <string>
#include <vector>

#include "util/result.h"

namespace moat::shim {

struct StoredSecret {
  std::string name, placeholder, value;
  std::vector<std::string> hosts;
  bool in_query = false, in_body = false, plain_http = false;
};

struct SecretsFile {
  std::vector<StoredSecret> secrets;
  bool stop_on_violation = false;
};

// Written whole (a new file renamed into place), mode 0600.
Status write_secrets(const std::string& dir, const SecretsFile& file);
// No file: no secrets. A file that does not parse is an error naming it.
Result<SecretsFile> read_secrets(const std::string& dir);

}  // namespace moat::shim
