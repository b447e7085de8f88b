// Bits per weight and short labels of a study's configurations come from the quantization
// registry (stored with the run, computed on read for runs stored before that), not from a second
// reading of the options in analysis.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qmeter/analysis/study_view.h"
#include "qmeter/quant/method_options.h"
#include "test_support.h"

using namespace qmeter;
using Options = std::map<std::string, std::string>;

namespace {

std::string config_json(const std::string& name, const Options& options) {
  return nlohmann::json{{"method", {{"name", name}, {"options", options}}}, {"tp", 1}, {"hardware", nlohmann::json::object()}}
      .dump();
}

// A run as `qmeter run` stores it: the method's name and options in the config JSON and the
// registry's properties beside it.
void put_run(store::Store& db, const std::string& id, const std::string& name, const Options& options) {
  store::RunRow run;
  run.id = id;
  run.study = "s";
  run.model = "m";
  run.method = name;
  run.config_json = config_json(name, options);
  run.properties_json = quant::configuration_properties(name, options).to_json();
  db.begin_run(run);
  db.finish_run(id, store::RunStatus::kComplete);
}

const analysis::ConfigView& config(const analysis::StudyView& v, const std::string& run_id) {
  for (const auto& c : v.configs)
    if (c.run_id == run_id) return c;
  throw std::runtime_error("no run " + run_id);
}

// The stored kQ4Group layout: 4-bit codes, an f16 scale and a u8 zero point per group.
constexpr double kGptq4g64 = 4 + 24.0 / 64;
constexpr double kGptq4g128 = 4 + 24.0 / 128;
// NF4: an f32 absmax per 64 weights; double-quantized: a u8 code per 64 and an f32 per 256 blocks.
constexpr double kNf4 = 4 + 32.0 / 64;
constexpr double kNf4Double = 4 + 8.0 / 64 + 32.0 / (64 * 256);

}  // namespace

// Both spellings of a key are one option: `group-size: 64` is groups of 64 (it was read as the
// default 128), and `double_quant: false` is no double quantization (the key's presence was).
TEST(ConfigurationProperties, EitherSpellingAndTheValueOfABooleanCount) {
  auto dir = qmeter::testing::test_output_dir("configuration_properties");
  auto db = store::Store::open(dir + "/v.db");
  db->put_study("s", "spec");
  put_run(*db, "dash", "gptq", {{"bits", "4"}, {"group-size", "64"}});
  put_run(*db, "underscore", "gptq", {{"bits", "4"}, {"group_size", "64"}});
  put_run(*db, "default", "gptq", {{"bits", "4"}});
  put_run(*db, "nf4", "nf4", {});
  put_run(*db, "nf4-false", "nf4", {{"double_quant", "false"}});
  put_run(*db, "nf4-true", "nf4", {{"double-quant", "true"}});
  const auto v = analysis::load_study(*db, "s");
  EXPECT_DOUBLE_EQ(config(v, "dash").bits_per_weight, kGptq4g64);
  EXPECT_DOUBLE_EQ(config(v, "underscore").bits_per_weight, kGptq4g64);
  EXPECT_DOUBLE_EQ(config(v, "default").bits_per_weight, kGptq4g128);
  EXPECT_DOUBLE_EQ(config(v, "nf4").bits_per_weight, kNf4);
  EXPECT_DOUBLE_EQ(config(v, "nf4-false").bits_per_weight, kNf4);
  EXPECT_DOUBLE_EQ(config(v, "nf4-true").bits_per_weight, kNf4Double);
  EXPECT_EQ(config(v, "dash").method_label, "gptq-w4g64");
  EXPECT_EQ(config(v, "default").method_label, "gptq-w4g128");
  EXPECT_EQ(config(v, "nf4-false").method_label, "nf4");
  EXPECT_EQ(config(v, "nf4-true").method_label, "nf4-dq");
}

// A database written before the properties were stored (schema 3) is migrated when opened; its
// runs get the registry's figures computed on read, the same as a new run stores.
TEST(ConfigurationProperties, RunsOfAnOlderDatabaseAreComputedOnRead) {
  auto dir = qmeter::testing::test_output_dir("configuration_properties_old_db");
  const std::string path = dir + "/old.db";
  store::Store::open(path);
  // Back to the schema-3 layout, with a run row as that version wrote it.
  const std::string sql =
      "ALTER TABLE runs DROP COLUMN properties_json; PRAGMA user_version=3; "
      "INSERT INTO studies VALUES('s', 'spec', 0); "
      "INSERT INTO runs(id, study, model, method, config_json, status) VALUES('old', 's', 'm', "
      "'w4a16-rtn(group-size=64)', '" + config_json("w4a16-rtn", {{"group-size", "64"}}) + "', 'complete');";
  std::ofstream(dir + "/downgrade.sql") << sql;
  ASSERT_EQ(std::system(("sqlite3 '" + path + "' < '" + dir + "/downgrade.sql'").c_str()), 0);
  auto db = store::Store::open(path);
  EXPECT_EQ(db->schema_version(), store::kSchemaVersion);
  ASSERT_EQ(db->runs("s").size(), 1u);
  EXPECT_EQ(db->runs("s")[0].properties_json, "");
  const auto v = analysis::load_study(*db, "s");
  EXPECT_DOUBLE_EQ(v.configs[0].bits_per_weight, kGptq4g64);
  EXPECT_EQ(v.configs[0].method_label, "rtn-w4g64");
  EXPECT_EQ(v.configs[0].label(), "m / rtn-w4g64");
  EXPECT_EQ(v.configs[0].method, "w4a16-rtn(group-size=64)");  // the full form stays for tooltips
}

// What a run stores is what analysis reads, even where the registry would now say otherwise
// (a later qmeter that changed a format keeps an old run's figure).
TEST(ConfigurationProperties, TheStoredFigureIsTheOneRead) {
  auto dir = qmeter::testing::test_output_dir("configuration_properties_stored");
  auto db = store::Store::open(dir + "/v.db");
  db->put_study("s", "spec");
  store::RunRow run;
  run.id = "r";
  run.study = "s";
  run.model = "m";
  run.method = "awq";
  run.config_json = config_json("awq", {});
  run.properties_json = R"({"bits_per_weight": 4.25, "label": "awq-old"})";
  db->begin_run(run);
  const auto v = analysis::load_study(*db, "s");
  EXPECT_DOUBLE_EQ(v.configs[0].bits_per_weight, 4.25);
  EXPECT_EQ(v.configs[0].method_label, "awq-old");
}

// Labels are unique within a study: two gptq runs that differ only in their calibration file
// show the file's name; a method the registry does not know keeps its own name.
TEST(ConfigurationProperties, LabelsAreUniqueWithinAStudy) {
  auto dir = qmeter::testing::test_output_dir("configuration_properties_unique");
  auto db = store::Store::open(dir + "/v.db");
  db->put_study("s", "spec");
  put_run(*db, "kjv", "gptq", {{"bits", "4"}, {"calib", "/long/path/kjv.txt"}});
  put_run(*db, "wiki", "gptq", {{"bits", "4"}, {"calib", "/other/path/wiki.txt"}});
  put_run(*db, "plain", "gptq", {{"bits", "3"}});
  put_run(*db, "server", "awq_marlin", {{"quantization", "awq_marlin"}});
  const auto v = analysis::load_study(*db, "s");
  EXPECT_EQ(config(v, "kjv").method_label, "gptq-w4g128 calib=kjv.txt");
  EXPECT_EQ(config(v, "wiki").method_label, "gptq-w4g128 calib=wiki.txt");
  EXPECT_EQ(config(v, "plain").method_label, "gptq-w3g128");
  EXPECT_EQ(config(v, "server").method_label, "awq_marlin");
  EXPECT_EQ(config(v, "server").bits_per_weight, -1);
}
