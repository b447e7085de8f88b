#pragma once
// The "sessions" object of the results JSON (outputs.cpp), from session_metrics.cpp.
#include <nlohmann/json.hpp>

#include "qmeter/loadgen/session_metrics.h"

namespace qmeter::loadgen {

nlohmann::ordered_json session_metrics_json(const SessionMetrics& m);

}  // namespace qmeter::loadgen
