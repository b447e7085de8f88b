// The quality phase of a run: each task of the spec's `quality` list scored through the run's
// backend (the same OpenAI-compatible API the load uses), stored with its items in one
// transaction per task.
//
// Task options (spec `quality[].options`): limit, concurrency, ppl_mode, window, max_length,
// truncate, num_fewshot, fewshot_split (mmlu dev file), preprocess (mc: hellaswag),
// apply_chat_template (true/false), chat_template (tokenizer_config.json, model folder, .gguf or
// template file), fewshot_as_multiturn (true/false),
// fewshot (exemplars file), max_gen_tokens, top_logprobs, text (kl: the text scored), baseline
// (kl: a server URL, or a method name scored in-process; default fp32).
//
// kl on the embedded backend compares two in-process engines (the run's method and the baseline
// method, loaded here through the same quantization registry the backend uses), so it is the
// exact full-vocabulary KL; on a command or url backend it is the top-N KL against `baseline`.
#include <fmt/format.h>

#include "qmeter/core/error.h"
#include "qmeter/quality/eval.h"
#include "qmeter/quant/quantize.h"
#include "run_hooks.h"

namespace qmeter::exec {

namespace {

int int_option(const std::map<std::string, std::string>& o, const char* key, int fallback, const std::string& task) {
  auto it = o.find(key);
  if (it == o.end()) return fallback;
  try {
    std::size_t used = 0;
    const int v = std::stoi(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  throw UsageError(fmt::format("quality task {}: option {} = '{}' is not an integer", task, key, it->second));
}

std::string str_option(const std::map<std::string, std::string>& o, const char* key, const std::string& fallback = "") {
  auto it = o.find(key);
  return it == o.end() ? fallback : it->second;
}

}  // namespace

// One task, scored and stored (throws on failure).
void run_quality_task(const spec::RunConfig& run, const spec::QualityTask& t, backend::Backend& backend,
                      quality::Scorer& api_scorer, const quality::Capabilities& caps,
                      std::shared_ptr<const engine::Model>& local_model, store::Store& db, const StudyOptions& options);

void run_quality_phase(const spec::RunConfig& run, backend::Backend& backend, store::Store& db,
                       const StudyOptions& options) {
  if (run.quality.empty()) return;
  auto api = quality::make_server_scorer({backend.base_url(), backend.served_model(), "", 600});
  std::shared_ptr<const engine::Model> local_model;  // the run's model in-process (kl, embedded)
  // What the server serves, asked once: a task it cannot serve is stored "unsupported" with the
  // reason and not run. A probe that cannot reach the server fails every task (below).
  quality::Capabilities caps;
  std::string probe_error;
  try {
    caps = api->probe_capabilities();
  } catch (const std::exception& e) {
    probe_error = e.what();
  }
  for (const auto& t : run.quality) {
    // One task's failure (a server error, a timeout) is stored as that task's error; the other
    // tasks and the run's load points stand.
    try {
      if (!probe_error.empty()) throw Error(probe_error);
      run_quality_task(run, t, backend, *api, caps, local_model, db, options);
    } catch (const quality::UnsupportedTask& u) {
      db.write_quality_error(run.id, t.task, "unsupported", u.what());
      if (options.progress) fmt::print(stderr, "  quality {}: unsupported by the server: {}\n", t.task, u.what());
    } catch (const std::exception& e) {
      db.write_quality_error(run.id, t.task, "failed", e.what());
      if (options.progress) fmt::print(stderr, "  quality {}: FAILED: {}\n", t.task, e.what());
    }
  }
}

void run_quality_task(const spec::RunConfig& run, const spec::QualityTask& t, backend::Backend& backend,
                      quality::Scorer& api_scorer, const quality::Capabilities& caps,
                      std::shared_ptr<const engine::Model>& local_model, store::Store& db, const StudyOptions& options) {
  const bool embedded = run.backend.kind == "embedded";
  auto* api = &api_scorer;
  {
    const quality::TaskSpec spec = quality::parse_task_spec(t.task);
    quality::EvalOptions eo;
    const auto& o = t.options;
    eo.limit = int_option(o, "limit", 0, t.task);
    eo.concurrency = int_option(o, "concurrency", 4, t.task);
    eo.ppl_mode = str_option(o, "ppl_mode", "document");
    eo.window = int_option(o, "window", 0, t.task);
    eo.max_length = int_option(o, "max_length", 0, t.task);
    eo.truncate = int_option(o, "truncate", 0, t.task);
    eo.num_fewshot = int_option(o, "num_fewshot", 5, t.task);
    eo.fewshot_path = str_option(o, "fewshot");
    eo.fewshot_split = str_option(o, "fewshot_split");
    eo.preprocess = str_option(o, "preprocess");
    eo.chat_template_path = str_option(o, "chat_template");
    for (auto [name, flag] : {std::pair{"apply_chat_template", &eo.apply_chat_template},
                              std::pair{"fewshot_as_multiturn", &eo.fewshot_as_multiturn}}) {
      const auto v = str_option(o, name, "false");
      if (v != "true" && v != "1" && v != "yes" && v != "false" && v != "0" && v != "no")
        throw UsageError(fmt::format("quality task {}: option {} = '{}' is not true or false", t.task, name, v));
      *flag = v == "true" || v == "1" || v == "yes";
    }
    eo.max_gen_tokens = int_option(o, "max_gen_tokens", 256, t.task);
    eo.top_logprobs = int_option(o, "top_logprobs", 20, t.task);
    eo.kl_text = str_option(o, "text");
    eo.seed = run.seed;
    eo.capabilities = caps;
    // The task library names a bad option by its spec field (quality[N].max_length), not a CLI flag.
    eo.field_names = FieldNames::spec(fmt::format("quality[{}]", &t - run.quality.data()));
    if (options.progress) {
      eo.progress = [&](int done, int total) {
        if (done == total) fmt::print(stderr, "  quality {}: {} items\n", t.task, total);
      };
    }
    quality::TaskResult result;
    if (spec.kind == "kl") {
      const std::string baseline = str_option(o, "baseline", spec.arg.empty() ? "fp32" : spec.arg);
      if (baseline.rfind("http://", 0) == 0 || baseline.rfind("https://", 0) == 0) {
        auto base = quality::make_server_scorer({baseline, str_option(o, "baseline_model", backend.served_model()), "", 600});
        if (const auto why = quality::unsupported_reason(spec, eo, caps); !why.empty()) throw quality::UnsupportedTask(why);
        result = quality::run_task(spec, *api, eo, base.get());
      } else if (embedded) {
        const int threads = std::max(1, int_option(o, "threads", 2, t.task));
        if (!local_model) local_model = quant::load_quantized_from_options(run.model.path, run.method.name, run.method.options);
        auto mine = quality::make_engine_scorer(local_model, threads);
        auto base = quality::make_engine_scorer(quant::load_quantized_from_options(run.model.path, baseline, {}), threads);
        result = quality::run_task(spec, *mine, eo, base.get());
      } else {
        throw UsageError(fmt::format("quality task {}: on a {} backend the baseline must be a server URL (option baseline)",
                                     t.task, run.backend.kind));
      }
    } else {
      if (const auto why = quality::unsupported_reason(spec, eo, caps); !why.empty()) throw quality::UnsupportedTask(why);
      result = quality::run_task(spec, *api, eo);
    }
    std::vector<store::QualityResultRow> rows;
    for (const auto& m : result.metrics) rows.push_back({run.id, t.task, m.name, m.value, m.stderr_, m.n});
    std::vector<store::QualityItemRow> items;
    for (const auto& it : result.items) items.push_back({it.index, it.json});
    db.write_quality(run.id, t.task, rows, items);
  }
}

}  // namespace qmeter::exec
