// Decode / prefill benchmark of the embedded engine on synthetic model shapes (seeded random
// weights, labelled SYNTHETIC): decode tokens/s at batch 1 and batch N, prefill tokens/s for one
// or more prompt lengths, per weight type, each figure also as a ratio to the first type of the
// table (the f16 / bf16 reference of the same run), and the fraction of the memory-bandwidth
// roofline decode reaches: batch x tokens/s x weight bytes per step / measured read bandwidth
// (same process, same threads). Prefill is compute-bound: no roofline.
//   decode_bench [--model SPEC] [--dtypes bf16,f32] [--threads 2] [--steps 16] [--batch 16]
//                [--prefill 128[,512...]] [--context 32] [--no-b1]
//   decode_bench --suite tinyllama [--threads 2]
// --suite tinyllama is the speed-target run of issue #17 on synthetic:tinyllama-1.1b: batch-1
// decode and prefill of 64 and 512 tokens for f16, q8_0, q4_0, q4_k, q6_k (ratios to f16), then decode
// at batch 16 for bf16, w4a16, w8a16 (ratios to bf16). Quantized types are built directly in
// their format (loader_synthetic.cpp), one model at a time (peak ~2.3 GB, the f16 model).
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

struct Table {
  std::string model = "synthetic:llama-1b";
  std::vector<std::string> dtypes = {"bf16", "f32"};  // the first is the reference of the ratios
  bool decode1 = true;               // batch-1 decode figure
  int batch = 16;                    // sequences of the batched decode (0: none)
  std::vector<int> prefill = {128};  // prompt lengths of the prefill figures
};

struct Args {
  std::vector<Table> tables = {Table{}};
  int threads = 2;
  int steps = 16;    // decode steps timed
  int context = 32;  // tokens already in each sequence's cache before decode is timed
};

// The model of one table row: a synthetic spec without a type gets the row's type appended
// (quantized types are built directly in their format), any other spec loads converted to it.
std::unique_ptr<Model> load_row(const std::string& model, const std::string& dt) {
  LoadOptions o;
  if (model.rfind("synthetic:", 0) == 0 && model.find(':', 10) == std::string::npos) return load_model(model + ":" + dt, o);
  o.weight_dtype = parse_dtype(dt, "--dtypes");
  return load_model(model, o);
}

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
  for (int rep = 0; rep < (n >= 256 ? 1 : 2); ++rep) {  // a long prompt is one long enough sample
    KvCache kv(KvLayout::for_model(m.config), n + 1);
    const SequenceInput in{&kv, prompt, LogitsWanted::kLast};
    const auto t0 = Clock::now();
    pass.run({&in, 1});
    best = std::max(best, n / seconds_since(t0));
  }
  return best;
}


void run_table(const Table& t, const Args& a, ThreadPool& pool, double gb_per_s) {
  std::string header = fmt::format("{:<7} {:>8}", "dtype", "weights");
  if (t.decode1) header += fmt::format(" {:>11} {:>6} {:>9}", "decode b=1", "ratio", "roofline");
  if (t.batch > 0) header += fmt::format(" {:>11} {:>6} {:>9}", fmt::format("decode b={}", t.batch), "ratio", "roofline");
  for (int n : t.prefill) header += fmt::format(" {:>12} {:>6}", fmt::format("prefill {}", n), "ratio");
  fmt::print("{}\n(model {}; tokens/s; ratio = to {} of this run; roofline = fraction of batch x {:.2f} GB/s / weight bytes)\n{}\n",
             std::string(header.size(), '-'), t.model, t.dtypes.front(), gb_per_s, header);
  std::vector<double> ref;  // the reference row's figures, in column order
  for (const std::string& dt : t.dtypes) {
    const auto t0 = Clock::now();
    auto m = load_row(t.model, dt);
    fmt::print(stderr, "{} (built in {:.1f} s)\n", m->description, seconds_since(t0));
    const double bytes = static_cast<double>(m->decode_weight_bytes());
    std::vector<double> figs;
    std::string line = fmt::format("{:<7} {:>6.2f}GB", dt, bytes / 1e9);
    auto add = [&](double v, bool roof, int batch) {
      const std::size_t col = figs.size();
      figs.push_back(v);
      line += fmt::format(" {:>11.2f} {:>5.2f}x", v, ref.empty() ? 1.0 : v / ref[col]);
      if (roof) line += fmt::format(" {:>8.1f}%", 100.0 * v * bytes / batch / (gb_per_s * 1e9));
    };
    if (t.decode1) add(decode_tokens_per_s(*m, pool, 1, a.context, a.steps), true, 1);
    if (t.batch > 0) add(decode_tokens_per_s(*m, pool, t.batch, a.context, std::max(2, a.steps / 2)), true, t.batch);
    for (int n : t.prefill) add(prefill_tokens_per_s(*m, pool, n), false, 1);
    if (ref.empty()) ref = figs;
    fmt::print("{}\n", line);
    std::fflush(stdout);
  }
  fmt::print("\n");
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  Table& t = a.tables.front();
  bool suite = false;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "decode_bench: %s needs a value\n", f.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (f == "--model") t.model = value();
    else if (f == "--threads") a.threads = std::stoi(value());
    else if (f == "--steps") a.steps = std::stoi(value());
    else if (f == "--batch") t.batch = std::stoi(value());
    else if (f == "--context") a.context = std::stoi(value());
    else if (f == "--no-b1") t.decode1 = false;
    else if (f == "--dtypes") t.dtypes = qmeter::bench::split_commas(value());
    else if (f == "--prefill") {
      t.prefill.clear();
      for (const std::string& n : qmeter::bench::split_commas(value()))
        if (std::stoi(n) > 0) t.prefill.push_back(std::stoi(n));
    } else if (f == "--suite" && value() == "tinyllama") {
      suite = true;
    } else {
      std::fprintf(stderr, "usage: decode_bench [--model SPEC] [--dtypes bf16,f32] [--threads N] [--steps N] "
                           "[--batch N] [--prefill N[,N...]] [--context N] [--no-b1] | --suite tinyllama [--threads N]\n");
      return 2;
    }
  }
  if (suite) {
    const std::string m = "synthetic:tinyllama-1.1b";
    a.tables = {Table{m, {"f16", "q8_0", "q4_0", "q4_k", "q6_k"}, true, 0, {64, 512}},
                Table{m, {"bf16", "w4a16", "w8a16"}, false, 16, {}}};
  }
  if (a.tables.front().dtypes.empty()) {
    std::fprintf(stderr, "decode_bench: --dtypes is empty\n");
    return 2;
  }
  ThreadPool pool(a.threads);
  const auto bw = qmeter::bench::measure_read_bandwidth(a.threads);
  fmt::print("memory read bandwidth: {:.2f} GB/s ({} threads, {} MiB streamed, best of 5)\n", bw.gb_per_s, bw.threads,
             bw.bytes >> 20);
  fmt::print("kernels: {}, {} threads\n\n", isa_name(detected_isa()), a.threads);
  for (const Table& table : a.tables) run_table(table, a, pool, bw.gb_per_s);
  fmt::print("(SYNTHETIC random weights when the spec is synthetic:; decode weight bytes = every layer matrix + "
             "classifier; decode context {} tokens; prefill in one pass)\n", a.context);
  return 0;
}
