#pragma once
// The options of a study spec's quality entry (`quality: [{task: ..., limit: 200, ...}]`), written
// once: their types, defaults, ranges and help. The spec parser checks them at parse time (with
// file:line:column); the quality phase reads them into EvalOptions.
#include <vector>

#include "qmeter/core/option_schema.h"

namespace qmeter::quality {

const std::vector<OptionSpec>& task_option_schema();

}  // namespace qmeter::quality
