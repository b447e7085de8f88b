#include "qmeter/quality/task_options.h"

#include <limits>

namespace qmeter::quality {

const std::vector<OptionSpec>& task_option_schema() {
  using O = OptionSpec;
  const double inf = std::numeric_limits<double>::infinity();
  // Defaults as the quality phase applies them (EvalOptions' own defaults are the CLI's).
  static const std::vector<OptionSpec> table = {
      O::integer("limit", "0", "items scored (0: all)", 0),
      O::integer("concurrency", "4", "requests in flight", 1),
      O::choice("ppl_mode", "document", {"document", "window"}, "perplexity: whole documents or fixed windows"),
      O::integer("window", "0", "perplexity window in tokens (0: the context length)", 0),
      O::integer("max_length", "0", "document mode: tokens per scoring request (0: the context length - 1)", 0),
      O::integer("truncate", "0", "document mode: keep each document's first N tokens (0: all)", 0),
      O::integer("num_fewshot", "5", "few-shot exemplars (gsm8k, mmlu)", 0),
      O::text("fewshot", "gsm8k: exemplars file (default: the first items, excluded from scoring)"),
      O::text("fewshot_split", "mmlu: the dev (few-shot) file (default: mmlu_dev.jsonl beside the test file)"),
      O::choice("preprocess", "", {"hellaswag"}, "mc: lm-eval's HellaSwag preprocessing"),
      O::boolean("apply_chat_template", "render prompts through the model's chat template"),
      O::boolean("fewshot_as_multiturn", "with apply_chat_template: each few-shot example a user and an assistant turn"),
      O::text("chat_template", "the chat template: tokenizer_config.json, a model folder, a .gguf or a template file"),
      O::integer("max_gen_tokens", "256", "generation tasks: most tokens generated per item", 1),
      O::integer("top_logprobs", "20", "kl through a server: the top-N log-probs compared", 1, 20),
      O::text("text", "kl: the text both models score"),
      O::text("baseline", "kl: a server URL, or a method scored in-process (default fp32)"),
      O::text("baseline_model", "kl: the baseline server's model name (default: the run's)"),
      O::integer("threads", "2", "kl in-process: compute threads per engine", 1, inf),
  };
  return table;
}

}  // namespace qmeter::quality
