// The YAML study spec of `qmeter run` (src/spec/study_spec.cpp, expand.cpp): parse, validate and
// expand into runs. ${VAR} expansion reads the environment; the fuzzer's inputs may name any
// variable, which is fine (an unset one is a clear error).
#include "fuzz_support.h"
#include "qmeter/spec/study_spec.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qmeter;
  const std::string text(fuzz::as_text(data, size));
  fuzz::expect_only_qmeter_errors([&] {
    const auto spec = spec::parse_study_spec_text(text, "fuzz.yaml");
    (void)spec::expand_runs(spec);
  });
  return 0;
}
