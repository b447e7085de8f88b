#pragma once
// Store internals shared by its source files (private to the store).
#include <cstdint>
#include <string>

#include "qmeter/store/store.h"
#include "sqlite_db.h"

namespace qmeter::store {

struct Store::Impl {
  explicit Impl(const std::string& path) : db(path) {}
  Database db;
  int version = 0;
};

std::int64_t unix_ms();
// Removes every row that hangs off a run (load points, requests, samples, quality), not the run.
void delete_run_children(Database& db, const std::string& run_id);

}  // namespace qmeter::store
