// Bad input: every malformed file gives a UsageError naming the --dataset value (kind:file), the
// line and the field; bad options name their flag. Never a crash.
#include <gtest/gtest.h>

#include <gmock/gmock.h>

#include "qmeter/workload/schedule.h"
#include "workload_test_util.h"

using namespace qmeter::workload;
using qmeter::workload::testing::usage_error;
using qmeter::workload::testing::write_file;
using ::testing::HasSubstr;

namespace {

std::string load_error(const std::string& spec, int num_prompts = 1) {
  DatasetOptions d;
  d.spec = spec;
  d.num_prompts = num_prompts;
  return usage_error([&] { build_schedule(d, ArrivalOptions{}); });
}

// Writes `content` to a file and returns the error of loading it as `kind`.
struct BadFile {
  std::string spec;
  std::string error;
};
BadFile bad_file(const std::string& test, const std::string& kind, const std::string& content, int num_prompts = 1) {
  const auto dir = qmeter::testing::test_output_dir("bad_input_" + test);
  const std::string spec = kind + ":" + write_file(dir, "data", content);
  return {spec, load_error(spec, num_prompts)};
}

}  // namespace

TEST(BadInput, UnknownDatasetKindListsTheKnownOnes) {
  EXPECT_EQ(load_error("parquet:/x.parquet"),
            "--dataset parquet:/x.parquet: unknown dataset kind 'parquet' (known: random, sharegpt:PATH, jsonl:PATH, "
            "azure:PATH, gsm8k:PATH, mooncake:PATH, burstgpt:PATH, trace:PATH, sharegpt-multiturn:PATH, multiturn, prefix, longdoc:PATH)");
  EXPECT_EQ(load_error("sharegpt"), "--dataset sharegpt: needs a file, as sharegpt:PATH");
  EXPECT_EQ(load_error("random:/x"), "--dataset random:/x: 'random' takes no path");
}

TEST(BadInput, UnreadableFileNamesIt) {
  EXPECT_EQ(load_error("jsonl:/nonexistent/p.jsonl"), "jsonl:/nonexistent/p.jsonl: cannot read file (No such file or directory)");
  const auto dir = qmeter::testing::test_output_dir("bad_input_dir");
  EXPECT_EQ(load_error("sharegpt:" + dir), "sharegpt:" + dir + ": cannot read file (it is a directory)");
}

TEST(BadInput, JsonlErrorsNameFileLineAndField) {
  const std::string ok = "{\"prompt\": \"fine\"}\n";
  struct Case {
    std::string content;
    std::string line_and_message;
  } cases[] = {
      {ok + ok + "{\"prompt\": \"cut off\"\n", " line 3: invalid JSON at column "},
      {ok + "[\"a list\"]\n", " line 2: expected a JSON object, got a list"},
      {ok + ok + ok + ok + ok + ok + "{\"text\": \"no prompt\"}\n", " line 7: missing string field 'prompt'"},
      {"{\"prompt\": 12}\n", " line 1: field 'prompt' must be a string, got a number"},
      {ok + "\n\n{\"prompt\": \"\"}\n", " line 4: field 'prompt' is empty"},
      {"{\"prompt\": \"x\", \"max_tokens\": -1}\n", " line 1: field 'max_tokens' must be a positive integer, got -1"},
      {"{\"prompt\": \"x\", \"max_tokens\": 2.5}\n", " line 1: field 'max_tokens' must be a positive integer, got 2.5"},
      {"{\"prompt\": \"x\", \"max_tokens\": \"64\"}\n", " line 1: field 'max_tokens' must be a positive integer, got \"64\""},
      {"{\"prompt\": \"x\", \"reference\": 5}\n", " line 1: field 'reference' must be a string, got a number"},
      {ok + "{\"prompt\": \"bad \xff byte\"}\n", " line 2: invalid JSON at column "},
  };
  int i = 0;
  for (const auto& c : cases) {
    const BadFile bad = bad_file("jsonl" + std::to_string(i++), "jsonl", c.content);
    EXPECT_EQ(bad.error.rfind(bad.spec + c.line_and_message, 0), 0u) << bad.error;
  }
  // Exact forms, the column pointing at the offending character.
  const BadFile comma = bad_file("jsonl_comma", "jsonl", ok + "{\"prompt\": \"b\", }\n");
  EXPECT_EQ(comma.error, comma.spec +
                             " line 2: invalid JSON at column 17: syntax error while parsing object key - unexpected "
                             "'}'; expected string literal");
  // The issue's example.
  const BadFile missing = bad_file("jsonl_missing", "jsonl", ok + ok + ok + ok + ok + ok + "{\"max_tokens\": 3}\n");
  EXPECT_EQ(missing.error, missing.spec + " line 7: missing string field 'prompt'");
}

TEST(BadInput, EmptyDatasetsSayWhy) {
  EXPECT_THAT(bad_file("empty_jsonl", "jsonl", "").error, HasSubstr(": no records (the file is empty)"));
  EXPECT_THAT(bad_file("blank_jsonl", "jsonl", "\n  \n\n").error, HasSubstr(": no records (the file is empty)"));
  EXPECT_THAT(bad_file("empty_gsm8k", "gsm8k", "").error, HasSubstr(": no records (the file is empty)"));
  const BadFile empty_list = bad_file("empty_sharegpt", "sharegpt", "[]");
  EXPECT_EQ(empty_list.error, empty_list.spec +
                                  ": no usable conversations (0 items; skipped 0 without a human turn, 0 too short "
                                  "(< 4 tokens), 0 too long (prompt > 1024 or prompt + output > 2048 tokens))");
  EXPECT_THAT(bad_file("short_sharegpt", "sharegpt", R"([{"conversations": [{"from": "human", "value": "hi"}]}])").error,
              HasSubstr("no usable conversations (1 items; skipped 0 without a human turn, 1 too short"));
  EXPECT_THAT(bad_file("empty_azure", "azure", "").error,
              HasSubstr(": empty file (expected the header TIMESTAMP,ContextTokens,GeneratedTokens)"));
  EXPECT_THAT(bad_file("header_azure", "azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n").error,
              HasSubstr(": no requests (the file has a header but no rows)"));
}

TEST(BadInput, ShareGptErrorsNameLineItemAndField) {
  const std::string good = R"({"conversations": [{"from": "human", "value": "A fine question here"}]})";
  struct Case {
    std::string content;
    std::string line_and_message;
  } cases[] = {
      {"[\n" + good + ",\n" + good + ",\n{\"conversations\": [}\n]", " line 4: invalid JSON at column "},
      {"{\"conversations\": []}", " line 1: expected a JSON list of conversations, got an object"},
      {"\n\n  \"text\"", " line 3: expected a JSON list of conversations, got a string"},
      {"[\n" + good + ",\n  42\n]", " line 3: item 1: expected an object with a 'conversations' list, got a number"},
      {"[\n" + good + ",\n" + good + ",\n {\"id\": \"q\"}\n]", " line 4: item 2: missing list field 'conversations'"},
      {"[" + good + ", " + good + ", {\"conversations\": [{\"from\": \"human\"}]}]",
       " line 1: item 2: conversations[0]: missing string field 'value'"},
      {"[\n{\"conversations\": [{\"from\": \"human\", \"value\": \"ok then\"},\n  \"oops\"]}]",
       " line 2: item 0: conversations[1]: expected an object, got a string"},
      {"[\n" + good + ",\n{\"conversations\": [{\"value\": \"x\"}]}]", " line 3: item 1: conversations[0]: missing string field 'from'"},
  };
  int i = 0;
  for (const auto& c : cases) {
    const BadFile bad = bad_file("sharegpt" + std::to_string(i++), "sharegpt", c.content);
    EXPECT_EQ(bad.error.rfind(bad.spec + c.line_and_message, 0), 0u) << bad.error;
  }
  const BadFile bracket = bad_file("sharegpt_bracket", "sharegpt", "[\n1,\n2,\n{\"conversations\": [}\n]");
  EXPECT_EQ(bracket.error, bracket.spec +
                               " line 4: invalid JSON at column 20: syntax error while parsing value - unexpected '}'; "
                               "expected '[', '{', or a literal");
  const BadFile empty = bad_file("sharegpt_empty", "sharegpt", " \n");
  EXPECT_EQ(empty.error, empty.spec + ": empty file (expected a JSON list of conversations)");
}

TEST(BadInput, AzureErrorsNameLineAndColumn) {
  const std::string header = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
  const std::string row = "2023-11-16 18:15:46.6805900,374,44\n";
  struct Case {
    std::string content;
    std::string expected;
  } cases[] = {
      {"TIMESTAMP,Context,GeneratedTokens\n" + row,
       " line 1: missing column 'ContextTokens' in the header 'TIMESTAMP,Context,GeneratedTokens' (expected "
       "TIMESTAMP,ContextTokens,GeneratedTokens)"},
      {header + row + "2023-11-16 18:15:47,12\n", " line 3: expected 3 comma-separated fields, got 2"},
      {header + row + row + "2023-13-16 18:15:47,12,3\n",
       " line 4: field 'TIMESTAMP': expected 'YYYY-MM-DD HH:MM:SS[.fraction]' or seconds, got '2023-13-16 18:15:47'"},
      {header + "yesterday,1,2\n", " line 2: field 'TIMESTAMP': expected 'YYYY-MM-DD HH:MM:SS[.fraction]' or seconds, got 'yesterday'"},
      {header + row + "2023-11-16 18:15:47,12x,3\n", " line 3: field 'ContextTokens': expected a positive integer, got '12x'"},
      {header + "2023-11-16 18:15:47,12,0\n", " line 2: field 'GeneratedTokens': expected a positive integer, got '0'"},
      {header + "2023-11-16 18:15:47,-5,3\n", " line 2: field 'ContextTokens': expected a positive integer, got '-5'"},
  };
  int i = 0;
  for (const auto& c : cases) {
    const BadFile bad = bad_file("azure" + std::to_string(i++), "azure", c.content, 3);
    EXPECT_EQ(bad.error, bad.spec + c.expected);
  }
  const BadFile few = bad_file("azure_few", "azure", header + row + row, 3);
  EXPECT_EQ(few.error, few.spec + ": the trace has 2 requests; --num-prompts 3 asks for more");
}

TEST(BadInput, Gsm8kErrorsNameLineAndField) {
  const BadFile no_answer = bad_file("gsm8k_a", "gsm8k", "{\"question\": \"q\", \"answer\": \"1 #### 1\"}\n{\"question\": \"q\"}\n");
  EXPECT_EQ(no_answer.error, no_answer.spec + " line 2: missing string field 'answer'");
  const BadFile no_mark = bad_file("gsm8k_b", "gsm8k", "{\"question\": \"q\", \"answer\": \"it is 4\"}\n");
  EXPECT_EQ(no_mark.error, no_mark.spec + " line 1: field 'answer' has no final answer after '####'");
}

TEST(BadInput, BadOptionsNameTheirFlag) {
  auto error = [](const DatasetOptions& d, const ArrivalOptions& a) { return usage_error([&] { build_schedule(d, a); }); };
  DatasetOptions d;
  ArrivalOptions a;
  {
    DatasetOptions x = d;
    x.num_prompts = 0;
    EXPECT_EQ(error(x, a), "--num-prompts must be at least 1, got 0");
    x = d;
    x.range_ratio = 1.0;
    EXPECT_EQ(error(x, a), "--range-ratio must be in [0, 1), got 1");
    x = d;
    x.input_len = 0;
    EXPECT_EQ(error(x, a), "--input-len must be at least 1, got 0");
    x = d;
    x.output_len = -4;
    EXPECT_EQ(error(x, a), "--output-len must be at least 1, got -4");
  }
  auto with = [&](auto edit) {
    ArrivalOptions x = a;
    edit(x);
    return error(d, x);
  };
  EXPECT_EQ(with([](ArrivalOptions& x) { x.kind = "bursty"; }),
            "--arrival bursty: unknown arrival process (known: constant, poisson, gamma, inf, closed, trace, ramp)");
  EXPECT_EQ(with([](ArrivalOptions& x) { x.burstiness = 0; }), "--burstiness must be a positive number, got 0");
  EXPECT_EQ(with([](ArrivalOptions& x) {
              x.kind = "poisson";
              x.request_rate = 5;
              x.burstiness = 2;
            }),
            "--burstiness 2 applies to --arrival gamma (poisson is burstiness 1)");
  EXPECT_EQ(with([](ArrivalOptions& x) { x.max_concurrency = -1; }), "--max-concurrency must be >= 0, got -1");
  EXPECT_EQ(with([](ArrivalOptions& x) { x.kind = "closed"; }), "--arrival closed needs --max-concurrency N (N >= 1)");
  EXPECT_EQ(with([](ArrivalOptions& x) { x.kind = "trace"; }),
            "--arrival trace needs a dataset with arrival times (azure:PATH); random in=128 out=64 has none");
  EXPECT_EQ(with([](ArrivalOptions& x) { x.trace_time_scale = 0; }), "--trace-time-scale must be a positive number, got 0");
  EXPECT_EQ(with([](ArrivalOptions& x) {
              x.kind = "ramp";
              x.ramp_end_rate = 0;
            }),
            "--ramp-end-rate must be > 0, got 0");
  EXPECT_EQ(with([](ArrivalOptions& x) {
              x.kind = "ramp";
              x.ramp_start_rate = -1;
              x.ramp_end_rate = 5;
            }),
            "--ramp-start-rate must be >= 0, got -1");
  EXPECT_EQ(with([](ArrivalOptions& x) {
              x.kind = "ramp";
              x.ramp_end_rate = 5;
              x.ramp_base = "uniform";
            }),
            "--ramp-base must be constant, poisson or gamma, got 'uniform'");
}
