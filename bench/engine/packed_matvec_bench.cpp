// Matrix-vector (batch 1) speed of the packed 4- and 8-bit weight formats on the LLaMA-1B layer
// shapes, as weight GB/s and the fraction of the machine's read-bandwidth roofline (measured in
// the same run): the decode-speed question of the quantization issue isolated from the rest of
// a decode step. bf16 is the reference row.
//   packed_matvec_bench [--threads N] [--arena-mib M] [--seconds S] [--format bf16|q8_row|fp8_row|q4_group]
// Copies of the seven layer matrices fill an arena several times the last-level cache, so each
// call streams its weights from memory as decode does.
#include <fmt/core.h>

#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/engine/thread_pool.h"

using namespace qmeter::engine;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape {
  int rows, cols;
};
const std::vector<Shape> kLayer = {{2048, 2048}, {512, 2048}, {512, 2048}, {2048, 2048},
                                   {8192, 2048}, {8192, 2048}, {2048, 8192}};

// One packed blob per shape, built from seeded random codes (the kernel's speed does not depend
// on the values).
std::vector<std::byte> make_blob(DType dtype, int rows, int cols, std::mt19937& rng) {
  const std::size_t n = static_cast<std::size_t>(rows) * cols;
  std::uniform_real_distribution<float> scale(0.001f, 0.02f);
  if (dtype == DType::kQ4Group) {
    std::vector<std::uint8_t> codes(n);
    for (auto& c : codes) c = static_cast<std::uint8_t>(rng() & 15u);
    const int ng = q4_group_count(cols, 128);
    std::vector<float> scales(static_cast<std::size_t>(rows) * ng);
    std::vector<std::uint8_t> zeros(scales.size());
    for (auto& s : scales) s = f16_to_f32(f32_to_f16(scale(rng)));
    for (auto& z : zeros) z = static_cast<std::uint8_t>(rng() & 15u);
    return pack_q4_group(rows, cols, 4, 128, codes.data(), scales.data(), zeros.data());
  }
  if (dtype == DType::kQ8Row) {
    std::vector<std::int8_t> codes(n);
    for (auto& c : codes) c = static_cast<std::int8_t>(static_cast<int>(rng() % 255u) - 127);
    std::vector<float> scales(static_cast<std::size_t>(rows));
    for (auto& s : scales) s = scale(rng);
    return pack_q8_row(rows, cols, codes.data(), scales.data());
  }
  if (dtype == DType::kFp8Row) {
    std::vector<std::uint8_t> codes(n);
    for (auto& c : codes) c = static_cast<std::uint8_t>(rng() & 0x7Eu) | static_cast<std::uint8_t>(rng() & 0x80u);  // no NaN
    std::vector<float> scales(static_cast<std::size_t>(rows));
    for (auto& s : scales) s = scale(rng);
    return pack_fp8_row(DType::kFp8Row, rows, cols, codes.data(), scales.data());
  }
  std::vector<std::byte> blob(n * 2);  // bf16
  auto* p = reinterpret_cast<std::uint16_t*>(blob.data());
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (std::size_t i = 0; i < n; ++i) p[i] = f32_to_bf16(u(rng));
  return blob;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  std::size_t arena_mib = 1536;
  double seconds = 3;
  std::string only;  // --format NAME: just that format (for profiling)
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string f = argv[i];
    if (f == "--threads") threads = std::stoi(argv[i + 1]);
    else if (f == "--arena-mib") arena_mib = std::stoul(argv[i + 1]);
    else if (f == "--seconds") seconds = std::stod(argv[i + 1]);
    else if (f == "--format") only = argv[i + 1];
  }
  ThreadPool pool(threads);
  const std::size_t arena_bytes = arena_mib << 20;
  void* arena = qmeter::bench::alloc_buffer(arena_bytes);
  std::memset(arena, 1, arena_bytes);
  const auto bw = qmeter::bench::measure_read_bandwidth(arena, arena_bytes, threads);
  fmt::print("isa {}, {} threads, read bandwidth {:.2f} GB/s, arena {} MiB\n", isa_name(detected_isa()), threads,
             bw.gb_per_s, arena_mib);
  fmt::print("{:<10} {:>10} {:>12} {:>9}\n", "format", "bytes/par", "weight GB/s", "roofline");
  std::mt19937 rng(7);
  std::vector<float> x(8192), y(8192);
  for (auto& v : x) v = static_cast<float>(rng() % 2001) / 1000.0f - 1.0f;
  for (DType dtype : {DType::kBF16, DType::kQ8Row, DType::kFp8Row, DType::kQ4Group}) {
    if (!only.empty() && dtype_name(dtype) != only) continue;
    // One set of blobs, copied end to end through the arena.
    std::vector<std::vector<std::byte>> blobs;
    std::size_t set_bytes = 0, params = 0;
    for (const Shape& s : kLayer) {
      blobs.push_back(make_blob(dtype, s.rows, s.cols, rng));
      set_bytes += (blobs.back().size() + 4095) / 4096 * 4096;
      params += static_cast<std::size_t>(s.rows) * s.cols;
    }
    std::vector<Matrix> ms;
    for (std::size_t off = 0; off + set_bytes <= arena_bytes; off += set_bytes) {
      std::size_t o = off;
      for (std::size_t k = 0; k < kLayer.size(); ++k) {
        auto* dst = static_cast<std::byte*>(arena) + o;
        std::memcpy(dst, blobs[k].data(), blobs[k].size());
        ms.push_back(is_packed(dtype) ? packed_matrix(dtype, kLayer[k].rows, kLayer[k].cols, dst)
                                      : Matrix{dtype, kLayer[k].rows, kLayer[k].cols, dst});
        o += (blobs[k].size() + 4095) / 4096 * 4096;
      }
    }
    std::size_t bytes_per_pass = 0;
    for (const auto& b : blobs) bytes_per_pass += b.size();
    const std::size_t sets = ms.size() / kLayer.size();
    for (const Matrix& m : ms) matmul(m, x.data(), 1, y.data(), &pool);  // warm-up pass
    double total_bytes = 0;
    const auto t0 = Clock::now();
    double elapsed = 0;
    while (elapsed < seconds) {
      for (const Matrix& m : ms) matmul(m, x.data(), 1, y.data(), &pool);
      total_bytes += static_cast<double>(bytes_per_pass) * sets;
      elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    }
    const double gbs = total_bytes / elapsed / 1e9;
    fmt::print("{:<10} {:>10.4f} {:>12.2f} {:>8.1f}%\n", dtype_name(dtype),
               static_cast<double>(bytes_per_pass) / static_cast<double>(params), gbs, 100.0 * gbs / bw.gb_per_s);
  }
  qmeter::bench::free_buffer(arena);
  return 0;
}
