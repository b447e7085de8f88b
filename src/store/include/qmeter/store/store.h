#pragma once
// The SQLite results store (WAL). Every write of a load point or a quality task is one
// transaction, and a run is marked complete only after all its parts are stored, so a SIGKILL at
// any moment loses nothing committed and leaves no half-written point.
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "qmeter/core/error.h"
#include "qmeter/store/rows.h"

namespace qmeter::store {

inline constexpr int kSchemaVersion = 4;

// The results database itself failed (a full disk, a file-size limit, an I/O error, corruption).
// Not the fault of the run being measured: a study stops on it instead of recording the run as
// failed (which a resume would skip) and going on to fail every later run the same way.
class DatabaseError : public Error {
 public:
  using Error::Error;
};

// WAL for the study database (readers never block the writer); a rollback journal for a task's
// shard, which may sit on a network file system where WAL's shared memory is unsafe.
enum class JournalMode { kWal, kRollback };

enum class MergeOutcome {
  kMerged,            // the shard's run and every row of it are now in this database
  kAlreadyComplete,   // this database already holds the run complete: nothing changed
  kShardIncomplete,   // the shard's run was cut off (still `running`) or is absent: nothing changed
};

class Store {
 public:
  // Opens (creating and migrating as needed). Throws Error naming the path on failure.
  static std::unique_ptr<Store> open(const std::string& path, JournalMode mode = JournalMode::kWal);
  ~Store();

  int schema_version() const;
  const std::string& path() const;

  void put_study(const std::string& name, const std::string& spec_text);

  // Starts (or restarts) a run: an incomplete earlier attempt's rows are removed in the same
  // transaction so a redo never duplicates rows. kPending: submitted to a scheduler, not started.
  void begin_run(const RunRow& run, RunStatus status = RunStatus::kRunning);
  void finish_run(const std::string& run_id, RunStatus status, const std::string& error = "",
                  const std::string& log_tail = "");
  std::optional<RunStatus> run_status(const std::string& run_id) const;

  // One load point with all its raw records, in one transaction. Returns the point's id.
  std::int64_t write_load_point(LoadPointRow point, const std::vector<RequestRow>& requests,
                                const std::vector<TelemetrySampleRow>& samples,
                                const std::vector<ServerMetricSampleRow>& server_metrics);
  // Telemetry not tied to a load point (idle baseline of a run).
  void write_run_samples(const std::string& run_id, const std::vector<TelemetrySampleRow>& samples);
  // One quality task's results and items, in one transaction.
  // Replaces earlier results of the same (run, task).
  void write_quality(const std::string& run_id, const std::string& task, const std::vector<QualityResultRow>& results,
                     const std::vector<QualityItemRow>& items);
  // A task that produced no result, with why (replaces the task's earlier results or error).
  void write_quality_error(const std::string& run_id, const std::string& task, const std::string& status,
                           const std::string& error);
  std::vector<QualityErrorRow> quality_errors(const std::string& run_id) const;

  // Merges one finished (complete, or failed by the run itself) run from a task's shard (another
  // results file) in one transaction: the run row, its load points (new ids), requests, samples
  // and quality rows, and marks its placement merged. Idempotent: a run already complete here is
  // skipped. Throws Error naming the shard when it is unreadable.
  MergeOutcome merge_run(const std::string& shard_path, const std::string& run_id);

  // Placements under a batch scheduler (insert or replace by run id).
  void put_placement(const PlacementRow& p);
  std::vector<PlacementRow> placements() const;
  std::optional<PlacementRow> placement(const std::string& run_id) const;

  // Queries (analysis, report and planners read only these).
  std::vector<RunRow> runs(const std::string& study = "") const;
  std::vector<LoadPointRow> load_points(const std::string& run_id) const;
  std::vector<RequestRow> requests(std::int64_t load_point_id) const;
  std::vector<QualityResultRow> quality_results(const std::string& run_id) const;
  std::vector<std::string> studies() const;
  std::string study_spec(const std::string& name) const;
  std::int64_t count_rows(const std::string& table) const;

  // Export: every table (or one) as CSV (header row, RFC 4180 quoting) or JSON (array of objects).
  static const std::vector<std::string>& table_names();
  void export_table(const std::string& table, const std::string& format, std::ostream& out) const;
  // {"table": [rows...], ...} for every table: the exchange format the report embeds.
  std::string export_all_json() const;
  std::string integrity_check() const;  // "ok" when PRAGMA integrity_check passes

 private:
  struct Impl;
  explicit Store(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::store
