// `qmeter generate`: run the embedded engine on one prompt, stream the text, report tokens/s.
#include <fmt/core.h>

#include <cstdio>
#include <memory>
#include <thread>

#include "qmeter/core/error.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/session.h"
#include "flag_names.h"
#include "qmeter/engine/thread_pool.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

struct GenerateArgs {
  std::string model;
  std::string tokenizer;
  std::string prompt;
  std::string dtype;
  std::string kv_cache_dtype = "f32";
  int max_tokens = 256;
  float temperature = 0.0f;
  int top_k = 0;
  float top_p = 1.0f;
  std::uint64_t seed = 0;
  int threads = 0;
  int max_seq_len = 0;
};

void run_generate(const GenerateArgs& a) {
  using namespace qmeter::engine;
  if (a.max_tokens < 0) throw UsageError("--max-tokens must be >= 0");
  if (!(a.top_p > 0.0f && a.top_p <= 1.0f)) throw UsageError(fmt::format("--top-p must be in (0, 1], got {}", a.top_p));
  if (a.top_k < 0) throw UsageError("--top-k must be >= 0");
  if (a.threads < 0) throw UsageError("--threads must be >= 1");
  const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  LoadOptions opts;
  if (!a.dtype.empty()) opts.weight_dtype = parse_dtype(a.dtype, "--dtype");
  opts.tokenizer_path = a.tokenizer;
  opts.max_seq_len = a.max_seq_len;
  opts.kv_cache_dtype = parse_kv_dtype(a.kv_cache_dtype, "--kv-cache-dtype");
  auto model = load_model(a.model, opts);
  if (!model->tokenizer)
    throw UsageError(fmt::format("--model '{}' has no tokenizer beside it; pass --tokenizer", a.model));
  const Tokenizer& tok = *model->tokenizer;
  fmt::print(stderr, "model: {}\n", model->description);

  std::vector<int> prompt = tok.encode(a.prompt, tok.add_bos_by_default());
  if (prompt.empty()) {
    if (tok.bos_id() < 0) throw UsageError("--prompt is empty and the tokenizer has no BOS token to start from");
    prompt.push_back(tok.bos_id());
  }
  if (static_cast<int>(prompt.size()) >= model->config.max_seq_len)
    throw UsageError(fmt::format("--prompt has {} tokens; the model holds {} positions", prompt.size(),
                                 model->config.max_seq_len));
  ThreadPool pool(threads);
  Session session(*model, &pool);
  GenerateOptions g;
  g.max_tokens = a.max_tokens;
  g.sampling = SamplingParams{a.temperature, a.top_k, a.top_p, a.seed};
  std::vector<int> stops = tok.stop_ids();
  if (tok.bos_id() >= 0) stops.push_back(tok.bos_id());  // llama2.c separates stories with BOS

  std::fputs(a.prompt.c_str(), stdout);
  IncrementalDetokenizer detok(tok, /*strip_leading_space=*/a.prompt.empty());
  const GenerateResult r = generate(session, prompt, g, stops, [&](int id) {
    const std::string text = detok.push(id);
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  const std::string rest = detok.flush();
  std::fwrite(rest.data(), 1, rest.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
  const double prefill_tps = r.prefill_seconds > 0 ? r.prompt_tokens / r.prefill_seconds : 0.0;
  const double decode_tps = r.decode_seconds > 0 ? r.decode_steps / r.decode_seconds : 0.0;
  fmt::print(stderr,
             "prompt: {} tokens, prefill {:.1f} tokens/s; generated: {} tokens{}, decode {:.2f} tokens/s; "
             "{} threads, {} kernels\n",
             r.prompt_tokens, prefill_tps, r.tokens.size(), r.stopped_at_eos ? " (stopped at EOS)" : "", decode_tps,
             threads, isa_name(detected_isa()));
}

}  // namespace

void add_generate_verb(CLI::App& app) {
  auto args = std::make_shared<GenerateArgs>();
  auto* sub = app.add_subcommand("generate", "Generate text from a prompt with the embedded engine");
  sub->add_option("--model", args->model,
                  "llama2.c .bin, .gguf file, Hugging Face folder, or synthetic:SHAPE[:DTYPE[:SEED]]")
      ->required();
  sub->add_option("--prompt", args->prompt, "prompt text (empty: start from BOS)");
  sub->add_option("--max-tokens", args->max_tokens, "tokens to generate at most")->capture_default_str();
  sub->add_option("--temperature", args->temperature, "sampling temperature (0: greedy)")->capture_default_str();
  sub->add_option("--top-k", args->top_k, "keep the k most likely tokens (0: all)")->capture_default_str();
  sub->add_option("--top-p", args->top_p, "nucleus sampling mass (1: off)")->capture_default_str();
  sub->add_option("--seed", args->seed, "sampling seed")->capture_default_str();
  sub->add_option("--threads", args->threads, "compute threads (default: all cores)");
  sub->add_option("--dtype", args->dtype, "convert weights at load: f32, bf16 or f16");
  sub->add_option("--tokenizer", args->tokenizer, "tokenizer file (tok.bin, tokenizer.json, tokenizer.model)");
  sub->add_option(renamed("--max-model-len", {"--max-seq-len"}), args->max_seq_len, "cap the context length (KV-cache positions)");
  sub->add_option("--kv-cache-dtype", args->kv_cache_dtype, "KV-cache element type: f32, int8 or fp8 (per-head scales)")
      ->capture_default_str();
  sub->callback([args] { run_generate(*args); });
}

}  // namespace qmeter::cli
