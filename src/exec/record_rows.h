#pragma once
// Conversions from the load generator's results to the store's rows.
#include <vector>

#include "qmeter/loadgen/loadgen.h"
#include "qmeter/store/rows.h"

namespace qmeter::exec {

std::vector<store::RequestRow> request_rows(const loadgen::LoadgenResult& result);
store::LoadPointRow load_point_row(const loadgen::LoadgenResult& result, const loadgen::MetricsOptions& metrics);
// Host and software descriptions stored with every run.
std::string host_json();
std::string versions_json();

}  // namespace qmeter::exec
