#pragma once
// The configurations of a study spec as `qmeter tune` measures them one at a time: each one's run
// id (the same id `qmeter run` gives it, so results land in the same rows), its factor levels, and
// a copy of the spec reduced to that one configuration (one model, method, tp and hardware
// setting, repeats 1), which `qmeter run`'s executor can measure on its own.
#include <string>
#include <vector>

#include "qmeter/spec/study_spec.h"

namespace qmeter::plan {

struct SpecCandidate {
  std::string run_id;
  std::string label;                 // "model / method / tp=N / hardware"
  std::vector<std::string> factors;  // model, method label, tp, hardware label
  std::string spec_text;             // the spec reduced to this configuration
};

// Throws UsageError (file, line, field) for an invalid spec.
std::vector<SpecCandidate> spec_candidates(const std::string& spec_path, const spec::KnownNames& known = {});

}  // namespace qmeter::plan
