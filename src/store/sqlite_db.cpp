#include "sqlite_db.h"

#include <cstring>

#include "qmeter/core/error.h"
#include "qmeter/store/store.h"

namespace qmeter::store {

// SQLite's own message, plus the operating system's reason when it has one: "disk I/O error"
// alone does not tell a full disk (or a file-size limit) from a failing one.
static std::string errmsg_with_os_reason(sqlite3* db) {
  std::string msg = sqlite3_errmsg(db);
  const int ext = sqlite3_extended_errcode(db);
  if (const int os = sqlite3_system_errno(db); os != 0) {
    msg += std::string(" (") + std::strerror(os) + ")";
  } else if (ext == SQLITE_FULL || ext == SQLITE_IOERR_WRITE || ext == SQLITE_IOERR_TRUNCATE) {
    msg += " (a write failed: the disk is full or a file-size limit was reached)";
  }
  return msg;
}

static void check(sqlite3* db, int rc, std::string_view what) {
  if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
    throw DatabaseError("results database '" +
                        std::string(sqlite3_db_filename(db, "main") ? sqlite3_db_filename(db, "main") : "?") +
                        "': " + std::string(what) + ": " + errmsg_with_os_reason(db));
  }
}

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  check(db, sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr), sql);
}
Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int i, std::int64_t v) {
  check(db_, sqlite3_bind_int64(stmt_, i, v), "bind");
  return *this;
}
Statement& Statement::bind(int i, double v) {
  check(db_, sqlite3_bind_double(stmt_, i, v), "bind");
  return *this;
}
Statement& Statement::bind(int i, const std::string& v) {
  check(db_, sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT), "bind");
  return *this;
}
Statement& Statement::bind_null(int i) {
  check(db_, sqlite3_bind_null(stmt_, i), "bind");
  return *this;
}
bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  check(db_, rc, sqlite3_sql(stmt_));
  return rc == SQLITE_ROW;
}
void Statement::run() {
  while (step()) {
  }
  reset();
}
void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}
std::int64_t Statement::col_int(int i) const { return sqlite3_column_int64(stmt_, i); }
double Statement::col_double(int i) const { return sqlite3_column_double(stmt_, i); }
std::string Statement::col_text(int i) const {
  const auto* p = sqlite3_column_text(stmt_, i);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(sqlite3_column_bytes(stmt_, i)))
           : std::string();
}
bool Statement::col_is_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
int Statement::columns() const { return sqlite3_column_count(stmt_); }
std::string Statement::col_name(int i) const { return sqlite3_column_name(stmt_, i); }
int Statement::col_type(int i) const { return sqlite3_column_type(stmt_, i); }

Database::Database(const std::string& path) : path_(path) {
  int rc = sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw DatabaseError("cannot open results database '" + path + "': " + msg);
  }
  sqlite3_busy_timeout(db_, 10000);
}
Database::~Database() { sqlite3_close(db_); }

void Database::exec(std::string_view sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, std::string(sql).c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    sqlite3_free(err);
    throw DatabaseError("results database '" + path_ + "': " + errmsg_with_os_reason(db_));
  }
}

Transaction::Transaction(Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
Transaction::~Transaction() {
  if (!done_) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
    }
  }
}
void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace qmeter::store
