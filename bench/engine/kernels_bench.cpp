// Kernel benchmark: measured memory read bandwidth (1 and N threads), matrix-vector GB/s for
// F32 and BF16 weights on LLaMA-1B layer shapes with the fraction of the bandwidth roofline,
// batch-16 matrix-matrix GFLOP/s, and the thread pool's dispatch latency.
//   kernels_bench [--threads N] [--arena-mib M] [--isa NAME] [--seconds S]
// Every matrix is cycled through copies filling an arena several times larger than the
// last-level cache, so each call streams its weights from memory as decode does.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench_util.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/thread_pool.h"

using namespace qmeter::engine;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape {
  const char* name;
  int rows, cols;
};

// Fills the arena with weights of `dtype`: uniform in [-1, 1) (no subnormals, no NaN).
void fill_weights(void* arena, std::size_t bytes, DType dtype) {
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&] {
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return static_cast<float>(static_cast<std::int64_t>(state >> 40) - (1 << 23)) * 0x1p-23f;
  };
  if (dtype == DType::kF32) {
    auto* p = static_cast<float*>(arena);
    for (std::size_t i = 0; i < bytes / 4; ++i) p[i] = next();
  } else {
    auto* p = static_cast<std::uint16_t*>(arena);
    for (std::size_t i = 0; i < bytes / 2; ++i) p[i] = dtype == DType::kBF16 ? f32_to_bf16(next()) : f32_to_f16(next());
  }
}

// A matrix of the benchmark arena and the index of its shape in the set it was carved from.
struct Carved {
  Matrix m;
  int shape;
};

// Copies of `set` laid end to end in the arena, as many whole sets as fit (at most max_sets).
std::vector<Carved> carve(void* arena, std::size_t arena_bytes, DType dtype, const std::vector<Shape>& set,
                          std::size_t max_sets = SIZE_MAX) {
  std::vector<Carved> out;
  std::size_t offset = 0;
  for (std::size_t n = 0; n < max_sets; ++n) {
    std::vector<Carved> one;
    for (int k = 0; k < static_cast<int>(set.size()); ++k) {
      const std::size_t bytes = static_cast<std::size_t>(set[k].rows) * set[k].cols * dtype_size(dtype);
      if (offset + bytes > arena_bytes) return out;
      one.push_back({{dtype, set[k].rows, set[k].cols, static_cast<char*>(arena) + offset}, k});
      offset += (bytes + 4095) / 4096 * 4096;
    }
    out.insert(out.end(), one.begin(), one.end());
  }
  return out;
}

// Seconds for one pass over a set: `sustained` is the mean over all calls (after a warm-up
// round, at least `min_s` of calls); `best` sums, over the shapes of one set, the fastest call
// seen for each shape: the kernel's speed in the windows where no other process got in the way
// (to compare with the best window of the read bandwidth, measured the same way).
struct SetTime {
  double sustained = 0;
  double best = 0;
};

SetTime time_set(const std::vector<Carved>& ms, int shapes, double min_s, const std::function<void(const Matrix&)>& call) {
  for (const Carved& c : ms) call(c.m);
  std::vector<double> best(shapes, 1e30);
  double total = 0;
  long calls = 0;
  const auto start = Clock::now();
  do {
    for (const Carved& c : ms) {
      const auto t0 = Clock::now();
      call(c.m);
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      best[c.shape] = std::min(best[c.shape], s);
      total += s;
      ++calls;
    }
  } while (std::chrono::duration<double>(Clock::now() - start).count() < min_s);
  SetTime t;
  t.sustained = total / calls * shapes;
  for (double b : best) t.best += b;
  return t;
}

std::size_t set_bytes(const std::vector<Shape>& set, DType dtype) {
  std::size_t total = 0;
  for (const Shape& s : set) total += static_cast<std::size_t>(s.rows) * s.cols * dtype_size(dtype);
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  std::size_t arena_mib = 1536;
  double seconds = 1.0;
  Isa isa = detected_isa();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--arena-mib" && i + 1 < argc) {
      arena_mib = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::atof(argv[++i]);
    } else if (a == "--isa" && i + 1 < argc) {
      const auto parsed = isa_from_name(argv[++i]);
      if (!parsed || !isa_supported(*parsed)) {
        std::fprintf(stderr, "--isa %s: not an ISA this CPU runs\n", argv[i]);
        return 2;
      }
      isa = *parsed;
    } else {
      std::fprintf(stderr,
                   "usage: kernels_bench [--threads N] [--arena-mib M] [--seconds S per figure] "
                   "[--isa scalar|avx2|avx512|avx512bf16]\n");
      return 2;
    }
  }
  if (threads < 1 || arena_mib < 64 || seconds <= 0) {
    std::fprintf(stderr, "--threads must be >= 1, --arena-mib >= 64, --seconds > 0\n");
    return 2;
  }
  const std::size_t arena_bytes = arena_mib << 20;
  void* arena = qmeter::bench::alloc_buffer(arena_bytes);
  std::memset(arena, 1, arena_bytes);
  ThreadPool pool(threads);

  std::printf("kernels_bench: isa %s (detected %s), %d threads, arena %zu MiB\n", std::string(isa_name(isa)).c_str(),
              std::string(isa_name(detected_isa())).c_str(), threads, arena_mib);
  std::printf("'best' = fastest call per shape (windows without interference from other processes);\n"
              "'sustained' = mean over all calls. Roofline = highest read bandwidth measured.\n");

  // ---- memory read bandwidth ----
  const auto bw1 = qmeter::bench::measure_read_bandwidth(arena, arena_bytes, 1);
  const auto bwn = qmeter::bench::measure_read_bandwidth(arena, arena_bytes, threads);
  const double roof = bwn.gb_per_s;
  std::printf("\nmemory read bandwidth (%zu MiB, 32 MiB windows, best of 6 passes with and without prefetch)\n",
              arena_bytes >> 20);
  std::printf("  1 thread   best window %7.2f GB/s   best pass %7.2f GB/s\n", bw1.gb_per_s_best_window, bw1.gb_per_s_best_pass);
  std::printf("  %d threads  best window %7.2f GB/s   best pass %7.2f GB/s   -> roofline %.2f GB/s\n", threads,
              bwn.gb_per_s_best_window, bwn.gb_per_s_best_pass, roof);

  // ---- thread pool dispatch ----
  {
    const std::function<void(int, int)> nothing = [](int, int) {};
    std::vector<double> us;
    for (int i = 0; i < 20000; ++i) {
      const auto t0 = Clock::now();
      pool.parallel_for(threads * 16, nothing, 16);
      us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
    }
    std::sort(us.begin(), us.end());
    std::printf("\nthread pool: empty parallel_for over %d threads: median %.2f us, p10 %.2f us, p90 %.2f us\n", threads,
                us[us.size() / 2], us[us.size() / 10], us[us.size() * 9 / 10]);
  }

  const std::vector<Shape> shapes = {{"2048x2048 (q,o)", 2048, 2048},
                                     {"5632x2048 (tinyllama gate/up)", 5632, 2048},
                                     {"2048x5632 (tinyllama down)", 2048, 5632},
                                     {"8192x2048 (llama3.2-1b gate/up)", 8192, 2048},
                                     {"2048x8192 (llama3.2-1b down)", 2048, 8192}};
  const std::vector<Shape> llama32_layer = {{"q", 2048, 2048},    {"k", 512, 2048},   {"v", 512, 2048},
                                            {"o", 2048, 2048},    {"gate", 8192, 2048}, {"up", 8192, 2048},
                                            {"down", 2048, 8192}};
  const std::vector<Shape> tinyllama_layer = {{"q", 2048, 2048},    {"k", 256, 2048},   {"v", 256, 2048},
                                              {"o", 2048, 2048},    {"gate", 5632, 2048}, {"up", 5632, 2048},
                                              {"down", 2048, 5632}};

  std::vector<float> x(16 * 8192), y(16 * 8192);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 2654435761u) % 2001) / 1000.0f - 1.0f;

  for (DType dtype : {DType::kF32, DType::kBF16}) {
    fill_weights(arena, arena_bytes, dtype);
    const std::string dn(dtype_name(dtype));
    std::printf("\nmatrix-vector (batch 1), %s weights, %d threads: weight GB/s, %% of the %.2f GB/s roofline\n", dn.c_str(),
                threads, roof);
    std::printf("  %-34s %9s %7s %11s %7s\n", "", "best", "", "sustained", "");
    auto run_set = [&](const char* name, const std::vector<Shape>& set) {
      const std::vector<Carved> ms = carve(arena, arena_bytes, dtype, set);
      const SetTime t = time_set(ms, static_cast<int>(set.size()), seconds,
                                 [&](const Matrix& m) { matmul_isa(isa, m, x.data(), 1, y.data(), &pool); });
      const double bytes = static_cast<double>(set_bytes(set, dtype));
      const double best = bytes / t.best / 1e9, sustained = bytes / t.sustained / 1e9;
      std::printf("  %-34s %6.2f GB/s %5.1f%%  %6.2f GB/s %5.1f%%   (%zu matrices, %.0f MiB)\n", name, best,
                  100 * best / roof, sustained, 100 * sustained / roof, ms.size(), ms.size() / set.size() * bytes / 1048576);
    };
    for (const Shape& s : shapes) run_set(s.name, {s});
    run_set("llama3.2-1b layer set (7 matrices)", llama32_layer);
    run_set("tinyllama-1.1b layer set", tinyllama_layer);

    std::printf("matrix-matrix (batch 16), %s weights, %d threads: GFLOP/s (2*rows*cols*16 per call)\n", dn.c_str(),
                threads);
    std::printf("  %-52s %8s %11s\n", "", "best", "sustained");
    for (const Shape& s : {shapes[0], shapes[3], shapes[4]}) {
      std::vector<Isa> isas = {isa};
      if (dtype == DType::kBF16 && isa == Isa::kAvx512Bf16) isas.push_back(Isa::kAvx512);  // the exact path too
      for (Isa run_isa : isas) {
        const std::vector<Carved> ms = carve(arena, arena_bytes, dtype, {s}, 64);
        const SetTime t = time_set(ms, 1, seconds,
                                   [&](const Matrix& m) { matmul_isa(run_isa, m, x.data(), 16, y.data(), &pool); });
        const std::string label = std::string(s.name) + " [" + std::string(isa_name(run_isa)) +
                                  (run_isa == Isa::kAvx512Bf16 && dtype == DType::kBF16 ? ", bf16 activations]" : ", exact]");
        const double flop = 2.0 * s.rows * s.cols * 16;
        std::printf("  %-52s %8.1f %8.1f GFLOP/s\n", label.c_str(), flop / t.best / 1e9, flop / t.sustained / 1e9);
      }
    }
  }
  qmeter::bench::free_buffer(arena);
  return 0;
}
