#pragma once
// The coordinator's view of Slurm (private to exec): brings the study database's placements in
// line with what Slurm says, merges the shards of tasks that finished and records the ones that
// ended without a result. Everything it knows is in the database and the results folder, so any
// number of coordinators (`run`, `collect`, `status`) can run it, one after another or at once.
#include <cstdint>
#include <string>
#include <vector>

#include "qmeter/store/store.h"
#include "results_layout.h"
#include "slurm_client.h"

namespace qmeter::exec::slurm {

inline constexpr const char* kSubmitting = "SUBMITTING";      // intent recorded, sbatch not yet answered
inline constexpr const char* kNotSubmitted = "NOT_SUBMITTED";  // sbatch refused or never ran

std::int64_t now_ms();
// Pending, running, or about to be submitted: the run may still produce a result.
bool is_live(const store::PlacementRow& p);

// Brings the database's placements in line with Slurm: states, nodes, times; finished tasks'
// shards merged (merge = true) and tasks that ended without a result recorded failed. Returns one
// line per run whose state changed.
class Reconciler {
 public:
  Reconciler(store::Store& db, const ResultsLayout& layout) : db_(db), layout_(layout) {}

  std::vector<std::string> run(bool merge);

  SlurmClient& client() { return client_; }

  static std::string describe(const store::PlacementRow& p);

 private:
  static void apply(const TaskState& t, store::PlacementRow& p);

  void recover_submitting(std::vector<store::PlacementRow>& open);

  std::string settle(store::PlacementRow& p, bool known);

  store::Store& db_;
  const ResultsLayout& layout_;
  SlurmClient client_;
};

}  // namespace qmeter::exec::slurm
