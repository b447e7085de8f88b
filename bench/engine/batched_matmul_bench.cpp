// Matrix-matrix speed (prefill / batched decode) of the quantized weight formats against f16 and
// bf16 on TinyLlama-1.1B layer shapes: GFLOP/s (2 * rows * cols * batch per call) of the kernel
// matmul() picks for each format at each batch size, and the ratio to f16 (GGUF types) or bf16
// (w8a16 / w4a16) at the same batch. Isolates the kernels of issue #17's prefill and batch-16
// targets from the rest of a forward pass.
//   batched_matmul_bench [--threads 2] [--seconds 1] [--batches 16,64] [--formats f16,q8_0,...]
// Weights are seeded random codes with sane scales (speed does not depend on the values); each
// format's set of matrices is small enough to stay partly cached, as in prefill, where every
// weight is reused by all tokens of the batch.
#include <fmt/core.h>

#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "qmeter/engine/gguf_blocks.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/engine/thread_pool.h"

using namespace qmeter::engine;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape {
  int rows, cols;
};
const std::vector<Shape> kShapes = {{2048, 2048}, {5632, 2048}, {2048, 5632}};

std::vector<std::byte> make_weights(DType dtype, int rows, int cols, std::mt19937& rng) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  if (dtype == DType::kQ8Row) {
    std::vector<std::int8_t> codes(n);
    for (auto& c : codes) c = static_cast<std::int8_t>(static_cast<int>(rng() % 255u) - 127);
    const std::vector<float> scales(static_cast<std::size_t>(rows), 0.01f);
    return pack_q8_row(rows, cols, codes.data(), scales.data());
  }
  if (dtype == DType::kQ4Group) {
    std::vector<std::uint8_t> codes(n);
    for (auto& c : codes) c = static_cast<std::uint8_t>(rng() & 15u);
    const std::size_t g = static_cast<std::size_t>(rows) * q4_group_count(cols, 128);
    const std::vector<float> scales(g, 0.01f);
    const std::vector<std::uint8_t> zeros(g, 8);
    return pack_q4_group(rows, cols, 4, 128, codes.data(), scales.data(), zeros.data());
  }
  std::vector<std::byte> blob(is_gguf_block(dtype) ? static_cast<std::size_t>(rows) * gguf_row_bytes(dtype, cols) : n * 2);
  for (auto& b : blob) b = static_cast<std::byte>(rng());
  if (!is_gguf_block(dtype)) {  // f16 / bf16: values in [-1, 1]
    auto* p = reinterpret_cast<std::uint16_t*>(blob.data());
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (std::size_t i = 0; i < n; ++i) p[i] = dtype == DType::kBF16 ? f32_to_bf16(u(rng)) : f32_to_f16(u(rng));
    return blob;
  }
  // Every f16 field of a block set to a small normal value: for the types measured here they are
  // the first 2 (q8_0, q4_0) or 4 (q4_K: d, dmin) bytes of each block.
  const std::uint16_t h = f32_to_f16(0.01f);
  const int bytes = gguf_block_bytes(dtype), f16s = dtype == DType::kGgufQ4K ? 2 : 1;
  for (std::size_t off = 0; off < blob.size(); off += bytes)
    for (int k = 0; k < f16s; ++k) std::memcpy(blob.data() + off + 2 * k, &h, 2);
  return blob;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  double seconds = 1;
  std::vector<int> batches = {16, 64};
  std::vector<std::string> formats = {"f16", "q8_0", "q4_0", "q4_k", "bf16", "w8a16", "w4a16"};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--threads") threads = std::stoi(argv[i + 1]);
    else if (f == "--seconds") seconds = std::stod(argv[i + 1]);
    else if (f == "--batches") {
      batches.clear();
      for (const auto& b : qmeter::bench::split_commas(argv[i + 1])) batches.push_back(std::stoi(b));
    } else if (f == "--formats") formats = qmeter::bench::split_commas(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: batched_matmul_bench [--threads N] [--seconds S] [--batches 16,64] [--formats f16,q8_0,...]\n");
      return 2;
    }
  }
  const std::map<std::string, DType> kTypes = {{"f16", DType::kF16},        {"bf16", DType::kBF16},
                                               {"q8_0", DType::kGgufQ8_0},  {"q4_0", DType::kGgufQ4_0},
                                               {"q4_k", DType::kGgufQ4K},   {"w8a16", DType::kQ8Row},
                                               {"w4a16", DType::kQ4Group}};
  ThreadPool pool(threads);
  std::mt19937 rng(7);
  int max_batch = 1;
  for (int b : batches) max_batch = std::max(max_batch, b);
  std::vector<float> x(static_cast<std::size_t>(max_batch) * 5632), y(static_cast<std::size_t>(max_batch) * 5632);
  for (auto& v : x) v = static_cast<float>(rng() % 2001) / 1000.0f - 1.0f;
  fmt::print("isa {}, {} threads; GFLOP/s over the TinyLlama shapes 2048x2048, 5632x2048, 2048x5632\n",
             isa_name(detected_isa()), threads);
  fmt::print("{:<7}", "format");
  for (int b : batches) fmt::print(" {:>12} {:>6}", fmt::format("batch {}", b), "ratio");
  fmt::print("\n");
  std::map<int, double> f16_ref, bf16_ref;
  for (const std::string& name : formats) {
    const auto it = kTypes.find(name);
    if (it == kTypes.end()) {
      std::fprintf(stderr, "unknown format %s\n", name.c_str());
      return 2;
    }
    const DType dtype = it->second;
    std::vector<std::vector<std::byte>> blobs;
    std::vector<Matrix> ms;
    double flop_per_token = 0;
    for (const Shape& s : kShapes) {
      blobs.push_back(make_weights(dtype, s.rows, s.cols, rng));
      ms.push_back(is_packed(dtype) ? packed_matrix(dtype, s.rows, s.cols, blobs.back().data())
                                    : Matrix{dtype, s.rows, s.cols, blobs.back().data()});
      flop_per_token += 2.0 * s.rows * s.cols;
    }
    fmt::print("{:<7}", name);
    for (int b : batches) {
      for (const Matrix& m : ms) matmul(m, x.data(), b, y.data(), &pool);  // warm-up
      long passes = 0;
      const auto t0 = Clock::now();
      double elapsed = 0;
      while (elapsed < seconds) {
        for (const Matrix& m : ms) matmul(m, x.data(), b, y.data(), &pool);
        ++passes;
        elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
      }
      const double gflops = flop_per_token * b * passes / elapsed / 1e9;
      if (dtype == DType::kF16) f16_ref[b] = gflops;
      if (dtype == DType::kBF16) bf16_ref[b] = gflops;
      const bool gguf = is_gguf_block(dtype) || dtype == DType::kF16;
      const double ref = gguf ? f16_ref[b] : bf16_ref[b];
      fmt::print(" {:>12.1f} {:>5.2f}x", gflops, ref > 0 ? gflops / ref : 0.0);
      std::fflush(stdout);
    }
    fmt::print("\n");
  }
  return 0;
}
