// Batch-1 decode speed of every GGUF block type (gguf_blocks.h) on the matrices of one
// tinyllama-1.1b layer (dim 2048, ffn 5632, 4 KV heads of 64: q/o 2048x2048, k/v 256x2048,
// gate/up 5632x2048, down 2048x5632), through matmul() as the forward pass calls it, with f16 as
// the reference of the ratios. Weights are seeded random blocks (SYNTHETIC: speed only), `layers`
// copies so the weights stream from memory as in a real model. Prints per type: ms per layer,
// the decode tokens/s of 22 such layers (the classifier left out), the ratio to f16, and the
// fraction of the read-bandwidth roofline (weight bytes x layers/s / measured bandwidth).
// With --threads 1 the times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), which other
// processes' load does not inflate: the figure to compare kernels on a busy machine.
//   gguf_types_bench [--threads 2] [--layers 4] [--reps 5]
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/thread_pool.h"

using namespace qmeter::engine;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape {
  int rows, cols;
};
constexpr Shape kLayer[] = {{2048, 2048}, {256, 2048}, {256, 2048}, {2048, 2048}, {5632, 2048}, {5632, 2048}, {2048, 5632}};

std::size_t matrix_size(DType d, Shape s) {
  return d == DType::kF16 ? static_cast<std::size_t>(s.rows) * s.cols * 2
                          : static_cast<std::size_t>(s.rows) * gguf_row_bytes(d, s.cols);
}

void fill(DType d, std::uint8_t* p, std::size_t bytes, std::mt19937& rng) {
  std::uniform_int_distribution<int> byte(0, 255);
  for (std::size_t i = 0; i < bytes; ++i) p[i] = static_cast<std::uint8_t>(byte(rng));
  std::uniform_real_distribution<float> v(-0.01f, 0.01f);
  if (d == DType::kF16) {
    for (std::size_t i = 0; i + 1 < bytes; i += 2) {
      const std::uint16_t h = f32_to_f16(v(rng));
      std::memcpy(p + i, &h, 2);
    }
    return;
  }
  const auto bb = static_cast<std::size_t>(gguf_block_bytes(d));
  for (std::size_t at = 0; at + bb <= bytes; at += bb)
    for (int off : {gguf_block_traits(d).scale_at, gguf_block_traits(d).min_at})
      if (off >= 0) {
        const std::uint16_t h = f32_to_f16(v(rng));
        std::memcpy(p + at + static_cast<std::size_t>(off), &h, 2);
      }
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, layers = 4, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--threads") threads = std::stoi(argv[i + 1]);
    else if (a == "--layers") layers = std::stoi(argv[i + 1]);
    else if (a == "--reps") reps = std::stoi(argv[i + 1]);
  }
  ThreadPool pool(threads);
  const qmeter::bench::ReadBandwidth bw = qmeter::bench::measure_read_bandwidth(threads);
  fmt::print("read bandwidth {:.1f} GB/s ({} threads); isa {}; {} layer copies, best of {} passes; {} time\n", bw.gb_per_s,
             threads, isa_name(detected_isa()), layers, reps, threads > 1 ? "wall" : "thread CPU");
  fmt::print("{:<8} {:>10} {:>10} {:>14} {:>8} {:>9}\n", "type", "MB/layer", "ms/layer", "tok/s (22 l.)", "x f16",
             "roofline");
  std::vector<DType> types = {DType::kF16};
  for (const GgufBlockTraits& t : gguf_block_types()) types.push_back(t.dtype);
  std::mt19937 rng(1);
  std::vector<float> x(5632), y(5632);
  for (float& f : x) f = std::uniform_real_distribution<float>(-1, 1)(rng);
  double f16_tps = 0;
  for (DType d : types) {
    std::size_t layer_bytes = 0;
    for (Shape s : kLayer) layer_bytes += matrix_size(d, s);
    auto* buf = static_cast<std::uint8_t*>(qmeter::bench::alloc_buffer(layer_bytes * static_cast<std::size_t>(layers)));
    fill(d, buf, layer_bytes * static_cast<std::size_t>(layers), rng);
    double best = 1e30;
    auto now = [&] {
      if (threads > 1) return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
      timespec ts;
      clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
    };
    for (int rep = 0; rep <= reps; ++rep) {  // rep 0 warms up
      const double start = now();
      std::size_t at = 0;
      for (int l = 0; l < layers; ++l)
        for (Shape s : kLayer) {
          matmul(Matrix{d, s.rows, s.cols, buf + at}, x.data(), 1, y.data(), &pool);
          at += matrix_size(d, s);
        }
      const double sec = (now() - start) / layers;
      if (rep > 0) best = std::min(best, sec);
    }
    qmeter::bench::free_buffer(buf);
    const double tps = 1.0 / (22 * best);
    if (d == DType::kF16) f16_tps = tps;
    const std::string name = d == DType::kF16 ? "F16" : std::string(gguf_block_traits(d).ggml_name);
    fmt::print("{:<8} {:>10.1f} {:>10.3f} {:>14.1f} {:>8.2f} {:>8.0f}%\n", name, layer_bytes / 1e6, best * 1e3, tps,
               tps / f16_tps, 100.0 * layer_bytes / best / 1e9 / bw.gb_per_s);
  }
  return 0;
}
