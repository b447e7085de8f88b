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
#include "qmeter/core/option_schema.h"

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
  // Multi-turn sessions (sharegpt-multiturn, multiturn): the conversation this turn belongs to
  // (-1: an independent request), its turn index, and the pause after the previous turn's reply
  // before this turn is sent. `text` / `messages` then hold only this turn's new user message: the
  // client prepends the history (earlier turns with their real replies) when it sends it.
  std::int64_t session = -1;
  int turn = 0;
  Nanos think_ns = 0;
};

struct ScheduledRequest {
  std::int64_t index = 0;
  Nanos offset_ns = 0;  // send time relative to the start of the run
  Prompt prompt;
  // Session turns after the first: the position in Schedule::requests of the previous turn of the
  // same conversation; this one is sent prompt.think_ns after that one's reply ends (offset_ns is
  // then the conversation's start, a lower bound). -1: sent at offset_ns.
  std::int64_t follows = -1;
};

struct Schedule {
  // Sorted by offset_ns; a session workload lists each conversation's turns together, in order.
  std::vector<ScheduledRequest> requests;
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
  // Multi-turn sessions: num_prompts is the number of conversations. `multiturn` has `turns`
  // turns per conversation (user turns of input_len tokens, replies of output_len tokens);
  // every session dataset waits think_time_s after a reply before the next turn.
  int turns = 4;
  double think_time_s = 0.0;
  // `prefix`: num_prefixes distinct system prompts of prefix_len tokens, each shared by
  // num_prompts / num_prefixes requests whose own suffix has input_len tokens.
  int num_prefixes = 4;
  int prefix_len = 512;
  // Traces (azure, mooncake, burstgpt, trace): only the rows whose time is in
  // [trace_window_start_s, trace_window_start_s + trace_window_duration_s) of the trace's own
  // clock (seconds from its first row); duration < 0 = to the end.
  double trace_window_start_s = 0.0;
  double trace_window_duration_s = -1.0;
  // How the caller names these fields in messages: the CLI's flags (--num-prompts, the default)
  // or a study spec's (workloads[0].num_prompts).
  FieldNames field_names;
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

// "START,DURATION" (seconds; DURATION may be empty or "inf": to the end) into
// DatasetOptions::trace_window_*; throws UsageError naming `what` (e.g. "--trace-window").
void parse_trace_window(const std::string& text, DatasetOptions& options, const std::string& what = "--trace-window");

// Builds the schedule; throws UsageError naming the file/line/flag for bad input.
Schedule build_schedule(const DatasetOptions& dataset, const ArrivalOptions& arrivals);

}  // namespace qmeter::workload
