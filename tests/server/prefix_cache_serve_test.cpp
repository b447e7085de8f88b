// Prefix caching in `qmeter serve` (stories260K on loopback): a shared-prefix workload gives the
// same greedy replies with the cache on and off (and as the in-process engine), streaming or not,
// f32 and int8 KV; the hit counter is the shared whole blocks, computed here from the prompts'
// lengths and the block size; a tiny KV pool evicts and preempts without changing a reply; every
// block reference is given back when requests end, disconnected clients included.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "qmeter/engine/kv_cache.h"
#include "qmeter/engine/session.h"
#include "qmeter/server/inference_server.h"
#include "serve_process.h"

using namespace qmeter;
using nlohmann::json;
using qmeter::testing::http_fetch;
using qmeter::testing::metric_value;

namespace {

constexpr const char* kStories = "models/stories260K/stories260K.bin";

struct Server {
  std::unique_ptr<server::InferenceServer> server;
  std::string base;
  double metric(const std::string& name) const { return metric_value(http_fetch(base + "/metrics").second, name); }
};

Server serve(std::shared_ptr<const engine::Model> model, server::SchedulerOptions so) {
  server::ServeOptions o;
  o.model = kStories;
  o.port = 0;
  o.served_model_name = "stories";
  o.scheduler = so;
  Server s;
  s.server = std::make_unique<server::InferenceServer>(o, std::move(model));
  s.server->start();
  s.base = s.server->base_url();
  return s;
}

// The shared-prefix workload: `groups` system prompts of `prefix_len` tokens (BOS first), each
// followed by `per_group` suffixes of `suffix_len` tokens. Every suffix starts with a token no
// other prompt has at that position, so two prompts share exactly their system prompt; system
// prompts differ at position 1, so prompts of different groups share nothing but BOS.
struct SharedPrefixWorkload {
  std::vector<std::vector<int>> prompts;  // group-major: prompt g * per_group + j
  std::vector<std::vector<int>> warmups;  // one per group: its system prompt + another suffix
};

SharedPrefixWorkload shared_prefix(int groups, int per_group, int prefix_len, int suffix_len, int bos) {
  std::mt19937 rng(20);
  std::uniform_int_distribution<int> token(10, 499);  // stories260K: vocab 512
  SharedPrefixWorkload w;
  int next_first = 10;  // distinct first suffix tokens: 10, 11, ...
  for (int g = 0; g < groups; ++g) {
    std::vector<int> sys = {bos, 400 + g};
    while (static_cast<int>(sys.size()) < prefix_len) sys.push_back(token(rng));
    auto with_suffix = [&] {
      std::vector<int> p = sys;
      p.push_back(next_first++);
      while (static_cast<int>(p.size()) < prefix_len + suffix_len) p.push_back(token(rng));
      return p;
    };
    w.warmups.push_back(with_suffix());
    for (int j = 0; j < per_group; ++j) w.prompts.push_back(with_suffix());
  }
  return w;
}

// Greedy, ignoring EOS: the in-process engine's reply to `prompt`.
std::string engine_reply(const engine::Model& m, const std::vector<int>& prompt, int max_tokens) {
  engine::Session s(m, nullptr);
  engine::GenerateOptions go;
  go.max_tokens = max_tokens;
  go.stop_at_eos = false;
  return m.tokenizer->decode(engine::generate(s, prompt, go, {}, {}).tokens);
}

struct Reply {
  long status = 0;
  std::string text;
  int completion_tokens = -1;
};

// One /v1/completions request with token ids as the prompt; a streamed reply is reassembled.
Reply complete(const std::string& base, const std::vector<int>& prompt, int max_tokens, bool stream) {
  json req = {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", true}, {"stream", stream}};
  if (stream) req["stream_options"] = {{"include_usage", true}};
  auto [code, body] = http_fetch(base + "/v1/completions", req.dump());
  Reply r;
  r.status = code;
  if (code != 200) {
    r.text = body;
    return r;
  }
  if (!stream) {
    const auto j = json::parse(body);
    r.text = j["choices"][0]["text"];
    r.completion_tokens = j["usage"]["completion_tokens"];
    return r;
  }
  std::size_t pos = 0;
  while ((pos = body.find("data: ", pos)) != std::string::npos) {
    const auto end = body.find("\n\n", pos);
    const std::string data = body.substr(pos + 6, end - pos - 6);
    pos = end;
    if (data == "[DONE]") continue;
    const auto c = json::parse(data);
    if (!c["choices"].empty()) r.text += c["choices"][0]["text"].get<std::string>();
    if (c.contains("usage") && c["usage"].is_object()) r.completion_tokens = c["usage"]["completion_tokens"];
  }
  return r;
}

// All prompts at once, one thread each; prompt i streams when i is odd.
std::vector<Reply> complete_all(const std::string& base, const std::vector<std::vector<int>>& prompts, int max_tokens) {
  std::vector<Reply> out(prompts.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < prompts.size(); ++i)
    threads.emplace_back([&, i] { out[i] = complete(base, prompts[i], max_tokens, i % 2 == 1); });
  for (auto& t : threads) t.join();
  return out;
}

// Positions the cache can supply to `prompt` when `shared` of its first tokens are cached: whole
// blocks only, and never the last prompt token (its logits start generation).
long expected_hit(int shared, int prompt_len, int block_size) {
  return static_cast<long>(std::min(shared, prompt_len - 1) / block_size) * block_size;
}

long total_len(const std::vector<std::vector<int>>& ps) {
  long n = 0;
  for (const auto& p : ps) n += static_cast<long>(p.size());
  return n;
}

// 4 system prompts x 16 requests = 64 concurrent streams, on and off, against the engine.
void shared_prefix_on_and_off(engine::KvDType dtype) {
  QMETER_REQUIRE_SHARED_DATA(path, kStories);
  auto loaded = engine::load_model(path);
  engine::set_kv_cache_dtype(*loaded, dtype);
  std::shared_ptr<const engine::Model> model(std::move(loaded));
  constexpr int kGroups = 4, kPerGroup = 16, kPrefix = 100, kSuffix = 20, kOut = 16;
  const auto w = shared_prefix(kGroups, kPerGroup, kPrefix, kSuffix, model->tokenizer->bos_id());
  Server on = serve(model, {.max_num_seqs = 64});
  Server off = serve(model, {.max_num_seqs = 64, .enable_prefix_caching = false});
  const int bs = on.server->scheduler().stats().kv_block_size;
  // Warm-ups first, one at a time, so each system prompt is cached before the 64 arrive (requests
  // admitted in the same step cannot share what none of them has computed yet, in vLLM too).
  for (const auto& p : w.warmups) {
    const Reply a = complete(on.base, p, kOut, false), b = complete(off.base, p, kOut, false);
    ASSERT_EQ(a.status, 200) << a.text;
    EXPECT_EQ(a.text, b.text);
  }
  EXPECT_EQ(on.metric("vllm:prefix_cache_hits_total"), 0);  // groups share only BOS: no whole block
  const auto with_cache = complete_all(on.base, w.prompts, kOut);
  const auto without = complete_all(off.base, w.prompts, kOut);
  for (std::size_t i = 0; i < w.prompts.size(); ++i) {
    ASSERT_EQ(with_cache[i].status, 200) << with_cache[i].text;
    ASSERT_EQ(without[i].status, 200) << without[i].text;
    EXPECT_EQ(with_cache[i].text, without[i].text) << "prompt " << i << (i % 2 ? " (streamed)" : "");
    EXPECT_EQ(with_cache[i].text, engine_reply(*model, w.prompts[i], kOut)) << "prompt " << i;
    EXPECT_EQ(with_cache[i].completion_tokens, kOut);
  }
  // By construction every one of the 64 shares exactly its system prompt with what is cached.
  long hits = 0;
  for (const auto& p : w.prompts) hits += expected_hit(kPrefix, static_cast<int>(p.size()), bs);
  ASSERT_EQ(hits, 64L * (kPrefix / bs) * bs);  // 64 x 6 blocks x 16 at the sizes above
  const long queries = total_len(w.warmups) + total_len(w.prompts);
  EXPECT_EQ(on.metric("vllm:prefix_cache_hits_total"), hits);
  EXPECT_EQ(on.metric("vllm:prefix_cache_queries_total"), queries);
  EXPECT_EQ(on.metric("qmeter:prefill_tokens_cached_total"), hits);
  EXPECT_EQ(on.metric("qmeter:prefill_tokens_computed_total"), queries - hits);
  EXPECT_EQ(off.metric("qmeter:prefill_tokens_computed_total"), queries);
  EXPECT_EQ(off.metric("vllm:prefix_cache_queries_total"), 0);
  EXPECT_EQ(off.metric("vllm:prefix_cache_hits_total"), 0);
  EXPECT_EQ(on.metric("vllm:num_preemptions_total"), 0);  // the pool holds everything here
  // Everything given back; the cache keeps the blocks for the next request.
  for (const Server* s : {&on, &off}) {
    EXPECT_EQ(s->metric("qmeter:kv_block_references"), 0);
    EXPECT_EQ(s->metric("vllm:kv_cache_usage_perc"), 0);
  }
  EXPECT_GE(on.metric("qmeter:prefix_cache_blocks"), kGroups * (kPrefix / bs));
  EXPECT_EQ(off.metric("qmeter:prefix_cache_blocks"), 0);
}

}  // namespace

TEST(ServePrefixCache, SixtyFourSharedPrefixStreamsEqualCacheOffAndHitsAreTheSharedBlocks) {
  shared_prefix_on_and_off(engine::KvDType::kF32);
}

TEST(ServePrefixCache, Int8KvCacheWithPrefixCaching) { shared_prefix_on_and_off(engine::KvDType::kInt8); }

// stories260K: 5 layers x 2 x 16 positions x kv_dim 32 floats = 20 KiB a block. 12 blocks cannot
// hold 16 sequences of 56 + 40 positions (6 blocks each) at once: sequences are preempted and
// cached blocks evicted while others are being adopted, and no reply changes.
TEST(ServePrefixCache, TinyKvPoolEvictsAndPreemptsWithoutChangingReplies) {
  QMETER_REQUIRE_SHARED_DATA(path, kStories);
  std::shared_ptr<const engine::Model> model(engine::load_model(path).release());
  const auto w = shared_prefix(4, 4, 48, 8, model->tokenizer->bos_id());
  Server s = serve(model, {.max_num_seqs = 16, .kv_cache_bytes = 12 * 20480});
  ASSERT_EQ(s.server->scheduler().total_kv_blocks(), 12);
  std::vector<std::vector<int>> prompts = w.warmups;
  prompts.insert(prompts.end(), w.prompts.begin(), w.prompts.end());
  const auto replies = complete_all(s.base, prompts, 40);
  for (std::size_t i = 0; i < prompts.size(); ++i) {
    ASSERT_EQ(replies[i].status, 200) << replies[i].text;
    EXPECT_EQ(replies[i].text, engine_reply(*model, prompts[i], 40)) << "prompt " << i;
  }
  EXPECT_GT(s.metric("vllm:num_preemptions_total"), 0);
  EXPECT_GT(s.metric("qmeter:prefix_cache_evictions_total"), 0);
  EXPECT_EQ(s.metric("qmeter:kv_block_references"), 0);
  EXPECT_EQ(s.metric("vllm:kv_cache_usage_perc"), 0);
}

TEST(ServePrefixCache, ClientsThatDisconnectMidStreamGiveBackEveryReference) {
  QMETER_REQUIRE_SHARED_DATA(path, kStories);
  std::shared_ptr<const engine::Model> model(engine::load_model(path).release());
  // One group: its four streams can only share the warm-up's prefix, whatever order they start in.
  const auto w = shared_prefix(1, 4, 40, 4, model->tokenizer->bos_id());
  Server s = serve(model, {});
  ASSERT_EQ(complete(s.base, w.warmups[0], 4, false).status, 200);  // caches the 2 whole prefix blocks
  std::vector<int> fds;
  for (const auto& p : w.prompts) {
    const std::string body = json{{"prompt", p}, {"max_tokens", 400}, {"stream", true}, {"ignore_eos", true}}.dump();
    const int fd = qmeter::testing::open_completion_stream(s.server->port(), body);
    ASSERT_GE(fd, 0);  // the stream has started
    fds.push_back(fd);
  }
  const Nanos admit_deadline = steady_now_ns() + s_to_ns(10);
  while (steady_now_ns() < admit_deadline && s.metric("vllm:num_requests_running") < 4)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  // Each of the four holds the 2 shared blocks and at least 1 of its own.
  EXPECT_GE(s.metric("qmeter:kv_block_references"), 4 * 3);
  EXPECT_EQ(s.metric("vllm:prefix_cache_hits_total"), 4 * 2 * 16);
  for (int fd : fds) close(fd);
  const Nanos deadline = steady_now_ns() + s_to_ns(10);
  double refs = 1;
  while (steady_now_ns() < deadline && (refs = s.metric("qmeter:kv_block_references")) != 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(refs, 0);
  EXPECT_EQ(s.metric("vllm:kv_cache_usage_perc"), 0);
  EXPECT_EQ(s.metric("vllm:num_requests_running"), 0);
  EXPECT_GT(s.metric("qmeter:prefix_cache_blocks"), 0);  // still cached for the next request
}

// The flags of the binary: on by default, off with --no-enable-prefix-caching (vLLM's spelling).
TEST(ServePrefixCache, FlagsTurnItOnAndOff) {
  QMETER_REQUIRE_SHARED_DATA(path, kStories);
  for (const bool enable : {true, false}) {
    const auto dir = qmeter::testing::test_output_dir(enable ? "prefix_flag_on" : "prefix_flag_off");
    std::string base;
    std::vector<std::string> flags = {"--model", path};
    if (!enable) flags.push_back("--no-enable-prefix-caching");
    auto server = qmeter::testing::spawn_serve(dir, flags, base);
    const std::string text = http_fetch(base + "/metrics").second;
    server.stop(5);
    const std::string want = std::string("enable_prefix_caching=\"") + (enable ? "True" : "False") + "\"";
    EXPECT_NE(text.find(want), std::string::npos) << text;
    EXPECT_NE(qmeter::read_file(dir + "/serve.log").find(enable ? "prefix caching on" : "prefix caching off"),
              std::string::npos);
  }
}

// Prompt log-probabilities need logits at every prompt position: such a request computes its whole
// prompt even when it is cached (and is not counted as a prefix-cache query).
TEST(ServePrefixCache, EchoLogprobsComputeTheWholePrompt) {
  QMETER_REQUIRE_SHARED_DATA(path, kStories);
  std::shared_ptr<const engine::Model> model(engine::load_model(path).release());
  const auto w = shared_prefix(1, 1, 40, 8, model->tokenizer->bos_id());
  const std::vector<int>& prompt = w.prompts[0];
  Server s = serve(model, {});
  ASSERT_EQ(complete(s.base, prompt, 2, false).status, 200);  // caches its 3 whole blocks
  const double queries = s.metric("vllm:prefix_cache_queries_total");
  const json req = {{"prompt", prompt}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 0}, {"temperature", 0}};
  auto [code, body] = http_fetch(s.base + "/v1/completions", req.dump());
  ASSERT_EQ(code, 200) << body;
  const auto lp = json::parse(body)["choices"][0]["logprobs"]["token_logprobs"];
  ASSERT_EQ(lp.size(), prompt.size());
  engine::Session ref(*model, nullptr);
  const auto logits = ref.feed_all(prompt);
  const auto V = static_cast<std::size_t>(model->config.vocab_size);
  for (std::size_t i = 1; i < prompt.size(); ++i)
    EXPECT_NEAR(lp[i].get<double>(), engine::token_logprob(logits.subspan((i - 1) * V, V), prompt[i]), 1e-4) << i;
  EXPECT_EQ(s.metric("vllm:prefix_cache_queries_total"), queries);
  EXPECT_EQ(s.metric("qmeter:prefill_tokens_computed_total"), 2.0 * static_cast<double>(prompt.size()));
}
