// Inputs the study-spec fuzz target (fuzz/fuzz_study_spec.cpp) found, each a clear UsageError now.
#include <gtest/gtest.h>

#include "qmeter/core/error.h"
#include "qmeter/spec/study_spec.h"

namespace qmeter::spec {
namespace {

// A byte that is not UTF-8 in a model path used to escape as nlohmann's type_error 316 from the
// run-id hash ("invalid UTF-8 byte at index 10: 0x9A"), naming neither the field nor the spec.
TEST(SpecFuzzRegressions, InvalidUtf8InAFieldIsAUsageErrorNamingIt) {
  const std::string text = "study: x\nmodels: [\"synthetic:\x9Atiny\"]\nmethods: [fp32]\nworkloads: [{rates: [1]}]\n";
  try {
    (void)expand_runs(parse_study_spec_text(text, "s.yaml"));
    FAIL() << "a spec with invalid UTF-8 expanded";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("model."), std::string::npos) << msg;  // model.name (derived from the path) or model.path
    EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
  }
}

TEST(SpecFuzzRegressions, InvalidUtf8InAnOptionKeyIsAUsageErrorNamingIt) {
  const std::string text = "study: x\nmodels: [\"synthetic:tiny\"]\nmethods: [{name: fp32, \"k\xFF\": 1}]\nworkloads: [{rates: [1]}]\n";
  try {
    (void)expand_runs(parse_study_spec_text(text, "s.yaml"));
    FAIL() << "a spec with invalid UTF-8 expanded";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("method.options"), std::string::npos) << e.what();
  }
}

// A backend given as a scalar ("backend: stud") used to escape as yaml-cpp's BadSubscript from the
// model-path check, which looked up backend.kind before the backend section was validated.
TEST(SpecFuzzRegressions, ScalarBackendIsAUsageErrorNamingTheSection) {
  const std::string text = "study: x\nmodels: [\"synthetic:tiny\"]\nmethods: [fp32]\nbackend: stud\n";
  try {
    (void)parse_study_spec_text(text, "s.yaml");
    FAIL() << "a scalar backend was accepted";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("s.yaml:4"), std::string::npos) << msg;
    EXPECT_NE(msg.find("backend"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected a mapping"), std::string::npos) << msg;
  }
}

// "parallelism: {}" used to escape as yaml-cpp's InvalidNode: the absent 'tp' was read as a list.
TEST(SpecFuzzRegressions, AnAbsentRequiredFieldIsAUsageErrorNamingIt) {
  const std::string text = "study: x\nmodels: [\"synthetic:tiny\"]\nmethods: [fp32]\nparallelism: {}\n";
  try {
    (void)parse_study_spec_text(text, "s.yaml");
    FAIL() << "a parallelism section without 'tp' was accepted";
  } catch (const UsageError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("s.yaml"), std::string::npos) << msg;
    EXPECT_NE(msg.find("parallelism.tp"), std::string::npos) << msg;
    EXPECT_NE(msg.find("missing"), std::string::npos) << msg;
  }
}

}  // namespace
}  // namespace qmeter::spec
