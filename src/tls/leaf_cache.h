// The leaf certificates a shim shows guests, one per server name, signed on
// first use and kept for the next connection to the same name.
//
// Names come from guests (the SNI of their ClientHello): the cache is
// bounded (the least recently used leaf goes first), and a name a
// certificate cannot hold is refused by CertificateAuthority::issue before
// anything is kept.
#pragma once

#include <cstddef>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tls/certificate_authority.h"

namespace moat::tls {

class LeafCache {
 public:
  static constexpr std::size_t kDefaultCapacity = 1024;

  // Every leaf carries `key`'s public half; the cache owns both.
  LeafCache(CertificateAuthority ca, PkeyPtr key, std::size_t capacity = kDefaultCapacity);

  // The leaf for `name` (lower-cased first, as names compare), signed now
  // if it is not cached. The pointer stays valid until `capacity` other
  // names have been asked for since.
  Result<X509*> leaf_for(std::string_view name);
  EVP_PKEY* key() const { return key_.get(); }
  const CertificateAuthority& authority() const { return ca_; }

  std::size_t size() const { return entries_.size(); }
  std::size_t signed_count() const { return signed_; }

 private:
  struct Entry {
    std::string name;
    X509Ptr leaf;
  };

  CertificateAuthority ca_;
  PkeyPtr key_;
  std::size_t capacity_;
  std::size_t signed_ = 0;
  std::list<Entry> entries_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> by_name_;
};

}  // namespace moat::tls
