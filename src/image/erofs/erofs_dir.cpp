#include "image/erofs/erofs_dir.h"

#include "image/erofs/erofs_format.h"

namespace moat::image::erofs {

std::vector<Dirent> sorted_dirents(const Inode& dir, const Inode& parent) {
  std::vector<Dirent> out;
  out.reserve(dir.children.size() + 2);
  // Children are already sorted; merge the two dot entries into place.
  Dirent dots[2] = {{".", &dir}, {"..", &parent}};
  std::size_t next_dot = 0;
  for (const auto& [name, child] : dir.children) {
    while (next_dot < 2 && dots[next_dot].name < std::string_view(name)) {
      out.push_back(dots[next_dot++]);
    }
    out.push_back({name, child.get()});
  }
  while (next_dot < 2) out.push_back(dots[next_dot++]);
  return out;
}

std::vector<DirBlock> pack_dir_blocks(const std::vector<Dirent>& dirents) {
  std::vector<DirBlock> blocks;
  DirBlock cur;
  for (std::size_t i = 0; i < dirents.size(); ++i) {
    std::size_t need = kDirentSize + dirents[i].name.size();
    if (cur.count > 0 && cur.bytes + need > kBlockSize) {
      blocks.push_back(cur);
      cur = DirBlock{i, 0, 0};
    }
    cur.count++;
    cur.bytes += need;
  }
  if (cur.count > 0) blocks.push_back(cur);
  return blocks;
}

std::uint64_t dir_size(const std::vector<DirBlock>& blocks) {
  if (blocks.empty()) return 0;
  return (blocks.size() - 1) * kBlockSize + blocks.back().bytes;
}

std::uint8_t dirent_file_type(FileType type) {
  switch (type) {
    case FileType::kRegular: return kFtRegular;
    case FileType::kDirectory: return kFtDirectory;
    case FileType::kSymlink: return kFtSymlink;
    case FileType::kCharDevice: return kFtCharDevice;
    case FileType::kBlockDevice: return kFtBlockDevice;
    case FileType::kFifo: return kFtFifo;
    case FileType::kSocket: return kFtSocket;
  }
  return 0;
}

void append_dir_block(const std::vector<Dirent>& dirents, const DirBlock& block,
                      const std::function<std::uint64_t(const Inode*)>& nid_of,
                      std::string& out) {
  std::size_t nameoff = block.count * kDirentSize;
  for (std::size_t i = block.first; i < block.first + block.count; ++i) {
    unsigned char rec[kDirentSize] = {};
    put_le64(rec, nid_of(dirents[i].inode));
    put_le16(rec + 8, static_cast<std::uint16_t>(nameoff));
    rec[10] = dirent_file_type(dirents[i].inode->type);
    out.append(reinterpret_cast<const char*>(rec), sizeof rec);
    nameoff += dirents[i].name.size();
  }
  for (std::size_t i = block.first; i < block.first + block.count; ++i) out.append(dirents[i].name);
}

}  // namespace moat::image::erofs
