#include "qmeter/plan/schedule.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "qmeter/analysis/knee.h"
#include "qmeter/core/error.h"
#include "text_table.h"

namespace qmeter::plan {

PathSolution cheapest_path(const std::vector<std::vector<double>>& slot_cost,
                           const std::function<double(int, int, int)>& transition) {
  PathSolution sol;
  const int slots = static_cast<int>(slot_cost.size());
  if (slots == 0) {
    sol.feasible = true;
    sol.total = 0;
    return sol;
  }
  const int states = static_cast<int>(slot_cost[0].size());
  // best[s]: the least cost of slots 0..t ending in state s; parent[t][s]: the state before it.
  std::vector<double> best(slot_cost[0]), next(states);
  std::vector<std::vector<int>> parent(slots, std::vector<int>(states, -1));
  for (int t = 1; t < slots; ++t) {
    for (int to = 0; to < states; ++to) {
      next[to] = kInfeasible;
      const double here = slot_cost[t][to];
      if (here == kInfeasible) continue;
      for (int from = 0; from < states; ++from) {
        if (best[from] == kInfeasible) continue;
        const double c = best[from] + transition(t, from, to) + here;
        if (c < next[to]) {
          next[to] = c;
          parent[t][to] = from;
        }
      }
    }
    best.swap(next);
  }
  int end = -1;
  for (int s = 0; s < states; ++s)
    if (best[s] != kInfeasible && (end < 0 || best[s] < best[end])) end = s;
  if (end < 0) return sol;
  sol.feasible = true;
  sol.total = best[end];
  sol.states.assign(slots, -1);
  for (int t = slots - 1, s = end; t >= 0; s = parent[t][s], --t) sol.states[t] = s;
  return sol;
}

namespace {

struct State {
  int config = 0;
  int instances = 0;
};

struct Candidate {
  const Configuration* config = nullptr;
  double capacity = 0;
};

// Instances of a configuration needed for `rate` (at least one instance always runs).
int instances_needed(double rate, double capacity) {
  return std::max(1, static_cast<int>(std::ceil(rate / capacity - 1e-9)));
}

}  // namespace

SchedulePlan plan_schedule(const analysis::StudyView& study, const LoadTrace& trace, const ScheduleOptions& o) {
  if (o.slo.empty()) throw UsageError("--slo: an SLO class name is required");
  if (!(o.attainment > 0 && o.attainment <= 1))
    throw UsageError(fmt::format("--attainment {}: must be in (0, 1]", o.attainment));
  if (!(o.switch_cost_s >= 0)) throw UsageError(fmt::format("--switch-cost-s {}: must be >= 0", o.switch_cost_s));
  if (trace.rates.empty()) throw UsageError("the trace has no slots");
  require_slo_class(study, o.slo);
  const auto configs = configurations(study, o.workload);
  if (configs.empty())
    throw UsageError(fmt::format("study '{}' has no load point at a finite request rate to plan from", study.name));
  require_quality_results(configs, o.quality_floors);

  SchedulePlan plan;
  plan.study = study.name;
  plan.slo = o.slo;
  plan.trace = trace.description;
  plan.workload = o.workload;
  plan.attainment = o.attainment;
  plan.slot_seconds = trace.slot_seconds;
  plan.switch_cost_s = o.switch_cost_s;

  std::vector<Candidate> cands;
  for (const auto& c : configs) {
    std::vector<std::pair<double, double>> curve;
    for (const auto& s : c.samples) {
      auto it = s.point->attainment.find(o.slo);
      if (it != s.point->attainment.end()) curve.emplace_back(s.rate, it->second);
    }
    const auto knee = analysis::slo_knee(curve, o.attainment);
    std::string why;
    if (knee.kind == analysis::KneeResult::Kind::kNone) why = "cannot meet the SLO at any measured rate";
    else if (!power_at(c, knee.load)) why = "no power or energy measured";
    else why = quality_floor_violation(*c.run, o.quality_floors);
    if (!why.empty()) {
      plan.excluded.push_back(c.label() + ": " + why);
      continue;
    }
    cands.push_back({&c, knee.load});
    plan.configs.push_back({c.label(), knee.load, c.run->tp});
  }
  if (cands.empty())
    throw UsageError(fmt::format("no configuration of study '{}' can meet SLO '{}' at {:.4g}% attainment{}", study.name,
                                 o.slo, o.attainment * 100,
                                 o.quality_floors.empty() ? "" : " and the quality floors"));

  // The states: (configuration, instances) for instances 1..limit, where the limit is
  // --max-instances, else what the configuration needs at the peak (more instances than the peak
  // needs are never required; with --max-instances they are considered too).
  const double peak = *std::max_element(trace.rates.begin(), trace.rates.end());
  std::vector<State> states;
  int most = 0;
  for (std::size_t ci = 0; ci < cands.size(); ++ci) {
    const int limit = o.max_instances > 0 ? o.max_instances : std::min(256, instances_needed(peak, cands[ci].capacity));
    most = std::max(most, limit);
    for (int n = 1; n <= limit; ++n) states.push_back({static_cast<int>(ci), n});
  }
  plan.max_instances = most;
  plan.states = static_cast<int>(states.size());
  const double work = static_cast<double>(trace.rates.size()) * states.size() * states.size();
  if (work > 4e8)
    throw UsageError(fmt::format("{} slots x {} states is too large to solve exactly; use longer --slot-min or a "
                                 "smaller --max-instances",
                                 trace.rates.size(), states.size()));

  // The cost of each state in each slot (kInfeasible where it cannot serve the slot's rate).
  const std::size_t S = states.size();
  std::vector<std::vector<double>> cost_all(trace.rates.size(), std::vector<double>(S, kInfeasible));
  std::vector<std::vector<double>> power_all(trace.rates.size(), std::vector<double>(S, 0));
  std::vector<int> served;
  for (std::size_t t = 0; t < trace.rates.size(); ++t) {
    const double rate = trace.rates[t];
    bool any = false;
    for (std::size_t s = 0; s < S; ++s) {
      const auto& cand = cands[states[s].config];
      const int n = states[s].instances;
      if (rate > n * cand.capacity * (1 + 1e-12)) continue;
      const auto watts = power_at(*cand.config, rate / n);
      if (!watts) continue;
      power_all[t][s] = *watts;
      cost_all[t][s] = n * *watts * trace.slot_seconds;
      any = true;
    }
    if (any) served.push_back(static_cast<int>(t));
    else plan.unserved_slots.push_back(static_cast<int>(t));
  }

  // Only the served slots take part; a slot nothing can serve is reported, not planned.
  std::vector<std::vector<double>> cost;
  for (int t : served) cost.push_back(cost_all[t]);
  auto transition = [&](int k, int from, int to) {
    const State& a = states[from];
    const State& b = states[to];
    const int started = a.config != b.config ? b.instances : std::max(0, b.instances - a.instances);
    return started * o.switch_cost_s * power_all[served[k]][to];
  };

  auto best = cheapest_path(cost, transition);
  for (std::size_t t = 0; t < trace.rates.size(); ++t) plan.slots.push_back({static_cast<int>(t), trace.rates[t]});
  if (best.feasible) {
    plan.total_energy_j = best.total;
    for (std::size_t k = 0; k < served.size(); ++k) {
      auto& slot = plan.slots[served[k]];
      const int s = best.states[k];
      slot.served = true;
      slot.config = states[s].config;
      slot.instances = states[s].instances;
      slot.energy_j = cost[k][s];
      slot.switch_j = k == 0 ? 0 : transition(static_cast<int>(k), best.states[k - 1], s);
      if (k > 0 && best.states[k - 1] != s) ++plan.switches;
    }
  }

  // Baselines: one configuration and one instance count for every slot (sized for the peak), and
  // one configuration with instances chosen per slot (the same exact solver, restricted).
  for (std::size_t s = 0; s < S; ++s) {
    double total = 0;
    for (const auto& row : cost) total += row[s];
    if (total != kInfeasible && (!plan.best_static.feasible || total < plan.best_static.energy_j))
      plan.best_static = {true, states[s].config, states[s].instances, total};
  }
  for (std::size_t ci = 0; ci < cands.size(); ++ci) {
    auto restricted = cost;
    for (auto& row : restricted)
      for (std::size_t s = 0; s < S; ++s)
        if (states[s].config != static_cast<int>(ci)) row[s] = kInfeasible;
    auto one = cheapest_path(restricted, transition);
    if (one.feasible && (!plan.best_single_config_autoscaled.feasible || one.total < plan.best_single_config_autoscaled.energy_j))
      plan.best_single_config_autoscaled = {true, static_cast<int>(ci), -1, one.total};
  }
  if (plan.best_static.feasible && plan.best_static.energy_j > 0)
    plan.saving_vs_static = 1 - plan.total_energy_j / plan.best_static.energy_j;
  if (plan.best_single_config_autoscaled.feasible && plan.best_single_config_autoscaled.energy_j > 0)
    plan.saving_vs_autoscaled = 1 - plan.total_energy_j / plan.best_single_config_autoscaled.energy_j;
  return plan;
}

namespace {

double wh(double joules) { return joules / 3600; }

}  // namespace

std::string schedule_table(const SchedulePlan& p) {
  std::string out = fmt::format(
      "energy-aware schedule: study '{}', SLO '{}' at {:.4g}% attainment\ntrace: {}\n"
      "solved exactly: dynamic programming over {} slots x {} states (configuration, 1..{} instances), "
      "switch cost {:.4g} s of a started instance's power\n\n",
      p.study, p.slo, p.attainment * 100, p.trace, p.slots.size() - p.unserved_slots.size(), p.states,
      p.max_instances, p.switch_cost_s);
  TextTable t({"slot", "req/s", "configuration", "instances", "energy Wh", "switch Wh"});
  for (const auto& s : p.slots) {
    if (!s.served) {
      t.add({std::to_string(s.slot), fmt::format("{:.3f}", s.rate), "UNSERVED (no configuration can serve it)", "-",
             "-", "-"});
      continue;
    }
    t.add({std::to_string(s.slot), fmt::format("{:.3f}", s.rate), p.configs[s.config].label,
           std::to_string(s.instances), fmt::format("{:.4g}", wh(s.energy_j)),
           s.switch_j > 0 ? fmt::format("{:.4g}", wh(s.switch_j)) : "-"});
  }
  out += t.render();
  out += fmt::format("\nscheduled total: {:.6g} Wh ({} changes of configuration or instance count)\n", wh(p.total_energy_j), p.switches);
  if (p.best_static.feasible) {
    out += fmt::format("best static (one configuration, {} instances all the time): {}: {:.6g} Wh; saving {:.2f}%\n",
                       p.best_static.instances, p.configs[p.best_static.config].label, wh(p.best_static.energy_j),
                       p.saving_vs_static * 100);
  } else {
    out += "best static: no single configuration and instance count serves every slot\n";
  }
  if (p.best_single_config_autoscaled.feasible) {
    out += fmt::format("best single configuration, autoscaled: {}: {:.6g} Wh; saving {:.2f}%\n",
                       p.configs[p.best_single_config_autoscaled.config].label,
                       wh(p.best_single_config_autoscaled.energy_j), p.saving_vs_autoscaled * 100);
  }
  if (!p.unserved_slots.empty()) {
    std::string list;
    for (int s : p.unserved_slots) list += (list.empty() ? "" : ", ") + std::to_string(s);
    out += fmt::format("unserved slots (no configuration within {} instances meets the SLO): {}\n", p.max_instances, list);
  }
  for (const auto& e : p.excluded) out += "excluded: " + e + "\n";
  return out;
}

std::string schedule_json(const SchedulePlan& p) {
  using J = nlohmann::ordered_json;
  J j = {{"planner", "schedule"}, {"solver", "exact dynamic programming"}, {"study", p.study}, {"slo", p.slo},
         {"attainment", p.attainment}, {"trace", p.trace}, {"workload", p.workload},
         {"slot_seconds", p.slot_seconds}, {"switch_cost_s", p.switch_cost_s}, {"max_instances", p.max_instances},
         {"states", p.states}};
  j["configurations"] = J::array();
  for (const auto& c : p.configs)
    j["configurations"].push_back({{"configuration", c.label}, {"capacity_rps", c.capacity_rps}, {"tp", c.tp}});
  j["slots"] = J::array();
  for (const auto& s : p.slots) {
    J row = {{"slot", s.slot}, {"rate", s.rate}, {"served", s.served}};
    if (s.served) {
      row["configuration"] = p.configs[s.config].label;
      row["instances"] = s.instances;
      row["energy_j"] = s.energy_j;
      row["switch_j"] = s.switch_j;
    }
    j["slots"].push_back(row);
  }
  j["total_energy_j"] = p.total_energy_j;
  j["switches"] = p.switches;
  auto static_json = [&](const StaticChoice& s) {
    if (!s.feasible) return J();
    J x = {{"configuration", p.configs[s.config].label}, {"energy_j", s.energy_j}};
    if (s.instances > 0) x["instances"] = s.instances;
    return x;
  };
  j["best_static"] = static_json(p.best_static);
  j["best_single_config_autoscaled"] = static_json(p.best_single_config_autoscaled);
  j["saving_vs_static"] = p.best_static.feasible ? J(p.saving_vs_static) : J();
  j["saving_vs_autoscaled"] = p.best_single_config_autoscaled.feasible ? J(p.saving_vs_autoscaled) : J();
  j["unserved_slots"] = p.unserved_slots;
  j["excluded"] = p.excluded;
  return j.dump(2);
}

}  // namespace qmeter::plan
