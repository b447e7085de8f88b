#include "embedded_backend_options.h"

namespace qmeter::exec {

const std::vector<OptionSpec>& embedded_backend_option_schema() {
  using O = OptionSpec;
  // The embedded backend reads these into server::ServeOptions (embedded_backend.cpp); `true` /
  // `false` only for the switch, as it reads it.
  static const std::vector<OptionSpec> table = {
      O::integer("threads", "", "engine compute threads", 1, 1024),
      O::integer("max_num_seqs", "", "most sequences in one batch", 1, 100000),
      O::integer("max_num_batched_tokens", "", "most tokens in one step", 1, 10000000),
      O::number("kv_cache_mb", "256", "KV-cache pool size in MiB", 1, 1 << 24),
      O::integer("max_model_len", "", "cap the context length", 1),
      O::choice("enable_prefix_caching", "true", {"true", "false"}, "reuse the KV blocks of prompt prefixes seen before"),
  };
  return table;
}

}  // namespace qmeter::exec
