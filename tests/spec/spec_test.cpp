#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <set>

#include "qmeter/core/error.h"
#include "qmeter/spec/study_spec.h"

using namespace qmeter::spec;

namespace {

const char* kGood = R"(study: {name: demo}
models:
  - {name: tiny, path: "synthetic:tiny"}
methods:
  - fp32
  - {name: w4a16-rtn, group_size: 64}
parallelism: {tp: [1, 2]}
workloads:
  - name: chat
    dataset: random
    input_len: 32
    output_len: 16
    num_prompts: 20
    rates: [1, 2, inf]
  - name: closed
    concurrencies: [4]
slos:
  interactive: {ttft_ms: 200, tpot_ms: 50}
energy: {source: model, interval_ms: 20}
repeats: 2
seed: 7
)";

KnownNames known() { return {{"fp32", "bf16", "w4a16-rtn", "gptq"}, {"perplexity", "mc", "gsm8k", "kl"}}; }

std::string error_of(const std::string& text) {
  try {
    parse_study_spec_text(text, "s.yaml", known());
  } catch (const qmeter::UsageError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Spec, ParsesAndExpandsTheMatrix) {
  auto s = parse_study_spec_text(kGood, "s.yaml", known());
  EXPECT_EQ(s.name, "demo");
  ASSERT_EQ(s.methods.size(), 2u);
  EXPECT_EQ(s.methods[1].label(), "w4a16-rtn(group_size=64)");
  ASSERT_EQ(s.workloads.size(), 2u);
  ASSERT_EQ(s.workloads[0].points.size(), 3u);
  EXPECT_TRUE(std::isinf(s.workloads[0].points[2].value));
  EXPECT_EQ(s.workloads[1].points[0].kind, "concurrency");
  EXPECT_EQ(s.slos[0].ttft_ms, 200);
  EXPECT_EQ(s.slos[0].e2e_ms, -1);
  auto runs = expand_runs(s);
  ASSERT_EQ(runs.size(), 1u * 2 * 2 * 1 * 2);  // models x methods x tp x hardware x repeats
  std::set<std::string> ids;
  for (const auto& r : runs) ids.insert(r.id);
  EXPECT_EQ(ids.size(), runs.size());
  // Stable: the same spec gives the same ids; any change to a result-relevant field changes them.
  auto again = expand_runs(parse_study_spec_text(kGood, "other-name.yaml", known()));
  for (std::size_t i = 0; i < runs.size(); ++i) EXPECT_EQ(runs[i].id, again[i].id);
  std::string changed = kGood;
  changed.replace(changed.find("seed: 7"), 7, "seed: 8");
  auto other = expand_runs(parse_study_spec_text(changed, "s.yaml", known()));
  EXPECT_NE(other[0].id, runs[0].id);
  EXPECT_EQ(runs[0].id.size(), 16u);
}

TEST(Spec, ErrorsNameLineAndField) {
  EXPECT_NE(error_of("study: {name: x\nmodels: [").find("s.yaml:"), std::string::npos);
  EXPECT_NE(error_of("study: {name: x\nmodels: [").find("invalid YAML"), std::string::npos);

  std::string bad_method = kGood;
  bad_method.replace(bad_method.find("  - fp32"), 8, "  - fp33");
  EXPECT_NE(error_of(bad_method).find("s.yaml:5:5: methods[0]: unknown method 'fp33'"), std::string::npos)
      << error_of(bad_method);

  std::string bad_type = kGood;
  bad_type.replace(bad_type.find("num_prompts: 20"), 15, "num_prompts: lots");
  EXPECT_NE(error_of(bad_type).find("s.yaml:13:18: workloads[0].num_prompts: expected a number, got 'lots'"),
            std::string::npos)
      << error_of(bad_type);

  std::string typo = kGood;
  typo.replace(typo.find("repeats: 2"), 10, "repeat: 2");
  EXPECT_NE(error_of(typo).find("s.yaml:20:1: repeat: unknown field"), std::string::npos) << error_of(typo);

  std::string missing_file = kGood;
  missing_file.replace(missing_file.find("dataset: random"), 15, "dataset: sharegpt:/no/such/file.json");
  EXPECT_NE(error_of(missing_file).find("workloads[0].dataset: file not found: /no/such/file.json"), std::string::npos)
      << error_of(missing_file);

  EXPECT_NE(error_of("study: x\nmodels: [synthetic:tiny]\nmethods: [fp32]\nworkloads: [{rates: [-1]}]\n")
                .find("s.yaml:4:22: workloads[0].rates[0]: a load point must be > 0"),
            std::string::npos);
  EXPECT_NE(error_of("study: x\nmodels: [synthetic:tiny]\nmethods: [fp32]\nworkloads: [{name: w}]\n").find("needs load points"),
            std::string::npos);
  EXPECT_NE(error_of("study: x\nmodels: [synthetic:tiny]\nmethods: [fp32]\nworkloads: [{search: {slo: fast}}]\n")
                .find("no SLO class named 'fast'"),
            std::string::npos);
  EXPECT_NE(error_of("study: x\nmodels: [/nonexistent/model]\nmethods: [fp32]\nworkloads: [{rates: [1]}]\n")
                .find("model path not found: /nonexistent/model"),
            std::string::npos);
  EXPECT_NE(error_of("- a\n- b\n").find("must be a mapping"), std::string::npos);
}

TEST(Spec, ExpandsEnvironmentVariables) {
  setenv("QMETER_TEST_MODEL_SHAPE", "tiny", 1);
  auto s = parse_study_spec_text(
      "study: x\nmodels: [\"synthetic:${QMETER_TEST_MODEL_SHAPE}\"]\nmethods: [fp32]\nworkloads: [{rates: [1]}]\n",
      "s.yaml", known());
  EXPECT_EQ(s.models[0].path, "synthetic:tiny");
  unsetenv("QMETER_TEST_UNSET_VAR");
  EXPECT_NE(error_of("study: x\nmodels: [\"synthetic:${QMETER_TEST_UNSET_VAR}\"]\nmethods: [fp32]\nworkloads: [{rates: [1]}]\n")
                .find("environment variable QMETER_TEST_UNSET_VAR is not set"),
            std::string::npos);
  auto d = parse_study_spec_text(
      "study: x\nmodels: [\"synthetic:${QMETER_TEST_UNSET_VAR:-small}\"]\nmethods: [fp32]\nworkloads: [{rates: [1]}]\n",
      "s.yaml", known());
  EXPECT_EQ(d.models[0].path, "synthetic:small");
}

TEST(Spec, TemplateExpansionIsExactAndRefusesUnknownPlaceholders) {
  std::map<std::string, std::string> vars{{"model", "/m/a b"}, {"port", "8000"}, {"tp", "2"}};
  EXPECT_EQ(expand_template("--model={model}", vars), "--model=/m/a b");
  EXPECT_EQ(expand_template("$(rm -rf /) 'q' \"{port}\"", vars), "$(rm -rf /) 'q' \"8000\"");
  EXPECT_EQ(expand_template("{\"json\": 1}", vars), "{\"json\": 1}");  // not a placeholder: left alone
  EXPECT_THROW(expand_template("{modle}", vars), qmeter::UsageError);
}

TEST(Spec, SlurmPartitionsAreAHardwareFactorAndTheExecutorSectionChangesNoRunId) {
  const auto base = expand_runs(parse_study_spec_text(kGood, "s.yaml", known()));
  std::string with_exec = std::string(kGood) +
                          "executor:\n  slurm: {partition: gpu, account: lab, time: '01:00:00', max_parallel: 4,\n"
                          "          gpus_per_run: 2, cpus_per_run: 8, mem: 64G, sbatch_args: [--qos=high]}\n";
  const auto s = parse_study_spec_text(with_exec, "s.yaml", known());
  EXPECT_EQ(s.slurm.partition, "gpu");
  EXPECT_EQ(s.slurm.account, "lab");
  EXPECT_EQ(s.slurm.time, "01:00:00");
  EXPECT_EQ(s.slurm.max_parallel, 4);
  EXPECT_EQ(s.slurm.gpus_per_run, 2);
  EXPECT_EQ(s.slurm.cpus_per_run, 8);
  EXPECT_EQ(s.slurm.mem, "64G");
  EXPECT_EQ(s.slurm.sbatch_args, std::vector<std::string>{"--qos=high"});
  // Where a run executes does not change what it measures: same ids.
  const auto same = expand_runs(s);
  ASSERT_EQ(same.size(), base.size());
  for (std::size_t i = 0; i < base.size(); ++i) EXPECT_EQ(same[i].id, base[i].id);

  std::string with_parts = std::string(kGood) + "hardware: {partition: [a100, h100]}\n";
  const auto parts = expand_runs(parse_study_spec_text(with_parts, "s.yaml", known()));
  ASSERT_EQ(parts.size(), base.size() * 2);
  std::set<std::string> ids, labels;
  for (const auto& r : parts) {
    ids.insert(r.id);
    labels.insert(r.hardware.label());
  }
  EXPECT_EQ(ids.size(), parts.size());
  EXPECT_EQ(labels, (std::set<std::string>{"a100", "h100"}));
  for (const auto& r : parts) EXPECT_EQ(base.end(), std::find_if(base.begin(), base.end(), [&](const RunConfig& b) { return b.id == r.id; }));

  EXPECT_NE(error_of(std::string(kGood) + "executor:\n  slurm: {max_parallel: -1}\n").find("s.yaml:23:25: executor.slurm.max_parallel: must be >= 0"), std::string::npos)
      << error_of(std::string(kGood) + "executor:\n  slurm: {max_parallel: -1}\n");
  EXPECT_NE(error_of(std::string(kGood) + "executor:\n  slurm: {partitoin: gpu}\n").find("executor.slurm.partitoin: unknown field"),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kGood) + "executor:\n  lsf: {}\n").find("executor.lsf: unknown field"), std::string::npos);
  EXPECT_NE(error_of(std::string(kGood) + "hardware: {partition: ['']}\n").find("hardware.partition[0]"), std::string::npos);
}

TEST(Spec, WorkloadConnectionLimitAndClientBoundThreshold) {
  const auto base = expand_runs(parse_study_spec_text(kGood, "s.yaml", known()));
  std::string with = kGood;
  with.replace(with.find("    rates: [1, 2, inf]"), 22, "    rates: [1, 2, inf]\n    max_connections: 64\n    client_bound_threshold_ms: 5");
  const auto s = parse_study_spec_text(with, "s.yaml", known());
  EXPECT_EQ(s.workloads[0].max_connections, 64);
  EXPECT_DOUBLE_EQ(s.workloads[0].client_bound_threshold_ms, 5);
  EXPECT_EQ(s.workloads[1].max_connections, 0);
  EXPECT_NE(expand_runs(s)[0].id, base[0].id);  // they change what is measured
  std::string bad = kGood;
  bad.replace(bad.find("    rates: [1, 2, inf]"), 22, "    rates: [1, 2, inf]\n    max_connections: 0");
  EXPECT_NE(error_of(bad).find("workloads[0].max_connections: must be >= 1"), std::string::npos) << error_of(bad);
}
