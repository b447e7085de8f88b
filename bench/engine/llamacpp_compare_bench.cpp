// qmeter's embedded engine against llama.cpp on the same GGUF files, in the same run (issue #17):
// batch-1 decode and one-pass prefill tokens/s of both engines and the ratio qmeter / llama.cpp.
//   llamacpp_compare_bench [--threads 2] [--files f16,q8_0,q4_0,q4_k_m,q6_k,q4_k] [--reps 3]
//                          [--context 32] [--steps 32] [--prefill 64,512]
//                          [--work-dir /tmp/qmeter-llamacpp-bench] [--llamacpp-dir DIR]
// The files: the tinyllama-1.1b shape (synthetic:tinyllama-1.1b, SYNTHETIC seeded random weights)
// written as F16 GGUF by qmeter's writer with a generated 32000-token SentencePiece-style ("llama")
// vocabulary (llama.cpp refuses a file without tokenizer metadata), then quantized by llama.cpp's
// own llama_model_quantize (what `llama-quantize f16.gguf out.gguf <preset> <threads>` does, no
// importance matrix; q4_k is Q4_K_M's ftype with --pure: every matrix Q4_K), so every quantized
// file is a genuine llama.cpp file. They are cached in --work-dir (0.6-2.2 GB each).
// llama.cpp = the CPU build of npm @node-llama-cpp/linux-x64 3.22.1 (commit 0ad4a86) that
// scripts/setup.sh installs into tests/llamacpp/node_modules, dlopened (llamacpp_api.h). Absent:
// the bench says how to install it and exits 0.
// Each figure is the median of --reps runs; the two engines alternate run by run on the same
// file (both map it: one copy in the page cache), so load drift hits both alike. Each engine
// keeps its defaults otherwise: qmeter f32 KV cache, llama.cpp f16 KV cache, flash attention
// "auto" and its CPU weight repacking (use_extra_bufts) on.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "bench_util.h"
#include "llamacpp_api.h"
#include "qmeter/engine/forward.h"
#include "qmeter/engine/gguf_writer.h"
#include "qmeter/engine/model.h"
#include "qmeter/engine/thread_pool.h"

namespace fs = std::filesystem;
namespace ll = qmeter::bench::llamacpp;
using namespace qmeter::engine;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  int threads = 2;
  std::vector<std::string> files = {"f16", "q8_0", "q4_0", "q4_k_m", "q6_k", "q4_k"};
  int reps = 3;
  int context = 32;  // prompt tokens in the cache before decode is timed
  int steps = 32;    // decode steps timed
  std::vector<int> prefill = {64, 512};
  std::string work_dir = "/tmp/qmeter-llamacpp-bench";
  std::string llamacpp_dir = QMETER_LLAMACPP_LIB_DIR;
};

// A file of the table: qmeter's name for it and how llama.cpp quantizes the F16 file into it.
struct FileKind {
  const char* name;
  int ftype;  // llama_ftype
  bool pure;  // llama-quantize --pure (every matrix the ftype's base type)
};
const FileKind kFiles[] = {
    {"f16", ll::ftype::kF16, false},     {"q8_0", ll::ftype::kQ8_0, false}, {"q4_0", ll::ftype::kQ4_0, false},
    {"q4_k_m", ll::ftype::kQ4_K_M, false}, {"q6_k", ll::ftype::kQ6_K, false}, {"q4_k", ll::ftype::kQ4_K_M, true},
};
const FileKind* find_file_kind(const std::string& name) {
  for (const FileKind& f : kFiles)
    if (name == f.name) return &f;
  return nullptr;
}

constexpr const char* kShape = "synthetic:tinyllama-1.1b";

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Token ids spread over the vocabulary past the special ones, the same for both engines.
std::vector<int> tokens(int n, int seed, int vocab) {
  std::vector<int> t(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) t[static_cast<std::size_t>(i)] = 3 + (seed * 7919 + i * 104729) % (vocab - 3);
  return t;
}

// A SentencePiece-style ("llama") vocabulary of `n` tokens as llama.cpp's converters lay it out:
// 0 <unk>, 1 <s>, 2 </s>, 3..258 the byte pieces <0xXX>, then distinct word pieces (U+2581 for
// the leading space) scored by rank. Only its shape matters here: the bench feeds token ids.
TokenizerVocab generated_llama_vocab(int n) {
  TokenizerVocab v;
  v.model = "llama";
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  v.source = "generated (llamacpp_compare_bench)";
  auto add = [&](std::string piece, int type, float score) {
    v.tokens.push_back(std::move(piece));
    v.token_types.push_back(type);
    v.scores.push_back(score);
  };
  add("<unk>", 2, 0.0f);
  add("<s>", 3, 0.0f);
  add("</s>", 3, 0.0f);
  for (int b = 0; b < 256; ++b) add(fmt::format("<0x{:02X}>", b), 6, 0.0f);
  for (int i = static_cast<int>(v.tokens.size()); i < n; ++i) {
    std::string word;
    for (int k = i; k > 0; k /= 26) word += static_cast<char>('a' + k % 26);
    add((i % 2 ? "\xE2\x96\x81" : "") + word, 1, -static_cast<float>(i));
  }
  return v;
}

// The F16 source file, written once: the synthetic shape's seeded weights as F16 + the vocabulary.
std::string f16_file(const Args& a) {
  const std::string path = a.work_dir + "/tinyllama-1.1b-f16.gguf";
  if (fs::exists(path)) return path;
  const auto t0 = Clock::now();
  auto model = load_model(std::string(kShape) + ":f16");
  const TokenizerVocab vocab = generated_llama_vocab(model->config.vocab_size);
  GgufWriteOptions o;
  o.name = "tinyllama-1.1b shape, SYNTHETIC random weights (qmeter llamacpp_compare_bench)";
  o.vocab = &vocab;
  o.file_type = ll::ftype::kF16;
  write_gguf_model(*model, path + ".part", o);
  fs::rename(path + ".part", path);
  fmt::print(stderr, "wrote {} ({:.1f} s)\n", path, seconds_since(t0));
  return path;
}

// The file of `kind`: the F16 file, or llama.cpp's quantization of it (written once).
std::string file_of(const ll::Api& api, const Args& a, const FileKind& kind) {
  const std::string f16 = f16_file(a);
  if (kind.ftype == ll::ftype::kF16) return f16;
  const std::string path = fmt::format("{}/tinyllama-1.1b-{}.gguf", a.work_dir, kind.name);
  if (fs::exists(path)) return path;
  ll::QuantizeParams q = api.quantize_default_params();
  q.nthread = a.threads;
  q.ftype = kind.ftype;
  q.pure = kind.pure;
  const auto t0 = Clock::now();
  if (api.model_quantize(f16.c_str(), (path + ".part").c_str(), &q) != 0) {
    throw std::runtime_error(fmt::format("llama_model_quantize({} -> {}) failed:\n{}", f16, path, ll::last_log()));
  }
  fs::rename(path + ".part", path);
  fmt::print(stderr, "llama.cpp quantized {} ({:.1f} s)\n", path, seconds_since(t0));
  return path;
}

// --- qmeter: the APIs decode_bench uses ---------------------------------------------------------

struct QmeterEngine {
  const Model& m;
  ThreadPool& pool;

  double decode(const std::vector<int>& prompt, const std::vector<int>& next) const {
    ForwardPass pass(m, &pool);
    KvCache kv(KvLayout::for_model(m.config), static_cast<int>(prompt.size() + next.size()) + 2);
    const SequenceInput first{&kv, prompt, LogitsWanted::kLast};
    pass.run({&first, 1});
    auto step = [&](std::size_t i) {
      const SequenceInput in{&kv, {&next[i], 1}, LogitsWanted::kLast};
      pass.run({&in, 1});
    };
    step(0);  // warm-up
    const auto t0 = Clock::now();
    for (std::size_t i = 1; i < next.size(); ++i) step(i);
    return static_cast<double>(next.size() - 1) / seconds_since(t0);
  }
  double prefill(const std::vector<int>& prompt) const {
    ForwardPass pass(m, &pool);
    KvCache kv(KvLayout::for_model(m.config), static_cast<int>(prompt.size()) + 1);
    const SequenceInput in{&kv, prompt, LogitsWanted::kLast};
    const auto t0 = Clock::now();
    pass.run({&in, 1});
    return static_cast<double>(prompt.size()) / seconds_since(t0);
  }
};

// --- llama.cpp -----------------------------------------------------------------------------------

struct LlamaEngine {
  const ll::Api& api;
  ll::Model* model = nullptr;
  ll::Context* ctx = nullptr;

  LlamaEngine(const ll::Api& a, const std::string& path, int threads, int n_ctx, int n_batch) : api(a) {
    model = api.model_load_from_file(path.c_str(), api.model_default_params());
    if (model == nullptr) throw std::runtime_error(fmt::format("llama.cpp cannot load '{}':\n{}", path, ll::last_log()));
    ll::ContextParams c = api.context_default_params();
    c.n_ctx = static_cast<std::uint32_t>(n_ctx);
    c.n_batch = c.n_ubatch = static_cast<std::uint32_t>(n_batch);  // a prefill is one physical batch
    c.n_threads = c.n_threads_batch = threads;
    ctx = api.init_from_model(model, c);
    if (ctx == nullptr) {
      api.model_free(model);
      throw std::runtime_error(fmt::format("llama.cpp cannot make a context for '{}':\n{}", path, ll::last_log()));
    }
  }
  ~LlamaEngine() {
    api.free(ctx);
    api.model_free(model);
  }
  LlamaEngine(const LlamaEngine&) = delete;
  LlamaEngine& operator=(const LlamaEngine&) = delete;

  std::string desc() const {
    char buf[256] = {};
    api.model_desc(model, buf, sizeof buf);
    return buf;
  }
  // One llama_decode of `n` tokens at the next positions, waited for (its logits readable).
  void run(std::vector<std::int32_t>& t, std::size_t at, std::size_t n) const {
    if (const std::int32_t rc = api.decode(ctx, api.batch_get_one(t.data() + at, static_cast<std::int32_t>(n))); rc != 0)
      throw std::runtime_error(fmt::format("llama_decode returned {}:\n{}", rc, ll::last_log()));
    api.synchronize(ctx);
    if (api.get_logits_ith(ctx, -1) == nullptr) throw std::runtime_error("llama.cpp returned no logits");
  }
  void clear() const { api.memory_clear(api.get_memory(ctx), true); }

  double decode(const std::vector<int>& prompt, const std::vector<int>& next) const {
    std::vector<std::int32_t> p(prompt.begin(), prompt.end()), q(next.begin(), next.end());
    clear();
    run(p, 0, p.size());
    run(q, 0, 1);  // warm-up
    const auto t0 = Clock::now();
    for (std::size_t i = 1; i < q.size(); ++i) run(q, i, 1);
    return static_cast<double>(q.size() - 1) / seconds_since(t0);
  }
  double prefill(const std::vector<int>& prompt) const {
    std::vector<std::int32_t> p(prompt.begin(), prompt.end());
    clear();
    const auto t0 = Clock::now();
    run(p, 0, p.size());
    return static_cast<double>(p.size()) / seconds_since(t0);
  }
};

// /proc/loadavg's 1, 5 and 15-minute figures: the machine may be shared, and a loaded machine
// slows llama.cpp's spinning thread barriers far more than qmeter's pool (which sleeps).
std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return in ? fmt::format("{} {} {}", a, b, c) : "unknown";
}
std::string load_average_1min() { return load_average().substr(0, load_average().find(' ')); }

// One table row: both engines on `path`, alternating run by run; median of the reps.
void run_row(const ll::Api& api, const Args& a, ThreadPool& pool, const FileKind& kind, const std::string& path) {
  LoadOptions lo;
  auto model = load_model(path, lo);
  const int max_prefill = *std::max_element(a.prefill.begin(), a.prefill.end());
  const int n_ctx = std::max(max_prefill, a.context + a.steps + 2) + 64;
  const LlamaEngine theirs(api, path, a.threads, n_ctx, std::max(512, max_prefill));
  const QmeterEngine ours{*model, pool};
  fmt::print(stderr, "{}: qmeter '{}'; llama.cpp '{}'\n", kind.name, model->description, theirs.desc());

  const int vocab = model->config.vocab_size;
  const std::vector<int> prompt = tokens(a.context, 1, vocab), next = tokens(a.steps + 1, 2, vocab);
  std::vector<double> q_dec, l_dec;
  for (int r = 0; r < a.reps; ++r) {
    q_dec.push_back(ours.decode(prompt, next));
    l_dec.push_back(theirs.decode(prompt, next));
  }
  std::string line = fmt::format("{:<7} {:>7.2f}GB {:>8.2f} {:>8.2f} {:>5.2f}x", kind.name,
                                 static_cast<double>(fs::file_size(path)) / 1e9, median(q_dec), median(l_dec),
                                 median(q_dec) / median(l_dec));
  for (int n : a.prefill) {
    const std::vector<int> p = tokens(n, 3, vocab);
    std::vector<double> qp, lp;
    for (int r = 0; r < a.reps; ++r) {
      qp.push_back(ours.prefill(p));
      lp.push_back(theirs.prefill(p));
    }
    line += fmt::format(" | {:>8.2f} {:>8.2f} {:>5.2f}x", median(qp), median(lp), median(qp) / median(lp));
  }
  fmt::print("{} | {}\n", line, load_average_1min());
  std::fflush(stdout);
}

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: llamacpp_compare_bench [--threads N] [--files f16,q8_0,q4_0,q4_k_m,q6_k,q4_k] [--reps N] "
               "[--context N] [--steps N] [--prefill N[,N...]] [--work-dir DIR] [--llamacpp-dir DIR]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string f = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (f == "--threads") a.threads = std::stoi(value());
    else if (f == "--files") a.files = qmeter::bench::split_commas(value());
    else if (f == "--reps") a.reps = std::stoi(value());
    else if (f == "--context") a.context = std::stoi(value());
    else if (f == "--steps") a.steps = std::stoi(value());
    else if (f == "--work-dir") a.work_dir = value();
    else if (f == "--llamacpp-dir") a.llamacpp_dir = value();
    else if (f == "--prefill") {
      a.prefill.clear();
      for (const std::string& n : qmeter::bench::split_commas(value()))
        if (std::stoi(n) > 0) a.prefill.push_back(std::stoi(n));
    } else usage();
  }
  if (a.threads < 1 || a.reps < 1 || a.context < 1 || a.steps < 1 || a.prefill.empty() || a.files.empty()) usage();
  for (const std::string& f : a.files) {
    if (find_file_kind(f) == nullptr) {
      std::fprintf(stderr, "llamacpp_compare_bench: --files: unknown file '%s' (f16, q8_0, q4_0, q4_k_m, q6_k, q4_k)\n",
                   f.c_str());
      return 2;
    }
  }

  if (!fs::exists(a.llamacpp_dir + "/libllama.v0.5.0.so")) {
    fmt::print("llama.cpp is not installed: no libllama.v0.5.0.so in '{}'.\n"
               "Install it with scripts/setup.sh (it runs `npm ci` in tests/llamacpp: npm package "
               "@node-llama-cpp/linux-x64 3.22.1), or point --llamacpp-dir at such a bins/linux-x64 folder.\n",
               a.llamacpp_dir);
    return 0;
  }
  ll::Api api{};
  if (std::string why; !ll::load_llamacpp(a.llamacpp_dir, &api, &why)) {
    std::fprintf(stderr, "llamacpp_compare_bench: %s\n", why.c_str());
    return 1;
  }
  fs::create_directories(a.work_dir);

  try {
    // The files first (quantizing takes minutes the first time), then the timed part.
    std::vector<std::pair<const FileKind*, std::string>> rows;
    for (const std::string& f : a.files) rows.emplace_back(find_file_kind(f), file_of(api, a, *find_file_kind(f)));

    ThreadPool pool(a.threads);
    const auto bw = qmeter::bench::measure_read_bandwidth(a.threads);
    fmt::print("memory read bandwidth: {:.2f} GB/s ({} threads, {} MiB streamed)\n", bw.gb_per_s, bw.threads,
               bw.bytes >> 20);
    fmt::print("qmeter kernels: {}; llama.cpp {} ({}): {}\n", isa_name(detected_isa()), "0ad4a86", a.llamacpp_dir,
               api.print_system_info());
    fmt::print("{} threads each; load average before: {}\n", a.threads, load_average());
    std::string header = fmt::format("{:<7} {:>9} {:>8} {:>8} {:>6}", "file", "size", "qmeter", "llama", "ratio");
    std::string top = fmt::format("{:<7} {:>9} {:>24}", "", "", fmt::format("decode b=1 (ctx {})", a.context));
    for (int n : a.prefill) {
      header += fmt::format(" | {:>8} {:>8} {:>6}", "qmeter", "llama", "ratio");
      top += fmt::format(" | {:>24}", fmt::format("prefill {}", n));
    }
    header += " | load";
    fmt::print("{}\n{}\n{}\n", top, header, std::string(header.size(), '-'));
    for (const auto& [kind, path] : rows) run_row(api, a, pool, *kind, path);
    fmt::print("(tokens/s, median of {} runs alternating the engines; ratio = qmeter / llama.cpp; {} with SYNTHETIC "
               "random weights; decode: {} steps after a {}-token prompt; prefill in one pass; load = 1-minute load average after the row; files in {})\n",
               a.reps, kShape, a.steps, a.context, a.work_dir);
    fmt::print("load average after: {}\n", load_average());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llamacpp_compare_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
