#include "image/store/image_db.h"

#include <sqlite3.h>

#include <cerrno>
#include <ctime>

namespace moat::image {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS refs (
  name TEXT PRIMARY KEY,
  digest TEXT NOT NULL,
  manifest_digest TEXT NOT NULL,
  updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS manifests (
  digest TEXT PRIMARY KEY,
  media_type TEXT NOT NULL,
  config_digest TEXT NOT NULL,
  platform TEXT NOT NULL,
  size INTEGER NOT NULL,
  config_size INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS layers (
  manifest_digest TEXT NOT NULL REFERENCES manifests(digest) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  blob_digest TEXT NOT NULL,
  media_type TEXT NOT NULL,
  diff_id TEXT NOT NULL,
  size INTEGER NOT NULL,
  PRIMARY KEY (manifest_digest, idx)
);
CREATE INDEX IF NOT EXISTS layers_by_blob ON layers(blob_digest);
CREATE TABLE IF NOT EXISTS image_users (
  manifest_digest TEXT NOT NULL,
  user TEXT NOT NULL,
  PRIMARY KEY (manifest_digest, user)
);
)sql";

using store::Stmt;
using store::Transaction;

}  // namespace

std::uint64_t ImageRecord::total_size() const {
  std::uint64_t total = manifest_size + config_size;
  for (const auto& l : layers) total += l.size;
  return total;
}

Result<std::unique_ptr<ImageDb>> ImageDb::open(const std::string& path) {
  MOAT_ASSIGN_OR_RETURN(auto db, store::SqliteDb::open(path, kSchema));
  return std::unique_ptr<ImageDb>(new ImageDb(std::move(db)));
}

ImageDb::ImageDb(std::unique_ptr<store::SqliteDb> db) : owner_(std::move(db)), db_(owner_->handle()) {}
ImageDb::~ImageDb() = default;

Status ImageDb::exec(const char* sql) { return owner_->exec(sql); }

Status ImageDb::put_image(const ImageRecord& image, const RefRecord& ref) {
  Transaction tx(db_);
  MOAT_TRY(tx.begin());
  {
    Stmt s(db_,
           "INSERT OR REPLACE INTO manifests(digest, media_type, config_digest, platform, size, "
           "config_size) VALUES(?,?,?,?,?,?)");
    MOAT_TRY(s.prepared());
    MOAT_TRY(s.bind(1, image.manifest_digest)
                 .bind(2, image.media_type)
                 .bind(3, image.config_digest)
                 .bind(4, image.platform)
                 .bind(5, static_cast<std::int64_t>(image.manifest_size))
                 .bind(6, static_cast<std::int64_t>(image.config_size))
                 .run());
  }
  {
    Stmt del(db_, "DELETE FROM layers WHERE manifest_digest = ?");
    MOAT_TRY(del.prepared());
    MOAT_TRY(del.bind(1, image.manifest_digest).run());
  }
  for (std::size_t i = 0; i < image.layers.size(); ++i) {
    const auto& l = image.layers[i];
    Stmt s(db_,
           "INSERT INTO layers(manifest_digest, idx, blob_digest, media_type, diff_id, size) "
           "VALUES(?,?,?,?,?,?)");
    MOAT_TRY(s.prepared());
    MOAT_TRY(s.bind(1, image.manifest_digest)
                 .bind(2, static_cast<std::int64_t>(i))
                 .bind(3, l.blob_digest)
                 .bind(4, l.media_type)
                 .bind(5, l.diff_id)
                 .bind(6, static_cast<std::int64_t>(l.size))
                 .run());
  }
  MOAT_TRY(write_ref(ref));
  return tx.commit();
}

// Inside the caller's transaction. An unset `updated` means now.
Status ImageDb::write_ref(const RefRecord& ref) {
  Stmt s(db_, "INSERT OR REPLACE INTO refs(name, digest, manifest_digest, updated) VALUES(?,?,?,?)");
  MOAT_TRY(s.prepared());
  std::int64_t now = ref.updated ? ref.updated : static_cast<std::int64_t>(std::time(nullptr));
  return s.bind(1, ref.name).bind(2, ref.digest).bind(3, ref.manifest_digest).bind(4, now).run();
}

Status ImageDb::add_ref(const RefRecord& ref) {
  Transaction tx(db_);
  MOAT_TRY(tx.begin());
  {
    Stmt s(db_, "SELECT 1 FROM manifests WHERE digest = ?");
    MOAT_TRY(s.prepared());
    s.bind(1, ref.manifest_digest);
    MOAT_ASSIGN_OR_RETURN(bool known, s.step());
    if (!known) return make_error("no image recorded for " + ref.manifest_digest, ENOENT);
  }
  MOAT_TRY(write_ref(ref));
  return tx.commit();
}

Result<std::optional<RefRecord>> ImageDb::get_ref(const std::string& name) {
  Stmt s(db_, "SELECT name, digest, manifest_digest, updated FROM refs WHERE name = ?");
  MOAT_TRY(s.prepared());
  s.bind(1, name);
  MOAT_ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<RefRecord>();
  return std::optional<RefRecord>(RefRecord{s.text(0), s.text(1), s.text(2), s.integer(3)});
}

Result<std::vector<RefRecord>> ImageDb::list_refs() {
  Stmt s(db_, "SELECT name, digest, manifest_digest, updated FROM refs ORDER BY name");
  MOAT_TRY(s.prepared());
  std::vector<RefRecord> out;
  while (true) {
    MOAT_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(RefRecord{s.text(0), s.text(1), s.text(2), s.integer(3)});
  }
  return out;
}

Result<std::optional<ImageRecord>> ImageDb::get_image(const std::string& manifest_digest) {
  ImageRecord img;
  {
    Stmt s(db_,
           "SELECT digest, media_type, config_digest, platform, size, config_size FROM manifests "
           "WHERE digest = ?");
    MOAT_TRY(s.prepared());
    s.bind(1, manifest_digest);
    MOAT_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) return std::optional<ImageRecord>();
    img.manifest_digest = s.text(0);
    img.media_type = s.text(1);
    img.config_digest = s.text(2);
    img.platform = s.text(3);
    img.manifest_size = static_cast<std::uint64_t>(s.integer(4));
    img.config_size = static_cast<std::uint64_t>(s.integer(5));
  }
  Stmt s(db_,
         "SELECT blob_digest, media_type, diff_id, size FROM layers WHERE manifest_digest = ? "
         "ORDER BY idx");
  MOAT_TRY(s.prepared());
  s.bind(1, manifest_digest);
  while (true) {
    MOAT_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    img.layers.push_back(
        LayerRecord{s.text(0), s.text(1), s.text(2), static_cast<std::uint64_t>(s.integer(3))});
  }
  return std::optional<ImageRecord>(std::move(img));
}

Result<bool> ImageDb::blob_referenced(const std::string& digest) {
  Stmt s(db_,
         "SELECT 1 FROM refs WHERE digest = ?1 OR manifest_digest = ?1 "
         "UNION ALL SELECT 1 FROM manifests WHERE digest = ?1 OR config_digest = ?1 "
         "UNION ALL SELECT 1 FROM layers WHERE blob_digest = ?1 LIMIT 1");
  MOAT_TRY(s.prepared());
  s.bind(1, digest);
  return s.step();
}

Result<std::vector<std::string>> ImageDb::remove_ref(const std::string& name, bool* image_removed) {
  if (image_removed) *image_removed = false;
  Transaction tx(db_);
  MOAT_TRY(tx.begin());
  MOAT_ASSIGN_OR_RETURN(auto ref, get_ref(name));
  if (!ref) return make_error("no such image: " + name, ENOENT);
  {
    Stmt s(db_, "DELETE FROM refs WHERE name = ?");
    MOAT_TRY(s.prepared());
    MOAT_TRY(s.bind(1, name).run());
  }
  // Candidate blobs: everything the removed ref led to.
  std::vector<std::string> candidates{ref->digest};
  if (ref->manifest_digest != ref->digest) candidates.push_back(ref->manifest_digest);
  // A sandbox made from the image keeps it (not its name) alive.
  Stmt users(db_,
             "SELECT 1 FROM refs WHERE manifest_digest = ?1 "
             "UNION ALL SELECT 1 FROM image_users WHERE manifest_digest = ?1 LIMIT 1");
  MOAT_TRY(users.prepared());
  users.bind(1, ref->manifest_digest);
  MOAT_ASSIGN_OR_RETURN(bool still_used, users.step());
  if (!still_used) {
    MOAT_ASSIGN_OR_RETURN(auto img, get_image(ref->manifest_digest));
    if (img) {
      candidates.push_back(img->config_digest);
      for (const auto& l : img->layers) candidates.push_back(l.blob_digest);
    }
    Stmt del(db_, "DELETE FROM manifests WHERE digest = ?");
    MOAT_TRY(del.prepared());
    MOAT_TRY(del.bind(1, ref->manifest_digest).run());
    if (image_removed) *image_removed = true;
  }
  std::vector<std::string> unused;
  for (const auto& d : candidates) {
    MOAT_ASSIGN_OR_RETURN(bool used, blob_referenced(d));
    bool seen = false;
    for (const auto& u : unused) seen = seen || u == d;
    if (!used && !seen) unused.push_back(d);
  }
  MOAT_TRY(tx.commit());
  return unused;
}

namespace {

Result<std::vector<std::string>> column(sqlite3* db, const char* sql) {
  Stmt s(db, sql);
  MOAT_TRY(s.prepared());
  std::vector<std::string> out;
  while (true) {
    MOAT_ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(s.text(0));
  }
  return out;
}

}  // namespace

Result<std::vector<std::string>> ImageDb::remove_unreferenced_manifests() {
  Transaction tx(db_);
  MOAT_TRY(tx.begin());
  MOAT_ASSIGN_OR_RETURN(
      auto gone, column(db_, "SELECT digest FROM manifests WHERE digest NOT IN "
                             "(SELECT manifest_digest FROM refs UNION SELECT manifest_digest FROM image_users) "
                             "ORDER BY digest"));
  // Layer rows go with their manifest (ON DELETE CASCADE).
  MOAT_TRY(exec("DELETE FROM manifests WHERE digest NOT IN "
                "(SELECT manifest_digest FROM refs UNION SELECT manifest_digest FROM image_users)"));
  MOAT_TRY(tx.commit());
  return gone;
}

Result<std::vector<std::string>> ImageDb::blobs_in_use() {
  return column(db_,
                "SELECT digest FROM refs UNION SELECT manifest_digest FROM refs "
                "UNION SELECT digest FROM manifests UNION SELECT config_digest FROM manifests "
                "UNION SELECT blob_digest FROM layers");
}

Status ImageDb::add_user(const std::string& manifest_digest, const std::string& user) {
  Stmt s(db_, "INSERT OR IGNORE INTO image_users (manifest_digest, user) VALUES (?, ?)");
  MOAT_TRY(s.prepared());
  return s.bind(1, manifest_digest).bind(2, user).run();
}

Status ImageDb::remove_user(const std::string& user) {
  Stmt s(db_, "DELETE FROM image_users WHERE user = ?");
  MOAT_TRY(s.prepared());
  return s.bind(1, user).run();
}

Result<std::vector<std::string>> ImageDb::manifest_digests() {
  return column(db_, "SELECT digest FROM manifests");
}

}  // namespace moat::image
