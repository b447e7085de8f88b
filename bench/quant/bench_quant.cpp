// Decode throughput of the weight formats on the synthetic LLaMA-1B shape (engine
// synthetic:llama-1b: dim 2048, hidden 8192, 16 layers, 32/8 heads, vocab 128256, tied bf16
// classifier), 2 threads: per method, one decoder layer's seven linears are built (seeded random
// weights, quantized by the method's packer), copied into 16 distinct layers of huge-page memory
// as a loaded model has them, and a decode step (the 16 layers + the classifier; attention over
// the KV cache is excluded: it is the same for every weight format) is timed at batch 1 and 16.
// Then the GPTQ time of one layer's linears (2048 calibration tokens) and the GPTQ / AWQ time of
// the whole stories260K model.
//   usage: bench_quant [repeats=5] [method filter (substring; bf16 always runs)] [--no-gptq]
#include <fmt/format.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>

#include "qmeter/core/paths.h"
#include "qmeter/engine/kernels.h"
#include "qmeter/engine/packed_formats.h"
#include "qmeter/engine/thread_pool.h"
#include "qmeter/quant/float_quant.h"
#include "qmeter/quant/gguf_quant.h"
#include "qmeter/quant/linear_quant.h"
#include "qmeter/quant/quantize.h"

using namespace qmeter;
using engine::DType;
using Clock = std::chrono::steady_clock;

namespace {

struct Shape { int rows, cols; };
const Shape kLayer[] = {{2048, 2048}, {512, 2048}, {512, 2048}, {2048, 2048}, {8192, 2048}, {8192, 2048}, {2048, 8192}};
constexpr int kLayers = 16, kVocab = 128256, kDim = 2048;

std::vector<float> random_weights(int rows, int cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 0.02f);
  std::vector<float> w(static_cast<std::size_t>(rows) * cols);
  for (float& v : w) v = n(rng);
  return w;
}

// Weight memory as the engine allocates it (Model::allocate_weights): 2 MiB aligned, huge pages
// requested, so the figures are those of a loaded model.
struct HugeBlob {
  std::shared_ptr<std::byte> data;
  std::size_t size = 0;
};
HugeBlob to_huge_pages(const std::vector<std::byte>& blob) {
  constexpr std::size_t kHuge = std::size_t{2} << 20;
  const std::size_t rounded = (blob.size() + kHuge - 1) / kHuge * kHuge;
  auto* p = static_cast<std::byte*>(std::aligned_alloc(kHuge, rounded));
  if (!p) throw std::bad_alloc();
  madvise(p, rounded, MADV_HUGEPAGE);
  std::memcpy(p, blob.data(), blob.size());
  return {std::shared_ptr<std::byte>(p, [](std::byte* q) { std::free(q); }), blob.size()};
}

struct Built {
  std::vector<HugeBlob> blobs;
  std::vector<engine::Matrix> mats;
  std::size_t bytes = 0;
};

// One matrix in `method`'s packed format (the layers' packers; the classifier of the "head
// too" column uses the same).
std::vector<std::byte> pack(const std::string& method, const std::vector<float>& w, const Shape& s, DType& dt) {
  std::vector<std::byte> blob;
  if (method == "bf16" || method == "fp16") {
    dt = method == "bf16" ? DType::kBF16 : DType::kF16;
    blob.resize(w.size() * 2);
    auto* h = reinterpret_cast<std::uint16_t*>(blob.data());
    for (std::size_t i = 0; i < w.size(); ++i) h[i] = dt == DType::kBF16 ? engine::f32_to_bf16(w[i]) : engine::f32_to_f16(w[i]);
  } else if (method == "w8a16") {
    dt = DType::kQ8Row;
    blob = quant::quantize_rtn_rows8(w.data(), s.rows, s.cols).pack();
  } else if (method == "smoothquant-w8a8") {  // the kernel cost; the smoothing is folded into the norms
    dt = DType::kQ8RowA8;
    blob = quant::quantize_rtn_rows8(w.data(), s.rows, s.cols).pack_a8();
  } else if (method == "fp8-w8a16" || method == "fp8-w8a8") {
    dt = method == "fp8-w8a16" ? DType::kFp8Row : DType::kFp8RowA8;
    blob = quant::quantize_fp8_rows(w.data(), s.rows, s.cols).pack(dt);
  } else if (method == "nf4" || method == "nf4 (dq)") {
    dt = DType::kNf4;
    blob = quant::quantize_nf4(w.data(), s.rows, s.cols, method == "nf4 (dq)").pack();
  } else if (method == "q8_0" || method == "q4_0" || method == "q4_k") {  // llama.cpp blocks (GGUF)
    const DType want = method == "q8_0" ? DType::kGgufQ8_0 : method == "q4_0" ? DType::kGgufQ4_0 : DType::kGgufQ4K;
    quant::GgufQuantized q = quant::quantize_gguf_matrix(want, w.data(), s.rows, s.cols);
    dt = q.dtype;
    blob = std::move(q.data);
  } else {
    dt = DType::kQ4Group;
    blob = quant::quantize_rtn_groups(w.data(), s.rows, s.cols, method == "w3a16 (g128)" ? 3 : 4, 128, false).pack();
  }
  return blob;
}

// `copies` copies of the packed `shapes` in distinct memory: a decode step streams 16 different
// layers, and one layer repeated would be served from this machine's last-level cache (a bf16
// LLaMA-1B layer is 121 MB; the L3 here is 480 MB), which measures arithmetic, not decode.
// `bytes` counts one copy.
Built build(const std::string& method, const std::vector<Shape>& shapes, unsigned seed, int copies = 1) {
  Built b;
  std::vector<std::pair<std::vector<std::byte>, DType>> packed;
  for (const Shape& s : shapes) {
    const auto w = random_weights(s.rows, s.cols, seed++);
    DType dt;
    std::vector<std::byte> blob = pack(method, w, s, dt);
    b.bytes += blob.size();
    packed.emplace_back(std::move(blob), dt);
  }
  for (int c = 0; c < copies; ++c)
    for (std::size_t i = 0; i < shapes.size(); ++i) {
      b.blobs.push_back(to_huge_pages(packed[i].first));
      b.mats.push_back(engine::Matrix{packed[i].second, shapes[i].rows, shapes[i].cols, b.blobs.back().data.get()});
    }
  return b;
}

double seconds_per_call(const std::vector<engine::Matrix>& mats, int batch, int repeats, engine::ThreadPool& pool) {
  std::vector<float> x(static_cast<std::size_t>(batch) * 8192, 0.01f), y(static_cast<std::size_t>(batch) * kVocab);
  for (const auto& m : mats) engine::matmul(m, x.data(), batch, y.data(), &pool);  // warm up
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = Clock::now();
    for (const auto& m : mats) engine::matmul(m, x.data(), batch, y.data(), &pool);
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // line-buffered: figures show as they come
  const int repeats = argc > 1 ? std::atoi(argv[1]) : 5;
  engine::ThreadPool pool(2);
  fmt::print("isa {}, 2 threads, best of {} runs\n", engine::isa_name(engine::detected_isa()), repeats);
  // The tied bf16 classifier, the same for every method (AutoGPTQ / AutoAWQ keep it 16-bit).
  const Built cls_bf16 = build("bf16", {{kVocab, kDim}}, 99);
  long params = 0;
  for (const Shape& s : kLayer) params += static_cast<long>(s.rows) * s.cols;
  double base1 = 0, base16 = 0, base_layer1 = 0;
  // The bf16 classifier (262M of the 1.24G parameters) is common to every method and bounds the
  // batch-1 speedup of a memory-bound decode: 2.47 GB / (0.51 + 0.53) GB = 2.4x for 4-bit
  // layers. "layers-only b1" is the speedup of the 16 decoder layers alone; "head too b1" the
  // batch-1 speedup when the classifier is quantized by the method as well (quantize-lm-head, as
  // llama.cpp quantizes output.weight), bytes/par then counting every parameter.
  fmt::print("{:<16} {:>9} {:>10} {:>11} {:>10} {:>11} {:>15} {:>12} {:>12}\n", "method", "bytes/par", "tok/s b=1", "tok/s b=16",
             "x bf16 b1", "x bf16 b16", "layers-only b1", "head too b1", "bytes/par all");
  const char* const kMethods[] = {"bf16",      "fp16",     "w8a16",            "smoothquant-w8a8", "fp8-w8a16", "fp8-w8a8",
                                  "w4a16 (g128)", "w3a16 (g128)", "nf4", "nf4 (dq)", "q8_0", "q4_0", "q4_k"};
  const std::string only = argc > 2 ? argv[2] : "";
  for (const std::string method : kMethods) {
    if (!only.empty() && method != "bf16" && method.find(only) == std::string::npos) continue;
    const Built b = build(method, std::vector<Shape>(std::begin(kLayer), std::end(kLayer)), 1, kLayers);
    // A step streams the 16 layers then the classifier, in that order, as decode does (timing
    // the classifier apart would let a 4-bit one sit in this machine's 480 MB L3).
    auto step = [&](const Built& head, int batch) {
      std::vector<engine::Matrix> all = b.mats;
      all.insert(all.end(), head.mats.begin(), head.mats.end());
      return seconds_per_call(all, batch, repeats, pool);
    };
    const double layer1 = seconds_per_call(b.mats, 1, repeats, pool);
    const double t1 = step(cls_bf16, 1), t16 = step(cls_bf16, 16);
    const double tps1 = 1.0 / t1, tps16 = 16.0 / t16;
    if (method == "bf16") base1 = tps1, base16 = tps16, base_layer1 = layer1;
    const Built head = method == "bf16" ? Built{} : build(method, {{kVocab, kDim}}, 99);
    const double th1 = method == "bf16" ? t1 : step(head, 1);
    const std::size_t head_bytes = method == "bf16" ? cls_bf16.bytes : head.bytes;
    const double all_params = static_cast<double>(params) * kLayers + static_cast<double>(kVocab) * kDim;
    fmt::print("{:<16} {:>9.4f} {:>10.2f} {:>11.2f} {:>10.2f} {:>11.2f} {:>15.2f} {:>12.2f} {:>12.4f}\n", method,
               static_cast<double>(b.bytes) / params, tps1, tps16, tps1 / base1, tps16 / base16, base_layer1 / layer1,
               (1.0 / th1) / base1, (static_cast<double>(b.bytes) * kLayers + head_bytes) / all_params);
  }
  if (argc > 3 && std::string(argv[3]) == "--no-gptq") return 0;
  // GPTQ on one LLaMA-1B wq (2048x2048), 2048 calibration tokens (random, correlated).
  {
    double hess = 0, gptq = 0;
    unsigned seed = 7;
    for (const Shape& s : {kLayer[0]}) {  // wq only: the naive O(n^3) Cholesky/inverse makes 8192-wide layers minutes long
      std::mt19937 rng(seed++);
      std::normal_distribution<float> n(0.0f, 1.0f);
      std::vector<float> x(static_cast<std::size_t>(2048) * s.cols);
      for (float& v : x) v = n(rng);
      const auto w = random_weights(s.rows, s.cols, seed);
      auto t0 = Clock::now();
      const auto h = quant::hessian_from_inputs(x.data(), 2048, s.cols, &pool);
      hess += std::chrono::duration<double>(Clock::now() - t0).count();
      t0 = Clock::now();
      quant::GptqOptions o;
      (void)quant::gptq_quantize(w.data(), s.rows, s.cols, h, o, &pool);
      gptq += std::chrono::duration<double>(Clock::now() - t0).count();
    }
    fmt::print("gptq, llama-1b wq 2048x2048 (2048 tokens): hessian {:.1f} s, gptq {:.1f} s\n", hess, gptq);
  }
  const std::string stories = shared_data_dir() + "/models/stories260K/stories260K.bin";
  for (const std::string method : {"gptq", "awq"}) {
    const auto t0 = Clock::now();
    (void)quant::load_quantized(stories, method, {{"group-size", "32"}, {"calib-samples", "16"}, {"calib-seq-len", "256"}}, "");
    fmt::print("{} on stories260K (load + calibrate 16x256 tokens + quantize): {:.2f} s\n", method,
               std::chrono::duration<double>(Clock::now() - t0).count());
  }
}
