#include "store/sqlite.h"

#include <sqlite3.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <thread>

namespace moat::store {
namespace {

constexpr int kBusyTimeoutMs = 30000;

Error sqlite_error(sqlite3* db, const std::string& what) {
  int code = sqlite3_extended_errcode(db);
  int err = (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY) ? EEXIST : EIO;
  return Error{err, "sqlite" + (what.empty() ? std::string() : " " + what) + ": " + sqlite3_errmsg(db)};
}

}  // namespace

Result<std::unique_ptr<SqliteDb>> SqliteDb::open(const std::string& path, const char* schema) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  std::unique_ptr<SqliteDb> db(new SqliteDb(raw));
  if (rc != SQLITE_OK) return make_error("open " + path + ": " + (raw ? sqlite3_errmsg(raw) : "out of memory"), EIO);
  sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  MOAT_TRY(db->exec_when_free("PRAGMA journal_mode=WAL"));
  MOAT_TRY(db->exec("PRAGMA foreign_keys=ON"));
  MOAT_TRY(db->exec("PRAGMA synchronous=NORMAL"));
  Transaction tx(*db);
  MOAT_TRY(tx.begin());
  MOAT_TRY(db->exec(schema));
  MOAT_TRY(tx.commit());
  return db;
}

SqliteDb::~SqliteDb() { sqlite3_close_v2(db_); }

Status SqliteDb::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errmsg(db_);
    sqlite3_free(err);
    return make_error("sqlite: " + msg, EIO);
  }
  return ok_status();
}

int SqliteDb::changes() const { return sqlite3_changes(db_); }

// Switching a new database to WAL, or opening one while the last connection
// of another process is checkpointing and removing the WAL, can report
// SQLITE_BUSY without waiting on the busy handler. Several moat processes
// opening moat.db at once hit exactly that, so this waits itself.
Status SqliteDb::exec_when_free(const char* sql) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  auto pause = std::chrono::milliseconds(2);
  while (true) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return ok_status();
    if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED) return exec(sql);  // the error, with text
    if (std::chrono::steady_clock::now() >= deadline) return make_error(std::string("sqlite: ") + sql + ": " + sqlite3_errmsg(db_), EBUSY);
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

Stmt::Stmt(sqlite3* db, const char* sql) : db_(db) {
  rc_ = sqlite3_prepare_v2(db_, sql, -1, &stmt_, nullptr);
}

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Status Stmt::prepared() const {
  if (rc_ != SQLITE_OK) return sqlite_error(db_, "prepare");
  return ok_status();
}

Stmt& Stmt::bind(int i, const std::string& v) {
  sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  return *this;
}

Stmt& Stmt::bind(int i, std::int64_t v) {
  sqlite3_bind_int64(stmt_, i, v);
  return *this;
}

Stmt& Stmt::bind_null(int i) {
  sqlite3_bind_null(stmt_, i);
  return *this;
}

Result<bool> Stmt::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return sqlite_error(db_, "");
}

Status Stmt::run() {
  MOAT_ASSIGN_OR_RETURN(bool row, step());
  (void)row;
  return ok_status();
}

std::string Stmt::text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}

std::int64_t Stmt::integer(int col) const { return sqlite3_column_int64(stmt_, col); }

Transaction::~Transaction() {
  if (open_ && !committed_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Status Transaction::begin() { return exec("BEGIN IMMEDIATE", open_); }
Status Transaction::commit() { return exec("COMMIT", committed_); }

Status Transaction::exec(const char* sql, bool& flag) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return make_error("sqlite " + std::string(sql) + ": " + msg, EIO);
  }
  flag = true;
  return ok_status();
}

}  // namespace moat::store
