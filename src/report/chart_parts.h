#pragma once
// The chart groups of each page section (chart_load.cpp, chart_quality.cpp).
#include "chart_specs.h"

namespace qmeter::report::detail {

void add_latency_charts(const ReportModel& m, Section& s);
void add_throughput_charts(const ReportModel& m, Section& s);
void add_energy_charts(const ReportModel& m, Section& s);
void add_quality_charts(const ReportModel& m, Section& s);
void add_pareto_chart(const ReportModel& m, Section& s);

}  // namespace qmeter::report::detail
