#pragma once
// A workload = a dataset (what to send) x an arrival process (when to send it), turned into a
// precomputed Schedule before the run starts (the same seed gives the identical schedule), so
// latency can be measured from each request's scheduled time.
#include <cstdint>
#include <memory>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "qmeter/core/clock.h"

namespace qmeter::workload {

struct ChatMessage {
  std::string role;
  std::string content;
};

// One request of a workload.
struct Prompt {
  std::string text;                   // for /v1/completions
  std::vector<ChatMessage> messages;  // for /v1/chat/completions (empty: one user turn of `text`)
  int prompt_tokens = -1;             // the number of input tokens intended (-1 unknown)
  int max_tokens = 0;                 // output tokens to request
  std::string reference;              // expected answer where the dataset has one (quality under load)
};

struct ScheduledRequest {
  std::int64_t index = 0;
  Nanos offset_ns = 0;  // send time relative to the start of the run
  Prompt prompt;
};

struct Schedule {
  std::vector<ScheduledRequest> requests;  // sorted by offset_ns
  // Closed loop: at most this many in flight; a request is released when a slot frees (its
  // offset is then a lower bound). 0 = open loop.
  int max_concurrency = 0;
  std::string description;  // human-readable: "poisson 20 req/s, random in=128 out=64, seed 0"
  // The arrival process used, after resolving ArrivalOptions::kind == "" (trace | gamma |
  // poisson | inf): what a run record should store as its arrival kind.
  std::string arrival_kind;
};

// Dataset options (the `--dataset` family of flags of `qmeter bench serve`).
struct DatasetOptions {
  std::string spec = "random";  // random | sharegpt:PATH | jsonl:PATH | azure:PATH | gsm8k:PATH
  int num_prompts = 100;
  int input_len = 128;
  int output_len = 64;
  double range_ratio = 0.0;  // lengths uniform in [len*(1-r), len*(1+r)]
  std::uint64_t seed = 0;
  // Optional: counts tokens as the server will (e.g. via its /tokenize endpoint or the embedded
  // tokenizer); when null the random dataset uses its one-token-per-word construction.
  std::function<int(const std::string&)>* token_counter = nullptr;
  // true: every request asks for exactly output_len tokens, ignoring lengths the dataset carries
  // (ShareGPT reply lengths, JSONL max_tokens, Azure GeneratedTokens); vLLM's --sharegpt-output-len.
  bool fixed_output_len = false;
  // gsm8k: k exemplars (the dataset's first k problems, then not sent) before each question, in
  // the k-shot format of quality evaluation; 0 sends the bare question.
  int num_fewshot = 0;
};

// The GSM8K k-shot prompt shared by quality evaluation and quality under load:
// "Question: q\nAnswer: a\n\n" per exemplar, then "Question: q\nAnswer:".
std::string gsm8k_fewshot_prompt(const std::vector<std::pair<std::string, std::string>>& shots, const std::string& question);

// Arrival options (`--request-rate`, `--arrival`, `--burstiness`, `--max-concurrency`, ramp).
struct ArrivalOptions {
  // constant | poisson | gamma | inf | closed | trace | ramp; "" = trace for a trace dataset
  // (azure) without a rate, gamma if burstiness != 1, poisson if a rate is set, else inf.
  // closed = inf + max_concurrency (pure closed loop). See registry.h for the table.
  std::string kind;
  double request_rate = -1;  // req/s; <= 0 or infinity means all at once
  double burstiness = 1.0;   // gamma shape; 1 = Poisson
  int max_concurrency = 0;
  // Linear ramp (kind = ramp): the rate goes from start to end over the run's nominal duration
  // T = 2 * num_prompts / (start + end) (so the integrated rate over T is num_prompts); send times
  // are the inverse of the integrated rate applied to a unit-rate base process: "constant"
  // (evenly spaced in integrated rate), "poisson" or "gamma" (shape = burstiness).
  double ramp_start_rate = 0, ramp_end_rate = 0;
  std::string ramp_base = "poisson";
  double trace_time_scale = 1.0;  // trace replay speed factor (2 = twice as fast)
  std::uint64_t seed = 0;
};

// Builds the schedule; throws UsageError naming the file/line/flag for bad input.
Schedule build_schedule(const DatasetOptions& dataset, const ArrivalOptions& arrivals);

}  // namespace qmeter::workload
