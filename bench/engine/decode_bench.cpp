// Decode / prefill benchmark of the embedded engine on a synthetic LLaMA-1B shape (seeded random
// weights, labelled SYNTHETIC): decode tokens/s at batch 1 and batch 16, prefill tokens/s, for
// BF16 and FP32 weights, and the fraction of the memory-bandwidth roofline batch-1 decode
// reaches: decode weight bytes x tokens/s / measured read bandwidth (same process, same threads).
//   decode_bench [--model SPEC] [--dtypes bf16,f32] [--threads 2] [--steps 16] [--batch 16]
//                [--prefill 128] [--context 32]
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "qmeter/engine/forward.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/thread_pool.h"

using namespace qmeter::engine;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string model = "synthetic:llama-1b";
  std::vector<std::string> dtypes = {"bf16", "f32"};
  int threads = 2;
  int steps = 16;    // decode steps timed
  int batch = 16;    // sequences of the batched decode
  int prefill = 128; // prompt tokens of the prefill figure
  int context = 32;  // tokens already in each sequence's cache before decode is timed
};

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::vector<int> tokens(int n, int seed, int vocab) {
  std::vector<int> t(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<std::size_t>(i)] = 3 + (seed * 7919 + i * 104729) % (vocab - 3);
  return t;
}

// Decode tokens/s with `batch` sequences that each hold `context` tokens, over `steps` steps.
double decode_tokens_per_s(const Model& m, ThreadPool& pool, int batch, int context, int steps) {
  ForwardPass pass(m, &pool);
  std::vector<std::unique_ptr<KvCache>> kvs;
  std::vector<std::vector<int>> prompts;
  std::vector<SequenceInput> in;
  for (int b = 0; b < batch; ++b) {
    kvs.push_back(std::make_unique<KvCache>(KvLayout::for_model(m.config), context + steps + 2));
    prompts.push_back(tokens(context, b, m.config.vocab_size));
  }
  for (int b = 0; b < batch; ++b) in.push_back({kvs[static_cast<std::size_t>(b)].get(), prompts[static_cast<std::size_t>(b)], LogitsWanted::kLast});
  pass.run(in);
  std::vector<std::array<int, 1>> next(static_cast<std::size_t>(batch));
  auto step = [&] {
    in.clear();
    for (int b = 0; b < batch; ++b) {
      auto l = pass.logits(b);
      next[static_cast<std::size_t>(b)][0] = static_cast<int>(std::max_element(l.begin(), l.end()) - l.begin());
      in.push_back({kvs[static_cast<std::size_t>(b)].get(), next[static_cast<std::size_t>(b)], LogitsWanted::kLast});
    }
    pass.run(in);
  };
  step();  // warm-up
  const auto t0 = Clock::now();
  for (int s = 0; s < steps; ++s) step();
  return static_cast<double>(batch) * steps / seconds_since(t0);
}

double prefill_tokens_per_s(const Model& m, ThreadPool& pool, int n) {
  ForwardPass pass(m, &pool);
  const std::vector<int> prompt = tokens(n, 99, m.config.vocab_size);
  double best = 0;
  for (int rep = 0; rep < 2; ++rep) {
    KvCache kv(KvLayout::for_model(m.config), n + 1);
    const SequenceInput in{&kv, prompt, LogitsWanted::kLast};
    const auto t0 = Clock::now();
    pass.run({&in, 1});
    best = std::max(best, n / seconds_since(t0));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "decode_bench: %s needs a value\n", f.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (f == "--model") a.model = value();
    else if (f == "--threads") a.threads = std::stoi(value());
    else if (f == "--steps") a.steps = std::stoi(value());
    else if (f == "--batch") a.batch = std::stoi(value());
    else if (f == "--prefill") a.prefill = std::stoi(value());
    else if (f == "--context") a.context = std::stoi(value());
    else if (f == "--dtypes") {
      a.dtypes.clear();
      std::string v = value();
      for (std::size_t p = 0; p <= v.size();) {
        const std::size_t c = std::min(v.find(',', p), v.size());
        a.dtypes.push_back(v.substr(p, c - p));
        p = c + 1;
      }
    } else {
      std::fprintf(stderr, "usage: decode_bench [--model SPEC] [--dtypes bf16,f32] [--threads N] [--steps N] "
                           "[--batch N] [--prefill N] [--context N]\n");
      return 2;
    }
  }
  ThreadPool pool(a.threads);
  const auto bw = qmeter::bench::measure_read_bandwidth(a.threads);
  fmt::print("memory read bandwidth: {:.2f} GB/s ({} threads, {} MiB streamed, best of 5)\n", bw.gb_per_s, bw.threads,
             bw.bytes >> 20);
  fmt::print("kernels: {}\n\n", isa_name(detected_isa()));
  fmt::print("{:<6} {:>10} {:>14} {:>14} {:>10} {:>16} {:>14}\n", "dtype", "weights", "decode b=1", "roofline b=1",
             "fraction", fmt::format("decode b={}", a.batch), "prefill");
  for (const std::string& dt : a.dtypes) {
    LoadOptions o;
    o.weight_dtype = parse_dtype(dt, "--dtypes");
    const auto t0 = Clock::now();
    auto m = load_model(a.model, o);
    fmt::print(stderr, "{} (built in {:.1f} s)\n", m->description, seconds_since(t0));
    const double bytes = static_cast<double>(m->decode_weight_bytes());
    const double roofline = bw.gb_per_s * 1e9 / bytes;
    const double d1 = decode_tokens_per_s(*m, pool, 1, a.context, a.steps);
    const double dn = decode_tokens_per_s(*m, pool, a.batch, a.context, std::max(2, a.steps / 2));
    const double pf = prefill_tokens_per_s(*m, pool, a.prefill);
    fmt::print("{:<6} {:>8.2f}GB {:>10.2f} t/s {:>10.2f} t/s {:>9.1f}% {:>12.2f} t/s {:>10.1f} t/s\n", dt, bytes / 1e9,
               d1, roofline, 100.0 * d1 / roofline, dn, pf);
    std::fflush(stdout);
  }
  fmt::print("\n(model {}: SYNTHETIC random weights when the spec is synthetic:; decode weight bytes = every layer "
             "matrix + classifier; batch-1 context {} tokens; prefill {} tokens in one pass)\n",
             a.model, a.context, a.prefill);
  return 0;
}
