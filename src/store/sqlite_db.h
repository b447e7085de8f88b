#pragma once
// A thin RAII layer over the sqlite3 C API, private to the store.
#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace qmeter::store {

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, std::int64_t v);
  Statement& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
  Statement& bind(int i, double v);
  Statement& bind(int i, const std::string& v);
  Statement& bind_null(int i);
  bool step();  // true while a row is available; throws Error on failure
  void run();   // step to completion, then reset for reuse
  void reset();

  std::int64_t col_int(int i) const;
  double col_double(int i) const;
  std::string col_text(int i) const;
  bool col_is_null(int i) const;
  int columns() const;
  std::string col_name(int i) const;
  int col_type(int i) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

class Database {
 public:
  explicit Database(const std::string& path);
  ~Database();
  sqlite3* handle() const { return db_; }
  void exec(std::string_view sql);
  const std::string& path() const { return path_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

// Commits on commit(); rolls back if destroyed before (an exception mid-write leaves nothing).
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

}  // namespace qmeter::store
