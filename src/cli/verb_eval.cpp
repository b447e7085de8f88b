// `qmeter eval`: quality tasks against an OpenAI-compatible server (--base-url) or the embedded
// engine in-process (--model without --base-url, optionally quantized), with
// lm-evaluation-harness-shaped JSON.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "flag_names.h"
#include "qmeter/engine/model.h"
#include "qmeter/quality/eval.h"
#include "qmeter/quant/quantize.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

struct EvalArgs {
  // --model: with --base-url the model the server serves (requests name it unless
  // --served-model-name is given); without, the model loaded in-process.
  std::string base_url, model, served_model_name, api_key;
  std::string quantization = "fp32", kv_cache_dtype;
  std::map<std::string, std::string> quant_options;
  std::vector<std::string> tasks;
  std::string kl_baseline_model, output_json;
  int threads = 0;
  double timeout_s = 300;
  quality::EvalOptions opts;
};

// `kv_cache_dtype` applies to the scored model only: a kl:METHOD baseline keeps the f32 KV cache,
// so KL measures what the KV quantization (with the weight method) costs.
std::unique_ptr<quality::Scorer> engine_scorer(const EvalArgs& a, const std::string& method, const std::string& kv_cache_dtype) {
  auto options = a.quant_options;
  std::string calib;  // the registry's `calib` option is the calibration text, passed on its own
  if (auto it = options.find("calib"); it != options.end()) {
    calib = it->second;
    options.erase(it);
  }
  if (!kv_cache_dtype.empty()) options["kv-cache-dtype"] = kv_cache_dtype;
  auto model = quant::load_quantized(a.model, method, options, calib);
  const int threads = a.threads > 0 ? a.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return quality::make_engine_scorer(std::move(model), threads);
}

void run_eval(EvalArgs& a) {
  const bool in_process = a.base_url.empty();
  if (in_process && a.model.empty())
    throw UsageError("give --base-url (score a server) or --model PATH without it (score the embedded engine in-process)");
  if (in_process && !a.served_model_name.empty())
    throw UsageError("--served-model-name names the model in requests to --base-url; in-process there is no server");
  if (!a.kv_cache_dtype.empty() && !in_process)
    throw UsageError("--kv-cache-dtype applies to the embedded engine (no --base-url); a server chooses its own KV cache");
  // vLLM's rule: requests name --served-model-name, else --model ("default" when neither is given).
  const std::string request_model =
      !a.served_model_name.empty() ? a.served_model_name : !a.model.empty() ? a.model : std::string("default");
  if (a.tasks.empty()) throw UsageError("--task is required (e.g. perplexity:PATH, mc:PATH, gsm8k:PATH, kl:BASE_URL)");
  std::vector<quality::TaskSpec> specs;
  for (const auto& t : a.tasks) specs.push_back(quality::parse_task_spec(t));
  std::unique_ptr<quality::Scorer> scorer;
  if (in_process) {
    scorer = engine_scorer(a, a.quantization, a.kv_cache_dtype);
  } else {
    scorer = quality::make_server_scorer({a.base_url, request_model, a.api_key, a.timeout_s});
  }
  // --apply-chat-template in-process: the template of the model itself (its GGUF metadata or its
  // folder's tokenizer_config.json) unless --chat-template names one.
  if (a.opts.apply_chat_template && a.opts.chat_template_path.empty() && in_process) a.opts.chat_template_path = a.model;
  fmt::print(stderr, "scoring {}\n", scorer->describe());
  // Once, before any task: what the server can serve decides which tasks run.
  a.opts.capabilities = scorer->probe_capabilities();
  a.opts.progress = [](int done, int total) {
    if (done == total || done % std::max(1, total / 20) == 0) fmt::print(stderr, "\r  {}/{}", done, total);
    if (done == total) fmt::print(stderr, "\n");
  };
  std::vector<quality::TaskResult> results;
  for (const auto& spec : specs) {
    std::unique_ptr<quality::Scorer> baseline;
    if (spec.kind == "kl") {
      if (spec.arg.empty()) throw UsageError("kl needs its baseline: kl:BASE_URL (or kl:METHOD in-process)");
      if (in_process) {
        baseline = engine_scorer(a, spec.arg, "f32");
      } else {
        baseline = quality::make_server_scorer({spec.arg, a.kl_baseline_model.empty() ? request_model : a.kl_baseline_model,
                                                a.api_key, a.timeout_s});
      }
    }
    if (const auto why = quality::unsupported_reason(spec, a.opts, a.opts.capabilities); !why.empty()) {
      fmt::print(stderr, "task {}: unsupported by the server: {}\n", spec.name(), why);
      results.push_back(quality::unsupported_result(spec, why));
      continue;
    }
    fmt::print(stderr, "task {}\n", spec.name());
    results.push_back(quality::run_task(spec, *scorer, a.opts, baseline.get()));
  }
  for (const auto& line : quality::results_table(results)) fmt::print("{}\n", line);
  if (!a.output_json.empty()) {
    nlohmann::json config = {{"scorer", scorer->describe()},     {"limit", a.opts.limit},
                             {"concurrency", a.opts.concurrency}, {"ppl_mode", a.opts.ppl_mode},
                             {"max_length", a.opts.max_length},   {"truncate", a.opts.truncate},
                             {"apply_chat_template", a.opts.apply_chat_template},
                             {"fewshot_as_multiturn", a.opts.fewshot_as_multiturn},
                             {"num_fewshot", a.opts.num_fewshot}, {"top_logprobs", a.opts.top_logprobs},
                             {"capabilities", nlohmann::json::parse(a.opts.capabilities.json())}};
    std::ofstream out(a.output_json, std::ios::binary);
    out << quality::results_json(results, config.dump());
    if (!out.flush()) throw Error(fmt::format("--output-json {}: cannot write the file", a.output_json));
    fmt::print(stderr, "wrote {}\n", a.output_json);
  }
}

}  // namespace

void add_eval_verb(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Score quality tasks (perplexity, multiple choice, GSM8K, KL fidelity)");
  cmd->add_option("--base-url", args->base_url, "OpenAI-compatible server to score");
  cmd->add_option(renamed("--model", {"--engine-model"}), args->model,
                  "with --base-url: the model the server serves (requests name it; default 'default'); without: the "
                  "model to score in-process (llama2.c .bin, HF folder, .gguf, synthetic:SHAPE)");
  cmd->add_option("--served-model-name", args->served_model_name, "with --base-url: model name sent in requests (default: --model)");
  cmd->add_option("--api-key", args->api_key, "bearer token");
  cmd->add_option("--quantization,-q", args->quantization, "in-process: method applied to --model: " + quantization_methods())->capture_default_str();
  add_quant_option_flags(cmd, &args->quant_options, /*old_quant_option=*/true);
  cmd->add_option("--kv-cache-dtype", args->kv_cache_dtype,
                  "in-process KV-cache element type: f32 (default), int8 or fp8 (a kl:METHOD baseline keeps f32)");
  cmd->add_option("--task", args->tasks, "perplexity:PATH | mc:PATH | winogrande:PATH | lambada:PATH | mmlu:PATH | truthfulqa_mc:PATH | gsm8k:PATH | kl:BASE_URL (repeatable)");
  cmd->add_option("--limit", args->opts.limit, "items per task (0: all)");
  cmd->add_option(renamed("--max-concurrency", {"--concurrency"}), args->opts.concurrency, "requests in flight at most")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--ppl-mode", args->opts.ppl_mode, "document | window");
  cmd->add_option("--window", args->opts.window, "window length in tokens for --ppl-mode window");
  cmd->add_option("--max-length", args->opts.max_length,
                  "--ppl-mode document: tokens per scoring request; longer documents are scored in rolling "
                  "windows, every token once (default: the context length - 1)");
  cmd->add_option("--truncate", args->opts.truncate, "--ppl-mode document: keep each document's first N tokens (0: all)");
  cmd->add_option("--num-fewshot", args->opts.num_fewshot, "gsm8k exemplars and mmlu shots (default 5)");
  cmd->add_option("--fewshot-file", args->opts.fewshot_path, "gsm8k exemplars file (default: the first items)");
  cmd->add_option("--fewshot-split", args->opts.fewshot_split, "mmlu: the dev file of few-shot examples (default: mmlu_dev.jsonl beside the test file)");
  cmd->add_flag("--apply-chat-template", args->opts.apply_chat_template,
               "render prompts through the model's chat template, as lm-eval's --apply_chat_template (--chat-template; "
               "default: the in-process --model's own; gsm8k without one: the server's /v1/chat/completions)");
  cmd->add_option("--chat-template", args->opts.chat_template_path,
                  "the chat template: tokenizer_config.json, a model folder, a .gguf, or a file with the template text");
  cmd->add_flag("--fewshot-as-multiturn", args->opts.fewshot_as_multiturn,
               "with --apply-chat-template: each few-shot example a user and an assistant turn (default: one user turn)");
  cmd->add_option("--preprocess", args->opts.preprocess, "mc: 'hellaswag' applies lm-eval's HellaSwag preprocessing");
  cmd->add_option(renamed("--max-tokens", {"--max-gen-tokens"}), args->opts.max_gen_tokens, "gsm8k: tokens to generate at most per answer")
      ->capture_default_str();
  cmd->add_option("--top-logprobs", args->opts.top_logprobs, "kl through servers: top-N log-probabilities (1..20)");
  cmd->add_option("--kl-text", args->opts.kl_text, "kl: the text both models score");
  cmd->add_option("--kl-baseline-model", args->kl_baseline_model, "kl: model name on the baseline server");
  cmd->add_option("--bootstrap", args->opts.bootstrap_resamples, "bootstrap resamples for standard errors");
  cmd->add_option("--seed", args->opts.seed, "bootstrap seed");
  cmd->add_option("--threads", args->threads, "in-process: compute threads (default: all cores)");
  cmd->add_option(renamed("--timeout-s", {"--timeout"}), args->timeout_s, "per-request timeout in seconds")->capture_default_str();
  cmd->add_option("--output-json", args->output_json, "write results here");
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace qmeter::cli
