// A thin layer over SQLite for moat's state database ($MOAT_HOME/moat.db):
// opening it in WAL mode with a busy timeout (several moat processes use it
// at once), prepared statements that finalize themselves, and write
// transactions that take the lock up front.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "util/result.h"

struct sqlite3;
struct sqlite3_stmt;

namespace moat::store {

class SqliteDb {
 public:
  // Opens (creating) the database and runs `schema` (idempotent DDL) in a
  // write transaction.
  static Result<std::unique_ptr<SqliteDb>> open(const std::string& path, const char* schema);
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  Status exec(const char* sql);
  // exec, retried while the database is busy (up to the busy timeout).
  Status exec_when_free(const char* sql);
  sqlite3* handle() const { return db_; }
  // Rows the last INSERT/UPDATE/DELETE changed.
  int changes() const;

 private:
  explicit SqliteDb(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// One prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(const SqliteDb& db, const char* sql) : Stmt(db.handle(), sql) {}
  Stmt(sqlite3* db, const char* sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Status prepared() const;
  Stmt& bind(int i, const std::string& v);
  Stmt& bind(int i, std::int64_t v);
  Stmt& bind_null(int i);
  // true: a row is ready; false: done. A UNIQUE violation has code EEXIST.
  Result<bool> step();
  Status run();
  std::string text(int col) const;
  std::int64_t integer(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

// BEGIN IMMEDIATE takes the write lock up front, so two writers queue on the
// busy timeout instead of one failing with SQLITE_BUSY mid-transaction.
class Transaction {
 public:
  explicit Transaction(const SqliteDb& db) : db_(db.handle()) {}
  explicit Transaction(sqlite3* db) : db_(db) {}
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Status begin();
  Status commit();

 private:
  Status exec(const char* sql, bool& flag);
  sqlite3* db_;
  bool open_ = false;
  bool committed_ = false;
};

}  // namespace moat::store
