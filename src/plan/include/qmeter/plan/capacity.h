#pragma once
// `qmeter plan capacity`: for every configuration, the highest request rate one instance sustains
// while meeting an SLO class at a required attainment (the SLO knee, interpolated between the
// measured load points that bracket it), the instances and GPUs a target rate needs, their cost,
// power and energy per hour at that rate, and the quality. Ranked by GPUs needed, then energy.
#include <string>
#include <vector>

#include "qmeter/analysis/study_view.h"
#include "qmeter/plan/configurations.h"

namespace qmeter::plan {

struct CapacityOptions {
  std::string workload;          // "" = every workload
  std::string slo;               // SLO class name (required)
  double attainment = 0.99;      // fraction of requests that must meet the class, in (0, 1]
  double target_rate = 0;        // req/s the deployment must serve (> 0)
  double gpu_cost_per_hour = -1; // per GPU; < 0 = no cost column
  std::vector<QualityFloor> quality_floors;
  std::string quality_metric;    // shown per row; "" = the first floor's metric, else perplexity when stored
};

struct CapacityRow {
  enum class Status {
    kBracketed,   // the knee lies between two measured rates
    kLowerBound,  // every measured rate met the SLO: capacity >= the highest one (instances: at most)
    kNeverMeets,  // even the lowest measured rate misses the SLO
    kBelowFloor,  // meets the SLO but fails a quality floor
  } status = Status::kNeverMeets;
  std::string label, run_id, model, method, hardware, workload;
  int tp = 1;
  double capacity_rps = 0;                  // per instance
  double bracket_lo_rps = 0, bracket_hi_rps = 0;
  double attainment_lo = 0, attainment_hi = 0;  // measured attainment at the bracket's ends
  double lowest_rate_rps = 0, lowest_attainment = 0;  // kNeverMeets: what was measured lowest
  int instances = 0, gpus = 0;
  double rate_per_instance_rps = 0;
  double cost_per_hour = -1;
  double power_per_instance_w = -1;        // at rate_per_instance_rps; -1 when not measured
  double energy_kwh_per_hour = -1;         // all instances, at the target rate
  std::string energy_source;
  double quality = -1;
  bool has_quality = false;
  std::string note;                        // why excluded, or an extrapolation caveat
};

struct CapacityPlan {
  std::string study, slo, workload, quality_metric;
  double attainment = 0, target_rate = 0, gpu_cost_per_hour = -1;
  std::vector<CapacityRow> ranked;      // can serve the target (kBracketed / kLowerBound), best first
  std::vector<CapacityRow> never_meets; // cannot meet the SLO at any measured rate
  std::vector<CapacityRow> below_floor; // meet the SLO, fail a quality floor
};

// Throws UsageError when the study lacks what is asked (SLO class, quality results for a floor,
// any load point at a finite rate).
CapacityPlan plan_capacity(const analysis::StudyView& study, const CapacityOptions& options);

std::string capacity_table(const CapacityPlan& plan);
std::string capacity_json(const CapacityPlan& plan);  // pretty-printed JSON document

}  // namespace qmeter::plan
