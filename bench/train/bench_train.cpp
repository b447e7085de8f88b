// Prints the trainer's compute figures: GEMM GFLOPS for the forward (X W^T), input-gradient
// (dY W) and weight-gradient (dY^T X) layouts at the tiny preset's shapes, and the tokens/s and
// CPU time of one tiny-preset training step. Usage: bench_train [threads...]
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "qmeter/train/gemm.h"
#include "qmeter/train/model.h"
#include "qmeter/train/train.h"

using namespace qmeter::train;

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec * 1e-9;
}
}  // namespace

int main(int argc, char** argv) {
  std::vector<int> thread_counts;
  for (int i = 1; i < argc; ++i) thread_counts.push_back(std::atoi(argv[i]));
  if (thread_counts.empty()) thread_counts = {1, omp_get_num_procs()};
  const TrainPreset p = find_preset("tiny");
  const int rows = p.batch_size * p.model.max_seq_len, d = p.model.dim, f = p.model.ffn_dim;
  struct Case {
    const char* name;
    GemmShape s;
  } cases[] = {
      {"forward  X W^T  (tokens x ffn x dim)", {rows, f, d, false, true, false}},
      {"backward dY W   (tokens x dim x ffn)", {rows, d, f, false, false, false}},
      {"weights  dY^T X (ffn x dim x tokens)", {f, d, rows, true, false, true}},
      {"logits   X E^T  (tokens x vocab x dim)", {rows, p.model.vocab_size, d, false, true, false}},
  };
  SplitMix64 rng(1);
  for (int threads : thread_counts) {
    omp_set_num_threads(threads);
    std::printf("threads %d\n", threads);
    for (const auto& c : cases) {
      const auto& s = c.s;
      std::vector<float> a(static_cast<std::size_t>(s.m) * s.k), b(static_cast<std::size_t>(s.k) * s.n),
          out(static_cast<std::size_t>(s.m) * s.n);
      for (auto& x : a) x = static_cast<float>(rng.uniform());
      for (auto& x : b) x = static_cast<float>(rng.uniform());
      const int lda = s.trans_a ? s.m : s.k, ldb = s.trans_b ? s.k : s.n;
      gemm(s, a.data(), lda, b.data(), ldb, out.data(), s.n);
      const int reps = 20;
      const double t0 = now();
      for (int r = 0; r < reps; ++r) gemm(s, a.data(), lda, b.data(), ldb, out.data(), s.n);
      const double dt = (now() - t0) / reps;
      std::printf("  gemm %-40s %7.1f GFLOPS\n", c.name, 2.0 * s.m * s.n * s.k / dt / 1e9);
    }
    Transformer<float> model(p.model);
    model.init_random(1);
    std::vector<std::int32_t> in(rows), tg(rows);
    for (int i = 0; i < rows; ++i) {
      in[i] = static_cast<std::int32_t>(rng.below(p.model.vocab_size));
      tg[i] = static_cast<std::int32_t>(rng.below(p.model.vocab_size));
    }
    std::int64_t n = 0;
    model.forward_backward(in.data(), tg.data(), p.batch_size, p.model.max_seq_len, &n);
    const int steps = 5;
    const double t0 = now(), c0 = cpu_now();
    for (int s = 0; s < steps; ++s) model.forward_backward(in.data(), tg.data(), p.batch_size, p.model.max_seq_len, &n);
    const double dt = (now() - t0) / steps, cpu = (cpu_now() - c0) / steps;
    std::printf("  tiny preset step (%d tokens, %zu params): %.1f ms wall, %.1f ms CPU, %.0f tokens/s; "
                "%d steps ~ %.0f s wall\n",
                rows, model.layout().total(), dt * 1e3, cpu * 1e3, rows / dt, p.steps, dt * p.steps);
  }
  return 0;
}
