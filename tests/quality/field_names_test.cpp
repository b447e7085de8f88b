// The task library names an option as its caller does: the CLI's flag by default, a spec's field
// when the quality phase of a study gives it that name.
#include <gtest/gtest.h>

#include "qmeter/core/error.h"
#include "qmeter/quality/eval.h"
#include "qmeter/quality/scorer.h"

using namespace qmeter;

namespace {

std::string concurrency_error(const quality::EvalOptions& o) {
  // Nothing listens there: the option is checked before any request.
  auto scorer = quality::make_server_scorer({"http://127.0.0.1:9", "m", "", 1});
  try {
    quality::run_task(quality::parse_task_spec("perplexity:/nonexistent.txt"), *scorer, o);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(QualityFieldNames, TheCliFlagByDefaultTheSpecFieldWhenGiven) {
  quality::EvalOptions o;
  o.concurrency = 0;
  EXPECT_EQ(concurrency_error(o), "--concurrency: must be >= 1");
  o.field_names = FieldNames::spec("quality[2]");
  EXPECT_EQ(concurrency_error(o), "quality[2].concurrency: must be >= 1");
}
