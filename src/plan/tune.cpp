#include "qmeter/plan/tune.h"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "qmeter/analysis/knee.h"
#include "qmeter/core/error.h"
#include "qmeter/core/parse_number.h"
#include "qmeter/core/text.h"
#include "text_table.h"

namespace qmeter::plan {

namespace {

std::string join(const std::set<std::string>& items) {
  std::string s;
  for (const auto& i : items) s += (s.empty() ? "" : ", ") + i;
  return s.empty() ? "none" : s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

double finite_number(std::string_view text, const std::string& what) {
  const auto v = parse_double(text);
  if (!v || !std::isfinite(*v)) throw UsageError(fmt::format("{}: '{}' is not a number", what, text));
  return *v;
}

bool uses_load(const Quantity& q) {
  return q.kind == Quantity::Kind::kPointMetric || q.kind == Quantity::Kind::kEnergyPerToken ||
         q.kind == Quantity::Kind::kEnergyPerRequest || q.kind == Quantity::Kind::kAvgPower;
}

}  // namespace

bool depends_on_load(const Quantity& q) { return uses_load(q); }

Quantity resolve_quantity(const analysis::StudyView& study, const std::string& text) {
  Quantity q;
  std::string name(trim(text));
  std::optional<bool> forced;
  if (ends_with(name, ":max")) forced = true, name.resize(name.size() - 4);
  else if (ends_with(name, ":min")) forced = false, name.resize(name.size() - 4);
  q.name = name;
  std::set<std::string> point_keys, quality_keys;
  for (const auto& run : study.configs) {
    for (const auto& p : run.points)
      for (const auto& [k, v] : p.metrics) point_keys.insert(k);
    for (const auto& [k, v] : run.quality) quality_keys.insert(k);
  }
  if (name == "energy_per_token" || name == "energy_per_token_j") q.kind = Quantity::Kind::kEnergyPerToken;
  else if (name == "energy_per_request" || name == "energy_per_request_j") q.kind = Quantity::Kind::kEnergyPerRequest;
  else if (name == "avg_power" || name == "avg_power_w") q.kind = Quantity::Kind::kAvgPower;
  else if (name == "capacity") q.kind = Quantity::Kind::kCapacity, q.maximize = true;
  else if (name == "bits_per_weight") q.kind = Quantity::Kind::kBits;
  else if (name == "gpus") q.kind = Quantity::Kind::kGpus;
  else if (point_keys.count(name + "_ms") || point_keys.count(name)) {
    q.kind = Quantity::Kind::kPointMetric;
    q.key = point_keys.count(name + "_ms") ? name + "_ms" : name;
    // Latencies are minimized; throughputs and goodput maximized.
    q.maximize = q.key.find("throughput") != std::string::npos || q.key.find("goodput") != std::string::npos;
  } else if (quality_keys.count(name)) {
    q.kind = Quantity::Kind::kQuality;
    q.key = name;
    q.maximize = !lower_is_better(name);
  } else {
    throw UsageError(fmt::format("'{}': study '{}' stores no such quantity (load-point metrics: {}; quality results: {}; "
                                 "also energy_per_token, energy_per_request, avg_power, capacity, bits_per_weight, gpus)",
                                 text, study.name, join(point_keys), join(quality_keys)));
  }
  if (forced) q.maximize = *forced;
  return q;
}

Constraint parse_constraint(const analysis::StudyView& study, const std::string& text) {
  Constraint c;
  c.text = text;
  auto op = text.find("<=");
  c.at_most = true;
  if (op == std::string::npos) {
    op = text.find(">=");
    c.at_most = false;
  }
  if (op == std::string::npos)
    throw UsageError(fmt::format("--constraint '{}': expected NAME<=VALUE or NAME>=VALUE", text));
  c.quantity = resolve_quantity(study, text.substr(0, op));
  c.bound = finite_number(text.substr(op + 2), fmt::format("--constraint '{}'", text));
  return c;
}

std::optional<double> evaluate(const Configuration& c, const Quantity& q, double rate, const TuneOptions& o,
                               std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<double> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  auto at_rate = [&](auto value_of) -> std::optional<double> {
    auto v = interpolate_at(c, rate, value_of, false);
    if (!v) {
      double lo = INFINITY, hi = -INFINITY;
      for (const auto& s : c.samples)
        if (value_of(*s.point) >= 0) lo = std::min(lo, s.rate), hi = std::max(hi, s.rate);
      if (lo > hi) return fail(fmt::format("{} was not measured", q.name));
      return fail(fmt::format("no load points bracketing {:.4g} req/s for {} (measured {:.4g}..{:.4g} req/s)", rate,
                              q.name, lo, hi));
    }
    return v;
  };
  switch (q.kind) {
    case Quantity::Kind::kPointMetric:
      return at_rate([&](const analysis::PointView& p) {
        auto it = p.metrics.find(q.key);
        return it == p.metrics.end() || std::isnan(it->second) ? -1.0 : it->second;
      });
    case Quantity::Kind::kEnergyPerToken:
      return at_rate([](const analysis::PointView& p) { return p.energy_per_token_j; });
    case Quantity::Kind::kEnergyPerRequest:
      return at_rate([](const analysis::PointView& p) { return p.energy_per_request_j; });
    case Quantity::Kind::kAvgPower:
      return at_rate([](const analysis::PointView& p) { return p.avg_power_w; });
    case Quantity::Kind::kCapacity: {
      std::vector<std::pair<double, double>> curve;
      for (const auto& s : c.samples) {
        auto it = s.point->attainment.find(o.slo);
        if (it != s.point->attainment.end()) curve.emplace_back(s.rate, it->second);
      }
      const auto knee = analysis::slo_knee(curve, o.attainment);
      if (knee.kind == analysis::KneeResult::Kind::kNone) return 0.0;  // sustains no measured rate
      if (knee.kind == analysis::KneeResult::Kind::kAtLeastMax)
        return fail(fmt::format("capacity not bracketed: every measured rate (up to {:.4g} req/s) met the SLO",
                                knee.load));
      return knee.load;
    }
    case Quantity::Kind::kBits:
      if (c.run->bits_per_weight < 0) return fail("bits per weight unknown for method " + c.run->method);
      return c.run->bits_per_weight;
    case Quantity::Kind::kGpus:
      return static_cast<double>(c.run->tp);
    case Quantity::Kind::kQuality: {
      auto v = quality_value(*c.run, q.key);
      if (!v) return fail(fmt::format("no quality result for {}", q.key));
      return v;
    }
  }
  return fail("unknown quantity");
}

TunePlan plan_tune(const analysis::StudyView& study, const TuneOptions& o) {
  TunePlan plan;
  plan.study = study.name;
  plan.workload = o.workload;
  if (o.objectives.size() < 2) throw UsageError("--objectives: name at least two objectives, comma-separated");
  for (const auto& text : o.objectives) plan.objectives.push_back(resolve_quantity(study, text));
  std::vector<Constraint> constraints;
  for (const auto& text : o.constraints) constraints.push_back(parse_constraint(study, text)), plan.constraints.push_back(text);
  bool needs_slo = false, needs_rate = false;
  for (const auto& q : plan.objectives) needs_slo |= q.kind == Quantity::Kind::kCapacity, needs_rate |= uses_load(q);
  for (const auto& c : constraints)
    needs_slo |= c.quantity.kind == Quantity::Kind::kCapacity, needs_rate |= uses_load(c.quantity);
  if (needs_slo) {
    if (o.slo.empty()) throw UsageError("the objective 'capacity' needs --slo CLASS");
    require_slo_class(study, o.slo);
  }

  // Weights: positional or by name; every objective defaults to 1.
  plan.weights.assign(plan.objectives.size(), 1.0);
  const auto weight_items = split_nonempty(o.weights, ',');
  const bool named = !weight_items.empty() && weight_items[0].find('=') != std::string::npos;
  if (!named && !weight_items.empty() && weight_items.size() != plan.objectives.size())
    throw UsageError(fmt::format("--weights '{}': {} weights for {} objectives", o.weights, weight_items.size(),
                                 plan.objectives.size()));
  for (std::size_t i = 0; i < weight_items.size(); ++i) {
    std::size_t k = i;
    std::string value = weight_items[i];
    if (named) {
      const auto eq = weight_items[i].find('=');
      if (eq == std::string::npos)
        throw UsageError(fmt::format("--weights '{}': '{}' is not NAME=WEIGHT", o.weights, weight_items[i]));
      const std::string name(trim(std::string_view(weight_items[i]).substr(0, eq)));
      auto it = std::find_if(plan.objectives.begin(), plan.objectives.end(), [&](const Quantity& q) { return q.name == name; });
      if (it == plan.objectives.end())
        throw UsageError(fmt::format("--weights '{}': '{}' is not one of the objectives", o.weights, name));
      k = static_cast<std::size_t>(it - plan.objectives.begin());
      value = trim(std::string_view(weight_items[i]).substr(eq + 1));
    }
    plan.weights[k] = finite_number(value, fmt::format("--weights '{}'", o.weights));
    if (plan.weights[k] < 0) throw UsageError(fmt::format("--weights '{}': weights must be >= 0", o.weights));
  }

  const auto configs = configurations(study, o.workload);
  if (configs.empty())
    throw UsageError(fmt::format("study '{}' has no load point at a finite request rate to compare", study.name));
  if (needs_rate) {
    if (o.at_rate > 0) {
      plan.at_rate = o.at_rate;
    } else {
      // The highest rate inside every configuration's measured range.
      double lo = 0, hi = INFINITY;
      for (const auto& c : configs) lo = std::max(lo, c.samples.front().rate), hi = std::min(hi, c.samples.back().rate);
      if (lo > hi)
        throw UsageError(fmt::format("the configurations share no measured rate range (common range would be "
                                     "{:.4g}..{:.4g} req/s): give --at-rate",
                                     lo, hi));
      plan.at_rate = hi;
    }
  }

  for (const auto& c : configs) {
    TuneRow row;
    row.label = c.label();
    row.run_id = c.run->run_id;
    row.workload = c.workload;
    std::string why;
    bool ok = true;
    for (const auto& q : plan.objectives) {
      auto v = evaluate(c, q, plan.at_rate, o, &why);
      if (!v) {
        plan.skipped.push_back(row.label + ": " + why);
        ok = false;
        break;
      }
      row.values.push_back(*v);
    }
    if (!ok) continue;
    for (const auto& k : constraints) {
      auto v = evaluate(c, k.quantity, plan.at_rate, o, &why);
      if (!v) row.violations.push_back(k.text + " (" + why + ")");
      else if (k.at_most ? !(*v <= k.bound) : !(*v >= k.bound))
        row.violations.push_back(fmt::format("{} ({} = {:.4g})", k.text, k.quantity.name, *v));
    }
    plan.rows.push_back(std::move(row));
  }
  if (plan.rows.empty()) {
    std::string why;
    for (const auto& s : plan.skipped) why += "\n  " + s;
    throw UsageError("no configuration has a value for every objective:" + why);
  }

  std::vector<analysis::Objective> objs;
  for (const auto& q : plan.objectives) objs.push_back({q.name, q.maximize});
  std::vector<std::vector<double>> points;
  for (const auto& r : plan.rows) points.push_back(r.values);
  plan.front = analysis::pareto_front(points, objs).front;
  for (std::size_t i = 0; i < plan.rows.size(); ++i) {
    plan.rows[i].on_front = std::find(plan.front.begin(), plan.front.end(), static_cast<int>(i)) != plan.front.end();
    for (std::size_t j = 0; j < plan.rows.size(); ++j)
      if (i != j && analysis::dominates(points[j], points[i], objs)) plan.rows[i].dominated_by.push_back(static_cast<int>(j));
  }

  // The recommendation: among the configurations meeting every constraint, the least weighted
  // sum of objectives normalized to [0 best, 1 worst] over those configurations. With positive
  // weights the minimum is Pareto-optimal among them.
  std::vector<int> feasible;
  for (std::size_t i = 0; i < plan.rows.size(); ++i)
    if (plan.rows[i].violations.empty()) feasible.push_back(static_cast<int>(i));
  double weight_sum = 0;
  for (double w : plan.weights) weight_sum += w;
  for (int i : feasible) {
    double score = 0;
    for (std::size_t k = 0; k < plan.objectives.size(); ++k) {
      double best = INFINITY, worst = -INFINITY;
      for (int j : feasible) {
        const double v = plan.objectives[k].maximize ? -plan.rows[j].values[k] : plan.rows[j].values[k];
        best = std::min(best, v), worst = std::max(worst, v);
      }
      const double v = plan.objectives[k].maximize ? -plan.rows[i].values[k] : plan.rows[i].values[k];
      score += plan.weights[k] * (worst > best ? (v - best) / (worst - best) : 0);
    }
    plan.rows[i].score = weight_sum > 0 ? score / weight_sum : 0;
    if (plan.recommended < 0 || plan.rows[i].score < plan.rows[plan.recommended].score ||
        (plan.rows[i].score == plan.rows[plan.recommended].score && plan.rows[i].on_front &&
         !plan.rows[plan.recommended].on_front))
      plan.recommended = i;
  }
  return plan;
}

std::string tune_table(const TunePlan& p) {
  std::string objectives;
  for (std::size_t k = 0; k < p.objectives.size(); ++k)
    objectives += fmt::format("{}{} ({}, weight {:.4g})", k ? ", " : "", p.objectives[k].name,
                              p.objectives[k].maximize ? "max" : "min", p.weights[k]);
  std::string out = fmt::format("multi-objective tuning: study '{}'; objectives: {}\n", p.study, objectives);
  if (p.at_rate > 0) out += fmt::format("load-dependent metrics read at {:.4g} req/s (interpolated)\n", p.at_rate);
  for (const auto& c : p.constraints) out += "constraint: " + c + "\n";
  out += "\n";
  std::vector<std::string> header = {"", "configuration"};
  for (const auto& q : p.objectives) header.push_back(q.name + (q.maximize ? " (max)" : " (min)"));
  header.push_back("Pareto");
  header.push_back("score");
  TextTable t(header);
  for (std::size_t i = 0; i < p.rows.size(); ++i) {
    const auto& r = p.rows[i];
    std::vector<std::string> cells = {static_cast<int>(i) == p.recommended ? "*" : "", r.label};
    for (double v : r.values) cells.push_back(fmt::format("{:.4g}", v));
    std::string dominated;
    for (int j : r.dominated_by) dominated += (dominated.empty() ? "dominated by " : ", ") + std::to_string(j + 1);
    cells.push_back(r.on_front ? "front" : dominated);
    cells.push_back(r.violations.empty() ? fmt::format("{:.3f}", r.score) : "violates");
    cells[1] = fmt::format("{}. {}", i + 1, r.label);
    t.add(cells);
  }
  out += t.render();
  out += fmt::format("\nPareto front: {} of {} configurations\n", p.front.size(), p.rows.size());
  for (const auto& r : p.rows)
    for (const auto& v : r.violations) out += fmt::format("  {} violates {}\n", r.label, v);
  if (p.recommended >= 0)
    out += fmt::format("recommended (*): {} (weighted normalized score {:.3f}; 0 = best in every objective)\n",
                       p.rows[p.recommended].label, p.rows[p.recommended].score);
  else
    out += "no configuration meets every constraint: no recommendation\n";
  for (const auto& s : p.skipped) out += "skipped: " + s + "\n";
  return out;
}

std::string tune_json(const TunePlan& p) {
  using J = nlohmann::ordered_json;
  J j = {{"planner", "tune"}, {"study", p.study}, {"workload", p.workload}};
  j["objectives"] = J::array();
  for (std::size_t k = 0; k < p.objectives.size(); ++k)
    j["objectives"].push_back({{"name", p.objectives[k].name},
                               {"direction", p.objectives[k].maximize ? "max" : "min"},
                               {"weight", p.weights[k]}});
  j["constraints"] = p.constraints;
  j["at_rate"] = p.at_rate > 0 ? J(p.at_rate) : J();
  j["configurations"] = J::array();
  for (const auto& r : p.rows) {
    J values = J::object();
    for (std::size_t k = 0; k < p.objectives.size(); ++k) values[p.objectives[k].name] = r.values[k];
    J dominators = J::array();
    for (int d : r.dominated_by) dominators.push_back(p.rows[d].label);
    j["configurations"].push_back({{"configuration", r.label}, {"run_id", r.run_id}, {"workload", r.workload},
                                   {"values", values}, {"pareto", r.on_front}, {"dominated_by", dominators},
                                   {"violations", r.violations},
                                   {"score", r.violations.empty() ? J(r.score) : J()}});
  }
  J front = J::array();
  for (int i : p.front) front.push_back(p.rows[i].label);
  j["pareto_front"] = front;
  j["recommended"] = p.recommended >= 0 ? J(p.rows[p.recommended].label) : J();
  j["skipped"] = p.skipped;
  return j.dump(2);
}

}  // namespace qmeter::plan
