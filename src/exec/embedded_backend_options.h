#pragma once
// The embedded backend's `backend.options` (study spec), written once: their types, defaults,
// ranges and help. The spec parser checks them at parse time (known_names()).
#include <vector>

#include "qmeter/core/option_schema.h"

namespace qmeter::exec {

const std::vector<OptionSpec>& embedded_backend_option_schema();

}  // namespace qmeter::exec
