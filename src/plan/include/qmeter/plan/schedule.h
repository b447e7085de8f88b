#pragma once
// `qmeter plan schedule`: for a load that varies over time, choose per slot the configuration
// (model, method, parallelism, power limit or clock where the study measured them) and instance
// count that meet the SLO with the least energy, charging a reconfiguration cost when the choice
// changes. Solved exactly by dynamic programming over slots x (configuration, instances):
// the cheapest path through a layered graph, O(slots x states^2).
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "qmeter/analysis/study_view.h"
#include "qmeter/plan/configurations.h"

namespace qmeter::plan {

// ---- the exact solver (independent of what the states mean) ----

inline constexpr double kInfeasible = std::numeric_limits<double>::infinity();

struct PathSolution {
  bool feasible = false;
  double total = kInfeasible;   // sum of slot costs and transition costs along the path
  std::vector<int> states;      // one per slot
};

// slot_cost[t][s]: the cost of being in state s during slot t (kInfeasible: not allowed).
// transition(t, from, to): the cost of changing from `from` (slot t-1) to `to` (slot t), t >= 1.
// Returns the minimum-cost sequence of states (ties: the lowest state index, earliest slot first).
PathSolution cheapest_path(const std::vector<std::vector<double>>& slot_cost,
                           const std::function<double(int t, int from, int to)>& transition);

// ---- the load over time ----

struct LoadTrace {
  double slot_seconds = 0;
  std::vector<double> rates;  // req/s per slot
  std::string description;
};

// The Azure LLM inference trace (TIMESTAMP,ContextTokens,GeneratedTokens): arrivals counted per
// slot of slot_seconds from the first request, divided by the slot length, times rate_scale.
// UsageError naming the file and line for bad rows.
LoadTrace bin_azure_trace(const std::string& path, double slot_seconds, double rate_scale = 1);
// A CSV of rates, one slot per line: "RATE" or "ANYTHING,RATE" (the last field is the rate in
// req/s); an optional header line, blank lines and '#' comments are skipped.
LoadTrace read_rates_csv(const std::string& path, double slot_seconds, double rate_scale = 1);
// "azure:PATH" or "rates:PATH".
LoadTrace load_trace(const std::string& spec, double slot_seconds, double rate_scale = 1);

// ---- the schedule ----

struct ScheduleOptions {
  std::string workload;
  std::string slo;
  double attainment = 0.99;
  double switch_cost_s = 60;  // a started instance draws its slot power this long before it serves
  int max_instances = -1;     // per slot; < 0: enough for every configuration to serve the peak (<= 256)
  std::vector<QualityFloor> quality_floors;
};

struct SlotChoice {
  int slot = 0;
  double rate = 0;
  bool served = false;
  int config = -1;       // index into SchedulePlan::configs
  int instances = 0;
  double energy_j = 0;   // serving energy of this slot
  double switch_j = 0;   // reconfiguration energy charged at the start of this slot
};

struct StaticChoice {
  bool feasible = false;
  int config = -1;
  int instances = 0;   // fixed: sized for the peak (autoscaled: -1)
  double energy_j = 0;
};

struct ScheduleConfig {
  std::string label;
  double capacity_rps = 0;  // per instance at the SLO
  int tp = 1;
};

struct SchedulePlan {
  std::string study, slo, trace, workload;
  double attainment = 0, slot_seconds = 0, switch_cost_s = 0;
  int max_instances = 0, states = 0;
  std::vector<ScheduleConfig> configs;         // those that can meet the SLO and the quality floors
  std::vector<std::string> excluded;           // "label: why"
  std::vector<SlotChoice> slots;
  std::vector<int> unserved_slots;             // no configuration can serve them within max_instances
  double total_energy_j = 0;                   // serving + switching, served slots only
  int switches = 0;
  StaticChoice best_static;                    // one configuration, one instance count, all slots
  StaticChoice best_single_config_autoscaled;  // one configuration, instances chosen per slot
  double saving_vs_static = 0;                 // fraction of best_static's energy saved
  double saving_vs_autoscaled = 0;
};

// Per-instance power of a configuration comes from the measured points (power_at): serving rate r
// with n instances of configuration c for T seconds costs n x P_c(r / n) x T. Switching from
// (c, n) to (c', n') starts n' instances when c' != c, else max(0, n' - n); each started instance
// costs switch_cost_s x its power in the new slot.
SchedulePlan plan_schedule(const analysis::StudyView& study, const LoadTrace& trace, const ScheduleOptions& options);

std::string schedule_table(const SchedulePlan& plan);
std::string schedule_json(const SchedulePlan& plan);

}  // namespace qmeter::plan
