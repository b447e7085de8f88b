// Dataset files the fuzz target (fuzz/fuzz_dataset.cpp) found: each is now a UsageError naming
// the file, line and field, not undefined behaviour.
#include <gtest/gtest.h>

#include "qmeter/workload/schedule.h"
#include "workload_test_util.h"

using namespace qmeter::workload;

namespace {

DatasetOptions azure_trace(const std::string& test, const std::string& rows) {
  const auto dir = qmeter::testing::test_output_dir("fuzz_regressions_" + test);
  DatasetOptions d;
  d.spec = "azure:" + qmeter::workload::testing::write_file(dir, "trace.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n" + rows);
  d.num_prompts = 1;
  return d;
}

std::string azure_error(const std::string& test, const std::string& rows) {
  const DatasetOptions d = azure_trace(test, rows);
  return qmeter::workload::testing::usage_error([&] { build_schedule(d, ArrivalOptions{}); });
}

// Year 1011 is -30,235,527,900 s from 1970: times 1e9 overflowed int64 (signed overflow, UB).
TEST(DatasetFuzzRegressions, TimestampsOutsideTheNanosecondRangeAreRefused) {
  EXPECT_NE(azure_error("year", "1011-11-16 18:15:46.6805900,374,44\n").find("line 2: field 'TIMESTAMP'"), std::string::npos);
  EXPECT_NE(azure_error("seconds", "99999999999.5,374,44\n").find("line 2: field 'TIMESTAMP'"), std::string::npos);
  // The edges of the range still parse.
  EXPECT_NO_THROW(build_schedule(azure_trace("edge", "1970-01-01 00:00:00,1,1\n2261-12-31 23:59:59.5,1,1\n"), ArrivalOptions{}));
  EXPECT_NO_THROW(build_schedule(azure_trace("edge_s", "0.5,1,1\n8999999999,1,1\n"), ArrivalOptions{}));
}

}  // namespace
