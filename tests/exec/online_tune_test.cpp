// exec::online_tune (the library behind `qmeter tune`) in-process, on a results database whose rows
// are known: each configuration's p99 TPOT and perplexity are chosen by hand, so the values read,
// the screening order, the directions resolved from the study and the front are known exactly.
// Configurations missing from the database are measured through run_study, here against a backend
// that cannot start, so a failed measurement is known too.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "plan/study_builder.h"
#include "qmeter/core/error.h"
#include "qmeter/exec/online_tune.h"
#include "qmeter/exec/study_runner.h"
#include "qmeter/plan/spec_candidates.h"
#include "qmeter/store/store.h"
#include "test_support.h"

using namespace qmeter;

namespace {

// Two models x three methods. The backend cannot start: whatever the tuner has to measure fails.
std::string spec_text(const std::string& name) {
  return "study: {name: " + name + "}\n"
         "models:\n  - {name: m1, path: \"synthetic:tiny\"}\n  - {name: m2, path: \"synthetic:tiny\"}\n"
         "methods: [{name: a}, {name: b}, {name: c}]\n"
         "backend:\n  kind: command\n  argv: [/nonexistent/qmeter-tune-test-server, \"{port}\"]\n"
         "  startup_timeout_s: 5\n"
         "energy: {source: none}\n"
         "workloads:\n  - {name: w, input_len: 8, output_len: 6, num_prompts: 12, rates: [10, 30]}\n";
}

// p99 TPOT (ms) at 20 req/s = model factor x method factor; perplexity = model x method factor.
// In (tpot, perplexity), both minimized: m1/a (10, 8) and m2/a (20, 4) form the front; m1/b
// (20, 8.8) is dominated by m2/a, every other one by m1/a or m2/a.
const std::map<std::string, double> kTpotModel = {{"m1", 10}, {"m2", 20}};
const std::map<std::string, double> kTpotMethod = {{"a", 1}, {"b", 2}, {"c", 4}};
const std::map<std::string, double> kPplModel = {{"m1", 8}, {"m2", 4}};
const std::map<std::string, double> kPplMethod = {{"a", 1}, {"b", 1.1}, {"c", 1.5}};

struct Fixture {
  std::string dir, spec, db;
  std::vector<plan::SpecCandidate> candidates;
  std::map<std::string, std::string> label_of;  // "m1/a" -> the tuner's label
};

Fixture make_fixture(const std::string& test, const std::string& study) {
  Fixture f;
  f.dir = qmeter::testing::test_output_dir(test);
  f.spec = f.dir + "/s.yaml";
  f.db = f.dir + "/r.db";
  std::ofstream(f.spec) << spec_text(study);
  f.candidates = plan::spec_candidates(f.spec, exec::known_names());
  for (const auto& c : f.candidates) f.label_of[c.factors[0] + "/" + c.factors[1]] = c.label;
  return f;
}

// Stores configuration model/method as complete, with load points at 10 and 30 req/s whose TPOT
// interpolates to the known value at 20 req/s (points = false: complete with no load points).
void store_known(qmeter::testing::StudyBuilder& b, const Fixture& f, const std::string& model, const std::string& method,
                 bool points = true) {
  for (const auto& c : f.candidates) {
    if (c.factors[0] != model || c.factors[1] != method) continue;
    auto run = qmeter::testing::make_run(c.run_id, method);
    run.model = model;
    const double tpot = kTpotModel.at(model) * kTpotMethod.at(method);
    if (points) {
      for (double rate : {10.0, 30.0}) {
        auto p = qmeter::testing::make_point(rate, {});
        p.workload = "w";
        p.metrics["p99_tpot_ms"] = tpot * rate / 20;  // 0.5x at 10 req/s, 1.5x at 30 req/s
        run.points.push_back(p);
      }
    }
    run.quality["perplexity"] = kPplModel.at(model) * kPplMethod.at(method);
    b.add(run);
    return;
  }
  FAIL() << "no candidate " << model << "/" << method;
}

exec::OnlineTuneOptions options(const Fixture& f, std::vector<std::string> objectives, int budget) {
  exec::OnlineTuneOptions o;
  o.spec_path = f.spec;
  o.db_path = f.db;
  o.out_dir = f.dir + "/out";
  o.objectives = std::move(objectives);
  o.budget = budget;
  o.at_rate = 20;
  o.progress = false;
  return o;
}

}  // namespace

TEST(OnlineTune, ReadsKnownRowsScreensEveryLevelAndFindsTheFront) {
  auto f = make_fixture("online_tune_known", "known");
  ASSERT_EQ(f.candidates.size(), 6u);
  {
    qmeter::testing::StudyBuilder b(f.db, "known");
    for (const char* m : {"m1", "m2"})
      for (const char* q : {"a", "b", "c"}) store_known(b, f, m, q);
  }
  const auto r = exec::online_tune(options(f, {"p99_tpot", "perplexity"}, 6));
  EXPECT_EQ(r.study, "known");
  EXPECT_EQ(r.configurations, 6u);
  // Directions come from what the study stores (plan::resolve_quantity): a latency and a
  // perplexity, both minimized.
  ASSERT_EQ(r.objectives.size(), 2u);
  EXPECT_EQ(r.objectives[0].kind, plan::Quantity::Kind::kPointMetric);
  EXPECT_EQ(r.objectives[0].key, "p99_tpot_ms");
  EXPECT_FALSE(r.objectives[0].maximize);
  EXPECT_EQ(r.objectives[1].kind, plan::Quantity::Kind::kQuality);
  EXPECT_FALSE(r.objectives[1].maximize);

  // Screening covers every unseen level first, greedily, ties to the lowest index: m1/a (2 new
  // levels), m2/b (2 new: m2, b), then m1/c (the last, c); the other three are model steps.
  ASSERT_EQ(r.steps.size(), 6u);
  const std::vector<std::string> screened = {f.label_of["m1/a"], f.label_of["m2/b"], f.label_of["m1/c"]};
  for (std::size_t i = 0; i < r.steps.size(); ++i) {
    const auto& st = r.steps[i];
    EXPECT_EQ(st.screening, i < 3) << i;
    if (i < 3) EXPECT_EQ(st.configuration, screened[i]);
    EXPECT_TRUE(st.reused) << "every configuration is complete in the database";
    EXPECT_EQ(st.seconds, 0);
    ASSERT_TRUE(st.measured) << st.failure;
    // The values read back are the stored ones: TPOT interpolated to 20 req/s, perplexity as stored.
    const auto& key = [&] {
      for (const auto& [k, label] : f.label_of)
        if (label == st.configuration) return k;
      return std::string();
    }();
    const std::string model = key.substr(0, 2), method = key.substr(3);
    EXPECT_DOUBLE_EQ(st.values[0], kTpotModel.at(model) * kTpotMethod.at(method)) << key;
    EXPECT_DOUBLE_EQ(st.values[1], kPplModel.at(model) * kPplMethod.at(method)) << key;
  }
  // The front in spec order: m1/a before m2/a.
  EXPECT_EQ(r.front, (std::vector<std::string>{f.label_of["m1/a"], f.label_of["m2/a"]}));
  // Nothing was measured, so nothing was written besides the study's full spec.
  auto db = store::Store::open(f.db);
  EXPECT_EQ(db->runs("known").size(), 6u);
  EXPECT_NE(db->study_spec("known").find("nonexistent"), std::string::npos) << "the whole spec is stored";

  // The formatters say the same.
  const std::string table = exec::online_tune_table(r);
  EXPECT_NE(table.find("measured 6 of 6 configurations (budget 6)"), std::string::npos) << table;
  EXPECT_NE(table.find("p99_tpot (min)"), std::string::npos) << table;
  EXPECT_NE(table.find("perplexity (min)"), std::string::npos) << table;
  EXPECT_NE(table.find("(already in the database)"), std::string::npos) << table;
  EXPECT_NE(table.find("Pareto front of the measured configurations:\n  " + f.label_of["m1/a"] + "\n  " +
                       f.label_of["m2/a"] + "\n"),
            std::string::npos)
      << table;
  const auto j = nlohmann::json::parse(exec::online_tune_json(r));
  EXPECT_EQ(j["tuner"], "online");
  EXPECT_EQ(j["measured"], 6);
  EXPECT_EQ(j["objectives"][0], (nlohmann::json{{"name", "p99_tpot"}, {"maximize", false}}));
  EXPECT_EQ(j["steps"][0]["configuration"], f.label_of["m1/a"]);
  EXPECT_EQ(j["steps"][0]["chosen_by"], "screening");
  EXPECT_EQ(j["steps"][3]["chosen_by"], "model");
  EXPECT_DOUBLE_EQ(j["steps"][0]["values"]["p99_tpot"].get<double>(), 10);
  EXPECT_DOUBLE_EQ(j["steps"][0]["values"]["perplexity"].get<double>(), 8);
  EXPECT_EQ(j["pareto_front"], nlohmann::json({f.label_of["m1/a"], f.label_of["m2/a"]}));
}

TEST(OnlineTune, DirectionsComeFromTheStudyAndASuffixOverridesThem) {
  auto f = make_fixture("online_tune_directions", "dirs");
  // A stored quality result that is not a loss ("acc") is maximized; ":max" turns a latency round.
  // Budget 1: only m1/a, which is stored.
  {
    qmeter::testing::StudyBuilder b(f.db, "dirs");
    for (const auto& c : f.candidates)
      if (c.factors[0] == "m1" && c.factors[1] == "a") {
        auto run = qmeter::testing::make_run(c.run_id, "a");
        run.model = "m1";
        auto p = qmeter::testing::make_point(20, {});
        p.workload = "w";
        p.metrics["p99_tpot_ms"] = 7;
        run.points.push_back(p);
        run.quality["acc"] = 0.5;
        b.add(run);
      }
  }
  const auto r = exec::online_tune(options(f, {"p99_tpot:max", "acc"}, 1));
  ASSERT_EQ(r.steps.size(), 1u);
  ASSERT_TRUE(r.steps[0].measured) << r.steps[0].failure;
  EXPECT_EQ(r.steps[0].values, (std::vector<double>{7, 0.5}));
  ASSERT_EQ(r.objectives.size(), 2u);
  EXPECT_TRUE(r.objectives[0].maximize);
  EXPECT_EQ(r.objectives[0].name, "p99_tpot");
  EXPECT_EQ(r.objectives[1].kind, plan::Quantity::Kind::kQuality);
  EXPECT_TRUE(r.objectives[1].maximize);
  // A name the study does not store is refused, naming what it does store.
  try {
    exec::online_tune(options(f, {"p99_tpot", "bleu"}, 1));
    FAIL() << "bleu is not stored";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'bleu': study 'dirs' stores no such quantity"), std::string::npos) << e.what();
  }
}

TEST(OnlineTune, AFailedMeasurementAndAConfigurationWithoutPointsAreStepsThatFailed) {
  auto f = make_fixture("online_tune_failures", "fails");
  {
    qmeter::testing::StudyBuilder b(f.db, "fails");
    for (const char* m : {"m1", "m2"})
      for (const char* q : {"a", "b", "c"}) {
        if (std::string(m) == "m2" && std::string(q) == "b") continue;  // not stored: measured, and fails
        store_known(b, f, m, q, !(std::string(m) == "m1" && std::string(q) == "c"));  // m1/c: no points
      }
  }
  const auto r = exec::online_tune(options(f, {"p99_tpot", "perplexity"}, 6));
  ASSERT_EQ(r.steps.size(), 6u);
  int measured = 0;
  for (const auto& st : r.steps) {
    measured += st.measured;
    if (st.configuration == f.label_of["m2/b"]) {
      EXPECT_FALSE(st.measured);
      EXPECT_FALSE(st.reused);
      EXPECT_NE(st.failure.find("/nonexistent/qmeter-tune-test-server"), std::string::npos) << st.failure;
    } else if (st.configuration == f.label_of["m1/c"]) {
      EXPECT_FALSE(st.measured);
      EXPECT_TRUE(st.reused);
      EXPECT_EQ(st.failure, "no load points stored for this configuration");
    } else {
      EXPECT_TRUE(st.measured) << st.configuration << ": " << st.failure;
    }
  }
  EXPECT_EQ(measured, 4);
  EXPECT_EQ(r.front, (std::vector<std::string>{f.label_of["m1/a"], f.label_of["m2/a"]}));
  // The failed measurement is stored as `qmeter run` stores a failed run (a later run retries it).
  auto db = store::Store::open(f.db);
  std::string m2b_id;
  for (const auto& c : f.candidates)
    if (c.factors[0] == "m2" && c.factors[1] == "b") m2b_id = c.run_id;
  EXPECT_EQ(db->run_status(m2b_id), store::RunStatus::kFailed);
  EXPECT_NE(exec::online_tune_table(r).find("FAILED: "), std::string::npos);
}

TEST(OnlineTune, BadRequestsAreUsageErrorsBeforeAnythingIsMeasured) {
  auto f = make_fixture("online_tune_usage", "usage");
  auto o = options(f, {"p99_tpot", "perplexity"}, 0);
  EXPECT_THROW(exec::online_tune(o), UsageError);
  o = options(f, {"p99_tpot"}, 2);
  EXPECT_THROW(exec::online_tune(o), UsageError);
  o = options(f, {"p99_tpot", "perplexity"}, 1);
  o.spec_path = f.dir + "/missing.yaml";
  EXPECT_THROW(exec::online_tune(o), UsageError);
  // A load metric needs the rate to compare at (the stored study tells it is a load metric).
  {
    qmeter::testing::StudyBuilder b(f.db, "usage");
    store_known(b, f, "m1", "a");
  }
  o = options(f, {"p99_tpot", "perplexity"}, 1);
  o.at_rate = -1;
  try {
    exec::online_tune(o);
    FAIL() << "no --at-rate";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("--at-rate: 'p99_tpot' depends on the load"), std::string::npos) << e.what();
  }
}
