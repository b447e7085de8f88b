// Quality under load: the responses of a load run scored against the dataset's answers, by hand-
// made records (known scores) and end to end through `qmeter bench serve --score`.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "qmeter/core/process.h"
#include "qmeter/engine/model.h"
#include "qmeter/quality/under_load.h"
#include "qmeter/server/inference_server.h"
#include "test_support.h"

namespace qmeter::quality {
namespace {

workload::Schedule schedule_with(const std::vector<std::string>& references) {
  workload::Schedule s;
  for (std::size_t i = 0; i < references.size(); ++i) {
    workload::ScheduledRequest r;
    r.prompt.text = "Question: q" + std::to_string(i) + "\nAnswer:";
    r.prompt.reference = references[i];
    s.requests.push_back(r);
  }
  return s;
}

client::RequestRecord record(int index, const std::string& text, bool ok = true, bool warmup = false) {
  client::RequestRecord r;
  r.index = index;
  r.warmup = warmup;
  r.generated_text = text;
  if (!ok) r.error = client::ErrorKind::kTimeout;
  return r;
}

TEST(QualityUnderLoad, ScoresCompletedMeasuredResponsesOnly) {
  const auto schedule = schedule_with({"18", "7", "1,000", "3", "5"});
  LoadScoreObserver obs(schedule, "gsm8k");
  std::vector<client::RequestRecord> records = {
      record(0, " 9 * 2 = 18\n#### 18"),                        // strict and flexible right
      record(1, " It is 7.\nQuestion: and then 99 more? 99"),   // cut at "Question:": flexible 7 right, strict none
      record(2, " #### 1000"),                                   // both right (1,000 = 1000)
      record(3, " #### 4", /*ok=*/false),                        // failed: not scored, counted
      record(4, " #### 5", true, /*warmup=*/true),               // warmup: ignored
  };
  loadgen::ResultExtras extras;
  obs.on_run_stop(records, 0, 1, extras);
  const auto& r = obs.result();
  ASSERT_EQ(r.items.size(), 3u);
  EXPECT_DOUBLE_EQ(r.find("exact_match_strict")->value, 2.0 / 3);
  EXPECT_DOUBLE_EQ(r.find("exact_match_flexible")->value, 1.0);
  auto number = [&](const std::string& k) {
    for (const auto& [name, v] : extras.numbers)
      if (name == k) return v;
    return -1.0;
  };
  EXPECT_EQ(number("score_n"), 3);
  EXPECT_EQ(number("score_failed_requests"), 1);
  EXPECT_DOUBLE_EQ(number("exact_match_flexible"), 1.0);
  ASSERT_FALSE(extras.summary_lines.empty());
  EXPECT_NE(extras.summary_lines.back().find("quality under load"), std::string::npos);
  // A dataset without answers cannot be scored.
  EXPECT_THROW(LoadScoreObserver(schedule_with({""}), "gsm8k"), UsageError);
  EXPECT_THROW(LoadScoreObserver(schedule, "mc"), UsageError);
}

TEST(QualityUnderLoad, BenchServeScoreAddsAccuracyBesideLatency) {
  QMETER_REQUIRE_SHARED_DATA(model_path, "models/stories260K/stories260K.bin");
  const auto dir = qmeter::testing::test_output_dir("quality_under_load");
  // Short problems so the 512-token model holds 1-shot prompts.
  {
    std::ofstream f(dir + "/gsm8k.jsonl");
    for (int i = 0; i < 13; ++i)
      f << nlohmann::json{{"question", "Tom has " + std::to_string(i) + " cats. How many?"},
                          {"answer", "He has " + std::to_string(i) + ".\n#### " + std::to_string(i)}}
                  .dump()
        << "\n";
  }
  auto model = std::shared_ptr<engine::Model>(engine::load_model(model_path).release());
  server::ServeOptions o;
  o.model = model_path;
  o.port = 0;
  o.served_model_name = "stories";
  server::InferenceServer server(o, model);
  server.start();
  SpawnOptions so;
  so.argv = {qmeter::testing::qmeter_bin(), "bench", "serve", "--base-url", server.base_url(), "--model", "stories",
             "--dataset", "gsm8k:" + dir + "/gsm8k.jsonl", "--num-fewshot", "1", "--num-prompts", "12",
             "--output-len", "24", "--request-rate", "20", "--score", "--output-json", dir + "/out.json",
             "--save-requests", dir + "/requests.jsonl"};
  so.log_path = dir + "/bench.log";
  auto child = ChildProcess::spawn(so);
  ASSERT_EQ(child.wait(300), 0) << file_tail(so.log_path);
  const auto j = nlohmann::json::parse(read_file(dir + "/out.json"));
  EXPECT_EQ(j["completed"], 12);
  EXPECT_EQ(j["score_task"], "gsm8k");
  EXPECT_EQ(j["score_n"], 12);
  // The accuracy is recomputed here from the saved responses, independently of the observer.
  int strict = 0, flex = 0, lines = 0;
  std::ifstream req(dir + "/requests.jsonl");
  for (std::string line; std::getline(req, line);) {
    const auto r = nlohmann::json::parse(line);
    const int index = r["index"];
    const std::string target = std::to_string(index + 1);  // problem 0 is the exemplar
    const std::string text = gsm8k_cut_at_stop(r["generated_text"].get<std::string>());
    strict += gsm8k_numbers_equal(gsm8k_strict_answer(text), target);
    flex += gsm8k_numbers_equal(gsm8k_flexible_answer(text), target);
    ++lines;
  }
  ASSERT_EQ(lines, 12);
  EXPECT_DOUBLE_EQ(j["exact_match_strict"].get<double>(), strict / 12.0);
  EXPECT_DOUBLE_EQ(j["exact_match_flexible"].get<double>(), flex / 12.0);
  EXPECT_TRUE(j.contains("p99_ttft_ms"));
  EXPECT_NE(file_tail(so.log_path).find("quality under load"), std::string::npos) << file_tail(so.log_path);
}

}  // namespace
}  // namespace qmeter::quality
