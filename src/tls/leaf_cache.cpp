#include "tls/leaf_cache.h"

#include <algorithm>
#include <cctype>

namespace moat::tls {

LeafCache::LeafCache(CertificateAuthority ca, PkeyPtr key, std::size_t capacity)
    : ca_(std::move(ca)), key_(std::move(key)), capacity_(std::max<std::size_t>(capacity, 1)) {}

Result<X509*> LeafCache::leaf_for(std::string_view name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (auto it = by_name_.find(lower); it != by_name_.end()) {
    entries_.splice(entries_.begin(), entries_, it->second);
    return it->second->leaf.get();
  }
  MOAT_ASSIGN_OR_RETURN(auto leaf, ca_.issue(lower, key_.get()));
  ++signed_;
  if (entries_.size() >= capacity_) {
    by_name_.erase(entries_.back().name);
    entries_.pop_back();
  }
  entries_.push_front(Entry{lower, std::move(leaf)});
  by_name_[lower] = entries_.begin();
  return entries_.front().leaf.get();
}

}  // namespace moat::tls
