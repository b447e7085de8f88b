// Kernel benchmark: measured memory read bandwidth (1 and N threads), matrix-vector GB/s for
// F32 and BF16 weights on LLaMA-1B layer shapes with the fraction of the bandwidth roofline,
// batch-16 matrix-matrix GFLOP/s, and the thread pool's dispatch latency.
//   kernels_bench [--threads N] [--arena-mib M] [--isa NAME]
// Every matrix is cycled through copies filling an arena several times larger than the
// last-level cache, so each call streams its weights from memory as decode does.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

// Runs `step` (which processes `bytes_per_step` of weights) repeatedly for at least `min_s`
// seconds after one warm-up round; returns seconds per step.
template <typename Step>
double time_steps(int steps_per_round, double min_s, Step step) {
  for (int i = 0; i < steps_per_round; ++i) step(i);
  long done = 0;
  const auto start = Clock::now();
  double elapsed = 0;
  do {
    for (int i = 0; i < steps_per_round; ++i) step(i);
    done += steps_per_round;
    elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  } while (elapsed < min_s);
  return elapsed / done;
}

// Matrices of one shape laid end to end in the arena.
std::vector<Matrix> carve(void* arena, std::size_t arena_bytes, DType dtype, const std::vector<Shape>& set) {
  std::vector<Matrix> out;
  std::size_t offset = 0;
  for (;;) {
    for (const Shape& s : set) {
      const std::size_t bytes = static_cast<std::size_t>(s.rows) * s.cols * dtype_size(dtype);
      if (offset + bytes > arena_bytes) return out;
      out.push_back({dtype, s.rows, s.cols, static_cast<char*>(arena) + offset});
      offset += (bytes + 4095) / 4096 * 4096;
    }
  }
}

std::size_t bytes_of(const Matrix& m) { return static_cast<std::size_t>(m.rows) * m.cols * dtype_size(m.dtype); }

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  std::size_t arena_mib = 1536;
  Isa isa = detected_isa();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (a == "--arena-mib" && i + 1 < argc) {
      arena_mib = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--isa" && i + 1 < argc) {
      const auto parsed = isa_from_name(argv[++i]);
      if (!parsed || !isa_supported(*parsed)) {
        std::fprintf(stderr, "--isa %s: not an ISA this CPU runs\n", argv[i]);
        return 2;
      }
      isa = *parsed;
    } else {
      std::fprintf(stderr, "usage: kernels_bench [--threads N] [--arena-mib M] [--isa scalar|avx2|avx512|avx512bf16]\n");
      return 2;
    }
  }
  if (threads < 1 || arena_mib < 64) {
    std::fprintf(stderr, "--threads must be >= 1 and --arena-mib >= 64\n");
    return 2;
  }
  const std::size_t arena_bytes = arena_mib << 20;
  void* arena = qmeter::bench::alloc_buffer(arena_bytes);
  std::memset(arena, 1, arena_bytes);
  ThreadPool pool(threads);

  std::printf("kernels_bench: isa %s (detected %s), %d threads, arena %zu MiB\n", std::string(isa_name(isa)).c_str(),
              std::string(isa_name(detected_isa())).c_str(), threads, arena_mib);

  // ---- memory read bandwidth ----
  const auto bw1 = qmeter::bench::measure_read_bandwidth(arena, arena_bytes, 1);
  const auto bwn = qmeter::bench::measure_read_bandwidth(arena, arena_bytes, threads);
  std::printf("\nmemory read bandwidth (streaming %zu MiB, best of 6, with and without prefetch)\n", arena_bytes >> 20);
  std::printf("  1 thread   %7.2f GB/s\n", bw1.gb_per_s);
  std::printf("  %d threads  %7.2f GB/s   <- roofline below\n", threads, bwn.gb_per_s);

  // ---- thread pool dispatch ----
  {
    const std::function<void(int, int)> nothing = [](int, int) {};
    const double s = time_steps(1000, 0.2, [&](int) { pool.parallel_for(threads * 16, nothing, 16); });
    std::printf("\nthread pool: empty parallel_for over %d threads  %.2f us\n", threads, s * 1e6);
  }

  const std::vector<Shape> shapes = {{"2048x2048 (q,o)", 2048, 2048},
                                     {"5632x2048 (tinyllama gate/up)", 5632, 2048},
                                     {"2048x5632 (tinyllama down)", 2048, 5632},
                                     {"8192x2048 (llama3.2-1b gate/up)", 8192, 2048},
                                     {"2048x8192 (llama3.2-1b down)", 2048, 8192}};
  const std::vector<Shape> llama32_layer = {{"q", 2048, 2048}, {"k", 512, 2048},  {"v", 512, 2048},
                                            {"o", 2048, 2048}, {"gate", 8192, 2048}, {"up", 8192, 2048},
                                            {"down", 2048, 8192}};
  const std::vector<Shape> tinyllama_layer = {{"q", 2048, 2048}, {"k", 256, 2048},  {"v", 256, 2048},
                                              {"o", 2048, 2048}, {"gate", 5632, 2048}, {"up", 5632, 2048},
                                              {"down", 2048, 5632}};

  std::vector<float> x(16 * 8192), y(16 * 8192);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 2654435761u) % 2001) / 1000.0f - 1.0f;

  for (DType dtype : {DType::kF32, DType::kBF16}) {
    fill_weights(arena, arena_bytes, dtype);
    const std::string dn(dtype_name(dtype));
    std::printf("\nmatrix-vector (batch 1), %s weights, %d threads: weight GB/s and fraction of the %.2f GB/s roofline\n",
                dn.c_str(), threads, bwn.gb_per_s);
    auto run_set = [&](const char* name, const std::vector<Shape>& set) {
      const std::vector<Matrix> ms = carve(arena, arena_bytes, dtype, set);
      std::size_t total = 0;
      for (const Matrix& m : ms) total += bytes_of(m);
      const double s = time_steps(static_cast<int>(ms.size()), 0.5, [&](int i) {
        matmul_isa(isa, ms[i], x.data(), 1, y.data(), &pool);
      });
      const double gbs = total / static_cast<double>(ms.size()) / s / 1e9;
      std::printf("  %-34s %7.2f GB/s  %5.1f%%  (%zu copies)\n", name, gbs, 100 * gbs / bwn.gb_per_s, ms.size());
    };
    for (const Shape& s : shapes) run_set(s.name, {s});
    run_set("llama3.2-1b layer set", llama32_layer);
    run_set("tinyllama-1.1b layer set", tinyllama_layer);

    std::printf("matrix-matrix (batch 16), %s weights, %d threads: GFLOP/s (2*rows*cols*16 per call)\n", dn.c_str(),
                threads);
    for (const Shape& s : {shapes[0], shapes[3], shapes[4]}) {
      std::vector<Isa> isas = {isa};
      if (dtype == DType::kBF16 && isa == Isa::kAvx512Bf16) isas.push_back(Isa::kAvx512);  // the exact path too
      for (Isa run_isa : isas) {
        const std::vector<Matrix> ms = carve(arena, arena_bytes, dtype, {s});
        const double sec = time_steps(static_cast<int>(std::min<std::size_t>(ms.size(), 64)), 0.5, [&](int i) {
          matmul_isa(run_isa, ms[i], x.data(), 16, y.data(), &pool);
        });
        const std::string label = std::string(s.name) + " [" + std::string(isa_name(run_isa)) +
                                  (run_isa == Isa::kAvx512Bf16 && dtype == DType::kBF16 ? ", bf16 activations]" : ", exact]");
        std::printf("  %-52s %8.1f GFLOP/s\n", label.c_str(), 2.0 * s.rows * s.cols * 16 / sec / 1e9);
      }
    }
  }
  qmeter::bench::free_buffer(arena);
  return 0;
}
