#include "sandbox/change_lines.h"

#include <cerrno>

#include <nlohmann/json.hpp>

#include "proto/text.h"

namespace moat::sandbox {

Status ChangeLines::feed(std::string_view bytes) {
  partial_.append(bytes);
  std::size_t start = 0;
  while (true) {
    std::size_t nl = partial_.find('\n', start);
    if (nl == std::string::npos) break;
    MOAT_TRY(line(std::string_view(partial_).substr(start, nl - start)));
    start = nl + 1;
  }
  partial_.erase(0, start);
  if (partial_.size() > kMaxChangeLine) return make_error("the root reader wrote an overlong line", EIO);
  return ok_status();
}

Result<std::vector<RootChange>> ChangeLines::finish() {
  if (!partial_.empty()) return make_error("the root reader's output ended mid-line", EIO);
  return std::move(changes_);
}

Status ChangeLines::line(std::string_view text) {
  auto bad = [] { return make_error("the root reader wrote a line that is not a change", EIO); };
  if (text.size() > kMaxChangeLine) return make_error("the root reader wrote an overlong line", EIO);
  if (changes_.size() >= kMaxChanges) return make_error("the root reader wrote more changes than any disk holds", EIO);
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("kind") || !j["kind"].is_string() || !j.contains("path")) return bad();
  auto path = proto::bytes_from_json(j["path"]);
  const std::string& kind = j["kind"].get_ref<const std::string&>();
  if (!path || path->empty() || (*path)[0] != '/') return bad();
  RootChange c;
  if (kind == "A") c.kind = RootChange::Kind::kAdded;
  else if (kind == "C") c.kind = RootChange::Kind::kChanged;
  else if (kind == "D") c.kind = RootChange::Kind::kDeleted;
  else return bad();
  c.path = std::move(*path);
  changes_.push_back(std::move(c));
  return ok_status();
}

}  // namespace moat::sandbox
