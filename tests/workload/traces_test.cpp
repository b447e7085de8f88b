// Trace readers (mooncake, burstgpt, trace:PATH detection, --trace-window, --trace-time-scale) on
// the hand-written samples in tests/workload/data and on the real files in the shared data.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "qmeter/workload/registry.h"
#include "workload_test_util.h"

namespace qmeter::workload {
namespace {

using ::testing::HasSubstr;
using testing::count_words;
using testing::usage_error;
using testing::write_file;

std::string sample(const std::string& name) { return qmeter::testing::source_dir() + "/tests/workload/data/" + name; }

std::vector<std::string> words_of(const std::string& s) {
  std::istringstream in(s);
  std::vector<std::string> w;
  for (std::string x; in >> x;) w.push_back(x);
  return w;
}

DatasetSample load(const std::string& spec, int n) {
  DatasetOptions o;
  o.spec = spec;
  o.num_prompts = n;
  return load_dataset(o);
}

TEST(Mooncake, SampleLengthsTimesAndSharedBlocks) {
  const DatasetSample s = load("mooncake:" + sample("mooncake_sample.jsonl"), 5);
  ASSERT_EQ(s.prompts.size(), 5u);
  const std::vector<int> in = {1100, 700, 1024, 300, 1030}, out = {8, 5, 12, 3, 7};
  const std::vector<std::vector<int>> ids = {{0, 1, 2}, {0, 3}, {0, 1}, {4}, {4, 5, 6}};
  const std::vector<Nanos> t = {0, 0, 1'500'000'000, 2'750'000'000, 4'000'000'000};
  std::vector<std::vector<std::string>> w;
  for (int i = 0; i < 5; ++i) {
    // Without a token counter every block word is one token (the mock's count).
    EXPECT_EQ(count_words(s.prompts[i].text), in[i]) << i;
    EXPECT_EQ(s.prompts[i].prompt_tokens, in[i]);
    EXPECT_EQ(s.prompts[i].max_tokens, out[i]);
    EXPECT_EQ(s.trace_offsets_ns[i], t[i]);
    w.push_back(words_of(s.prompts[i].text));
  }
  // Block k of two requests: equal words iff equal hash ids (over the shorter of the two).
  for (int a = 0; a < 5; ++a)
    for (int b = a + 1; b < 5; ++b)
      for (std::size_t k = 0; k < std::min(ids[a].size(), ids[b].size()); ++k) {
        const std::size_t lo = k * 512;
        const std::size_t n = std::min({std::size_t{512}, w[a].size() - lo, w[b].size() - lo});
        const bool same = std::equal(w[a].begin() + lo, w[a].begin() + lo + n, w[b].begin() + lo);
        EXPECT_EQ(same, ids[a][k] == ids[b][k]) << "requests " << a << "," << b << " block " << k;
      }
}

TEST(Mooncake, WindowAndTimeScale) {
  DatasetOptions d;
  d.spec = "mooncake:" + sample("mooncake_sample.jsonl");
  d.num_prompts = 2;
  parse_trace_window("1,2", d);
  ArrivalOptions a;
  a.trace_time_scale = 2;
  const Schedule s = build_schedule(d, a);
  ASSERT_EQ(s.requests.size(), 2u);
  EXPECT_EQ(s.arrival_kind, "trace");
  // Rows at 1.5 s and 2.75 s are in [1, 3): offsets 0 and 1.25 s, replayed twice as fast.
  EXPECT_EQ(s.requests[0].offset_ns, 0);
  EXPECT_EQ(s.requests[1].offset_ns, 625'000'000);
  EXPECT_EQ(s.requests[0].prompt.max_tokens, 12);
  EXPECT_EQ(s.requests[1].prompt.max_tokens, 3);
  d.num_prompts = 3;
  EXPECT_THAT(usage_error([&] { build_schedule(d, a); }), HasSubstr("the trace has 2 requests in the window 1 s + 2 s; --num-prompts 3 asks for more"));
}

TEST(Mooncake, BadRowsNamedByLine) {
  const std::string dir = qmeter::testing::test_output_dir("mooncake_bad");
  const std::string ok = R"({"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [0]})" "\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {ok + "not json\n", " line 2: expected a JSON object {timestamp, input_length, output_length, hash_ids}"},
      {ok + R"({"timestamp": 5, "output_length": 2, "hash_ids": [0]})" "\n", " line 2: missing field 'input_length'"},
      {ok + R"({"timestamp": 5, "input_length": 600, "output_length": 2, "hash_ids": [0]})" "\n",
       " line 2: field 'hash_ids': 1 ids for input_length 600 (expected ceil(600 / 512) = 2)"},
      {ok + R"({"timestamp": 5, "input_length": 6, "output_length": 0, "hash_ids": [0]})" "\n",
       " line 2: field 'output_length': expected an integer >= 1, got 0"},
      {ok + R"({"timestamp": 5, "input_length": 6, "output_length": 1, "hash_ids": [-3]})" "\n",
       " line 2: field 'hash_ids': expected non-negative integers, got -3"},
      {R"({"timestamp": 9, "input_length": 6, "output_length": 1, "hash_ids": [1]})" "\n\n" + ok,
       " line 3: field 'timestamp': 0 ms is before the previous row's 9 ms"},
  };
  int i = 0;
  for (const auto& [content, expected] : cases) {
    const std::string spec = "mooncake:" + write_file(dir, "bad" + std::to_string(i++) + ".jsonl", content);
    EXPECT_EQ(usage_error([&] { load(spec, 2); }), spec + expected);
  }
}

TEST(BurstGpt, SampleSkipsFailedRequests) {
  const DatasetSample s = load("burstgpt:" + sample("burstgpt_sample.csv"), 4);
  ASSERT_EQ(s.prompts.size(), 4u);
  const std::vector<int> in = {472, 1087, 417, 12}, out = {18, 230, 276, 7};
  const std::vector<Nanos> t = {0, 40'000'000'000, 113'000'000'000, 195'000'000'000};
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(count_words(s.prompts[i].text), in[i]);
    EXPECT_EQ(s.prompts[i].max_tokens, out[i]);
    EXPECT_EQ(s.trace_offsets_ns[i], t[i]);
  }
  EXPECT_THAT(s.description, HasSubstr("2 failed requests skipped"));
  EXPECT_THAT(usage_error([&] { load("burstgpt:" + sample("burstgpt_sample.csv"), 5); }),
              HasSubstr("the trace has 4 requests; --num-prompts 5 asks for more"));
}

TEST(BurstGpt, BadRowsNamedByLine) {
  const std::string dir = qmeter::testing::test_output_dir("burstgpt_bad");
  const std::string header = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n";
  const std::string row = "5,ChatGPT,4,2,6,Conversation log\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {header + row + "7,ChatGPT,4,2\n", " line 3: expected 6 comma-separated fields, got 4"},
      {header + row + "soon,ChatGPT,4,2,6,API log\n", " line 3: field 'Timestamp': expected seconds >= 0, got 'soon'"},
      {header + row + "6,ChatGPT,4,2,7,API log\n", " line 3: field 'Total tokens': 7 is not 4 + 2 (request + response tokens)"},
      {header + row + "4,ChatGPT,4,2,6,API log\n", " line 3: field 'Timestamp': 4 is before the previous row's 5"},
      {header + row + "6,ChatGPT,-4,2,-2,API log\n", " line 3: field 'Request tokens': expected a token count >= 0, got '-4'"},
      {"Timestamp,Model,Request tokens,Total tokens\n" + row,
       " line 1: missing column 'Response tokens' in the header 'Timestamp,Model,Request tokens,Total tokens' (expected "
       "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type)"},
  };
  int i = 0;
  for (const auto& [content, expected] : cases) {
    const std::string spec = "burstgpt:" + write_file(dir, "bad" + std::to_string(i++) + ".csv", content);
    EXPECT_EQ(usage_error([&] { load(spec, 2); }), spec + expected);
  }
}

TEST(TraceFormat, DetectedFromTheFile) {
  const std::string dir = qmeter::testing::test_output_dir("trace_detect");
  EXPECT_EQ(load("trace:" + sample("mooncake_sample.jsonl"), 5).prompts[4].max_tokens, 7);
  EXPECT_EQ(load("trace:" + sample("burstgpt_sample.csv"), 4).prompts[3].max_tokens, 7);
  const std::string azure = write_file(dir, "azure.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.5,37,4\n");
  EXPECT_EQ(load("trace:" + azure, 1).prompts[0].max_tokens, 4);
  const std::string other = write_file(dir, "other.csv", "\ntime,prompt,reply\n1,2,3\n");
  EXPECT_THAT(usage_error([&] { load("trace:" + other, 1); }),
              HasSubstr("trace:" + other + " line 1: unknown trace format: the first line 'time,prompt,reply'"));
}

TEST(TraceWindow, BadValuesNameTheFlag) {
  DatasetOptions d;
  EXPECT_EQ(usage_error([&] { parse_trace_window("10", d); }),
            "--trace-window '10': expected START,DURATION in seconds (START >= 0, DURATION > 0 or inf)");
  EXPECT_EQ(usage_error([&] { parse_trace_window("-1,5", d); }),
            "--trace-window '-1,5': expected START,DURATION in seconds (START >= 0, DURATION > 0 or inf)");
  EXPECT_EQ(usage_error([&] { parse_trace_window("1,0", d); }),
            "--trace-window '1,0': expected START,DURATION in seconds (START >= 0, DURATION > 0 or inf)");
  parse_trace_window("2.5,inf", d);
  EXPECT_EQ(d.trace_window_start_s, 2.5);
  EXPECT_LT(d.trace_window_duration_s, 0);
}

// --- the real files: ground truth re-read here with nlohmann / a plain CSV split -------------

TEST(RealTraces, MooncakeFirstRowsAndWindow) {
  QMETER_REQUIRE_SHARED_DATA(path, "workloads/mooncake_fast25_conversation_trace.jsonl");
  std::ifstream in(path);
  std::vector<nlohmann::json> rows;
  for (std::string line; rows.size() < 400 && std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
  const DatasetSample s = load("mooncake:" + path, 30);
  for (int i = 0; i < 30; ++i) {
    EXPECT_EQ(count_words(s.prompts[i].text), rows[i]["input_length"].get<int>()) << i;
    EXPECT_EQ(s.prompts[i].max_tokens, rows[i]["output_length"].get<int>());
    EXPECT_EQ(s.trace_offsets_ns[i], (rows[i]["timestamp"].get<Nanos>() - rows[0]["timestamp"].get<Nanos>()) * 1'000'000);
  }
  // The first 512-token block is shared exactly where the first hash id is.
  const auto w0 = words_of(s.prompts[0].text);
  for (int i = 1; i < 30; ++i) {
    const auto wi = words_of(s.prompts[i].text);
    EXPECT_EQ(std::equal(w0.begin(), w0.begin() + 512, wi.begin()), rows[i]["hash_ids"][0] == rows[0]["hash_ids"][0]) << i;
  }
  // A window: the rows with timestamp in [3 s, 5 s) of the trace's clock.
  DatasetOptions d;
  d.spec = "mooncake:" + path;
  parse_trace_window("3,2", d);
  std::vector<int> expect_out;
  for (const auto& r : rows)
    if (r["timestamp"].get<Nanos>() >= 3000 && r["timestamp"].get<Nanos>() < 5000) expect_out.push_back(r["output_length"].get<int>());
  ASSERT_GT(expect_out.size(), 1u);
  ASSERT_LT(expect_out.size(), 300u);
  d.num_prompts = static_cast<int>(expect_out.size());
  const DatasetSample w = load_dataset(d);
  for (std::size_t i = 0; i < expect_out.size(); ++i) EXPECT_EQ(w.prompts[i].max_tokens, expect_out[i]);
  d.num_prompts += 1;
  EXPECT_THAT(usage_error([&] { load_dataset(d); }), HasSubstr("in the window 3 s + 2 s; --num-prompts"));
}

TEST(RealTraces, BurstGptUsableRows) {
  QMETER_REQUIRE_SHARED_DATA(path, "workloads/burstgpt_1_first7days.csv");
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  struct Row {
    long t;
    int req, resp;
  };
  std::vector<Row> usable;
  while (usable.size() < 300 && std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    const int req = std::stoi(f[2]), resp = std::stoi(f[3]);
    if (req > 0 && resp > 0) usable.push_back({std::stol(f[0]), req, resp});
  }
  const DatasetSample s = load("burstgpt:" + path, 300);
  for (std::size_t i = 0; i < usable.size(); ++i) {
    EXPECT_EQ(count_words(s.prompts[i].text), usable[i].req) << i;
    EXPECT_EQ(s.prompts[i].max_tokens, usable[i].resp);
    EXPECT_EQ(s.trace_offsets_ns[i], (usable[i].t - usable[0].t) * 1'000'000'000) << i;
  }
  // Detected as BurstGPT, the whole file reads without an error.
  EXPECT_EQ(load("trace:" + path, 300).prompts[299].max_tokens, usable[299].resp);
}

TEST(RealTraces, AzureThroughTraceDetection) {
  QMETER_REQUIRE_SHARED_DATA(path, "workloads/azure_llm_inference_conv_2023.csv");
  const DatasetSample a = load("azure:" + path, 50), t = load("trace:" + path, 50);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(a.prompts[i].max_tokens, t.prompts[i].max_tokens);
    EXPECT_EQ(a.trace_offsets_ns[i], t.trace_offsets_ns[i]);
  }
}

}  // namespace
}  // namespace qmeter::workload
