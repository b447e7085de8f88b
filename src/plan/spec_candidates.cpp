#include "qmeter/plan/spec_candidates.h"

#include <fmt/core.h>
#include <yaml-cpp/yaml.h>

#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"

namespace qmeter::plan {

namespace {

YAML::Node one_item_list(const YAML::Node& item) {
  YAML::Node list(YAML::NodeType::Sequence);
  list.push_back(item);
  return list;
}

}  // namespace

std::vector<SpecCandidate> spec_candidates(const std::string& spec_path, const spec::KnownNames& known) {
  const auto full = spec::parse_study_spec_file(spec_path, known);
  const YAML::Node root = YAML::Load(full.text);
  // The hardware settings are power limits x clocks, in that nesting (as the spec expands them).
  const YAML::Node hw = root["hardware"];
  const std::size_t clocks = hw && hw["locked_clock_mhz"] ? hw["locked_clock_mhz"].size() : 1;

  std::vector<SpecCandidate> out;
  for (std::size_t mi = 0; mi < full.models.size(); ++mi) {
    for (std::size_t qi = 0; qi < full.methods.size(); ++qi) {
      for (std::size_t ti = 0; ti < full.tp.size(); ++ti) {
        for (std::size_t hi = 0; hi < full.hardware.size(); ++hi) {
          YAML::Node reduced = YAML::Clone(root);
          reduced["models"] = one_item_list(root["models"][mi]);
          reduced["methods"] = one_item_list(root["methods"][qi]);
          if (root["parallelism"]) reduced["parallelism"]["tp"] = one_item_list(root["parallelism"]["tp"][ti]);
          if (hw) {
            if (hw["power_limit_w"]) reduced["hardware"]["power_limit_w"] = one_item_list(hw["power_limit_w"][hi / clocks]);
            if (hw["locked_clock_mhz"])
              reduced["hardware"]["locked_clock_mhz"] = one_item_list(hw["locked_clock_mhz"][hi % clocks]);
          }
          if (reduced["repeats"]) reduced.remove("repeats");
          YAML::Emitter emit;
          emit << reduced;
          SpecCandidate c;
          c.spec_text = std::string(emit.c_str()) + "\n";
          // The reduced spec expands to exactly this configuration, with the id the full spec gives it.
          const auto parsed = spec::parse_study_spec_text(c.spec_text, spec_path, known);
          const auto runs = spec::expand_runs(parsed);
          if (runs.size() != 1) throw Error(fmt::format("{}: reducing the spec to one configuration gave {}", spec_path, runs.size()));
          const auto& run = runs[0];
          c.run_id = run.id;
          c.factors = {run.model.name, run.method.label(), std::to_string(run.tp), run.hardware.label()};
          c.label = fmt::format("{} / {}{}{}", run.model.name, run.method.label(),
                                run.tp != 1 ? fmt::format(" / tp={}", run.tp) : "",
                                run.hardware.label() == "default" ? "" : " / " + run.hardware.label());
          out.push_back(std::move(c));
        }
      }
    }
  }
  // Cross-check against the full expansion: every candidate is one of the full spec's runs.
  const auto all = spec::expand_runs(full);
  for (const auto& c : out) {
    bool found = false;
    for (const auto& r : all) found = found || r.id == c.run_id;
    if (!found) throw Error(fmt::format("{}: configuration {} does not keep its run id when measured alone", spec_path, c.label));
  }
  return out;
}

}  // namespace qmeter::plan
