#pragma once
// llama.cpp's C API as llamacpp_compare_bench uses it: its CPU shared libraries (npm package
// @node-llama-cpp/linux-x64 3.22.1 = llama.cpp commit 0ad4a86, installed by scripts/setup.sh into
// tests/llamacpp/node_modules), dlopened at run time so that nothing of llama.cpp is needed to
// build qmeter. Header-only (every bench/engine/*.cpp is an executable of its own).
//
// The structs that llama.h passes or returns BY VALUE are declared here field for field, written
// from llama.h at that commit. A struct of another size or layout would be a silent memory
// corruption, so load_llamacpp() checks the ABI before anything runs: each *_default_params()
// is called into a buffer much larger than our struct, pre-filled with a canary (on x86-64
// System V a struct over 16 bytes is returned through a caller-provided pointer, so a larger
// callee struct would write past ours), no byte past our size may change, and a few documented
// defaults must read back at our offsets. Any mismatch refuses to run with a message.
#include <dlfcn.h>
#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>

namespace qmeter::bench::llamacpp {

// llama.h: struct llama_model_params (commit 0ad4a86).
struct ModelParams {
  void* devices;                      // ggml_backend_dev_t*
  const void* tensor_buft_overrides;  // const llama_model_tensor_buft_override*
  std::int32_t n_gpu_layers;
  std::int32_t split_mode;  // enum llama_split_mode
  std::int32_t load_mode;   // enum llama_load_mode
  std::int32_t lazy_mode;   // enum llama_lazy_mode
  std::int32_t main_gpu;
  const float* tensor_split;
  bool (*progress_callback)(float progress, void* user);
  void* progress_callback_user_data;
  const void* kv_overrides;  // const llama_model_kv_override*
  bool vocab_only, check_tensors, use_extra_bufts, no_host, no_alloc, load_mtp;
};

// llama.h: struct llama_context_params (commit 0ad4a86).
struct ContextParams {
  std::uint32_t n_ctx, n_batch, n_ubatch, n_seq_max, n_rs_seq, n_outputs_max, n_outputs_max_per_seq;
  std::int32_t n_threads, n_threads_batch;
  std::int32_t ctx_type, rope_scaling_type, pooling_type, attention_type, flash_attn_type;  // enums
  float rope_freq_base, rope_freq_scale, yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
  std::uint32_t yarn_orig_ctx;
  float defrag_thold;
  bool (*cb_eval)(void* tensor, bool ask, void* user);
  void* cb_eval_user_data;
  std::int32_t type_k, type_v;  // enum ggml_type
  bool (*abort_callback)(void* data);
  void* abort_callback_data;
  bool embeddings, offload_kqv, no_perf, op_offload, swa_full, kv_unified;
  void* samplers;  // llama_sampler_seq_config*
  std::size_t n_samplers;
  void* ctx_other;  // llama_context*
};

// llama.h: struct llama_batch.
struct Batch {
  std::int32_t n_tokens;
  std::int32_t* token;
  float* embd;
  std::int32_t* pos;
  std::int32_t* n_seq_id;
  std::int32_t** seq_id;
  std::int8_t* logits;
};

// llama.h: struct llama_model_quantize_params (passed by pointer; declared for the same check).
struct QuantizeParams {
  std::int32_t nthread;
  std::int32_t ftype;                 // enum llama_ftype
  std::int32_t output_tensor_type;    // enum ggml_type
  std::int32_t token_embedding_type;  // enum ggml_type
  bool allow_requantize, quantize_output_tensor, only_copy, pure, keep_split, dry_run;
  const void* imatrix;
  const void* kv_overrides;
  const void* tt_overrides;
  const std::int32_t* prune_layers;
  std::size_t max_buf_size;
};

// llama.h's enum llama_ftype values of the presets the bench writes.
namespace ftype {
constexpr int kF16 = 1, kQ4_0 = 2, kQ8_0 = 7, kQ4_K_M = 15, kQ6_K = 18;
}
constexpr std::int32_t kGgmlTypeF16 = 1, kGgmlTypeCount = 43;  // ggml.h at 0ad4a86: GGML_TYPE_COUNT = 43

struct Model;
struct Context;
struct Memory;

// The functions used, bound by dlsym. The *_default_params functions are bound with a return
// type much larger than the real struct (AbiProbe) for the canary check; the callers use the
// typed wrappers below.
struct AbiProbe {
  alignas(16) unsigned char bytes[1024];
};

struct Api {
  std::string dir;
  void (*backend_init)();
  void (*log_set)(void (*cb)(int level, const char* text, void* user), void* user);
  const char* (*print_system_info)();
  AbiProbe (*model_default_params_raw)();
  AbiProbe (*context_default_params_raw)();
  AbiProbe (*model_quantize_default_params_raw)();
  AbiProbe (*batch_get_one_raw)(std::int32_t* tokens, std::int32_t n_tokens);
  std::uint32_t (*model_quantize)(const char* in, const char* out, const QuantizeParams* params);
  Model* (*model_load_from_file)(const char* path, ModelParams params);
  void (*model_free)(Model*);
  std::uint64_t (*model_size)(const Model*);
  std::int32_t (*model_desc)(const Model*, char* buf, std::size_t size);
  Context* (*init_from_model)(Model*, ContextParams params);
  void (*free)(Context*);
  std::int32_t (*decode)(Context*, Batch batch);
  void (*synchronize)(Context*);
  Memory* (*get_memory)(const Context*);
  void (*memory_clear)(Memory*, bool data);
  float* (*get_logits_ith)(Context*, std::int32_t i);
  std::size_t (*backend_reg_count)();  // ggml: how many backends are loaded

  // The by-value structs, through the ABI-checked raw functions.
  template <class T>
  static T from_probe(const AbiProbe& p) {
    T t;
    std::memcpy(&t, p.bytes, sizeof t);
    return t;
  }
  ModelParams model_default_params() const { return from_probe<ModelParams>(model_default_params_raw()); }
  ContextParams context_default_params() const { return from_probe<ContextParams>(context_default_params_raw()); }
  QuantizeParams quantize_default_params() const {
    return from_probe<QuantizeParams>(model_quantize_default_params_raw());
  }
  Batch batch_get_one(std::int32_t* tokens, std::int32_t n) const { return from_probe<Batch>(batch_get_one_raw(tokens, n)); }
};

namespace detail {

inline std::string& log_tail() {
  static std::string s;
  return s;
}
// Keeps the last few KB llama.cpp logged (its errors say why a file was refused) instead of
// printing its verbose load log between the bench's lines.
inline void keep_log(int /*level*/, const char* text, void* /*user*/) {
  std::string& s = log_tail();
  s += text;
  if (s.size() > 16384) s.erase(0, s.size() - 8192);
}

// Calls `fn` (a function returning a struct in memory) into our canary-filled buffer; "" when
// nothing past `size` was written. The System V convention for a memory-returned struct passes
// the caller's buffer as a hidden first argument (and returns it): calling `fn` as
// void* (*)(void* ret) hands it our own buffer, whose bytes past `size` we can then inspect (a
// compiler-made temporary would not keep them).
inline std::string check_size(AbiProbe (*fn)(), std::size_t size, const char* name, AbiProbe* out) {
  using RawFn = void* (*)(void* ret);
  RawFn raw;
  std::memcpy(&raw, &fn, sizeof raw);
  for (auto& b : out->bytes) b = 0xA5;
  raw(out->bytes);
  for (std::size_t i = size; i < sizeof out->bytes; ++i) {
    if (out->bytes[i] != 0xA5) {
      return fmt::format("{}() wrote byte {} but our declaration is {} bytes: this llama.cpp build's struct is "
                         "larger (another commit than 0ad4a86)", name, i, size);
    }
  }
  return "";
}

}  // namespace detail

inline std::string last_log() { return detail::log_tail(); }

// Loads libllama / libggml from `dir` and checks the ABI. nullptr-free Api on success; on failure
// *why says what is missing or different.
inline bool load_llamacpp(const std::string& dir, Api* api, std::string* why) {
  const std::string llama = dir + "/libllama.v0.5.0.so";
  void* hl = dlopen(llama.c_str(), RTLD_NOW | RTLD_LOCAL);  // finds libggml* beside it (RUNPATH $ORIGIN)
  void* hg = hl ? dlopen((dir + "/libggml.v0.5.0.so").c_str(), RTLD_NOW | RTLD_LOCAL) : nullptr;
  if (hl == nullptr || hg == nullptr) {
    *why = fmt::format("cannot load llama.cpp from '{}': {}", dir, dlerror());
    return false;
  }
  std::string missing;
  auto bind = [&](void* h, auto& fn, const char* name) {
    void* p = dlsym(h, name);
    if (p == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
    std::memcpy(&fn, &p, sizeof p);  // object pointer -> function pointer (POSIX guarantees it works)
  };
  Api& a = *api;
  a.dir = dir;
  bind(hl, a.backend_init, "llama_backend_init");
  bind(hl, a.log_set, "llama_log_set");
  bind(hl, a.print_system_info, "llama_print_system_info");
  bind(hl, a.model_default_params_raw, "llama_model_default_params");
  bind(hl, a.context_default_params_raw, "llama_context_default_params");
  bind(hl, a.model_quantize_default_params_raw, "llama_model_quantize_default_params");
  bind(hl, a.batch_get_one_raw, "llama_batch_get_one");
  bind(hl, a.model_quantize, "llama_model_quantize");
  bind(hl, a.model_load_from_file, "llama_model_load_from_file");
  bind(hl, a.model_free, "llama_model_free");
  bind(hl, a.model_size, "llama_model_size");
  bind(hl, a.model_desc, "llama_model_desc");
  bind(hl, a.init_from_model, "llama_init_from_model");
  bind(hl, a.free, "llama_free");
  bind(hl, a.decode, "llama_decode");
  bind(hl, a.synchronize, "llama_synchronize");
  bind(hl, a.get_memory, "llama_get_memory");
  bind(hl, a.memory_clear, "llama_memory_clear");
  bind(hl, a.get_logits_ith, "llama_get_logits_ith");
  bind(hg, a.backend_reg_count, "ggml_backend_reg_count");
  void (*load_backends)(const char*) = nullptr;
  bind(hg, load_backends, "ggml_backend_load_all_from_path");
  if (!missing.empty()) {
    *why = fmt::format("'{}' lacks {}: not the llama.cpp build (commit 0ad4a86) this bench was written for", dir, missing);
    return false;
  }

  // The ABI guard (see the top of this file).
  AbiProbe mp, cp, qp;
  for (const auto& [fn, size, name, out] :
       {std::tuple{a.model_default_params_raw, sizeof(ModelParams), "llama_model_default_params", &mp},
        std::tuple{a.context_default_params_raw, sizeof(ContextParams), "llama_context_default_params", &cp},
        std::tuple{a.model_quantize_default_params_raw, sizeof(QuantizeParams), "llama_model_quantize_default_params", &qp}}) {
    if (std::string e = detail::check_size(fn, size, name, out); !e.empty()) {
      *why = e;
      return false;
    }
  }
  {  // llama_batch, returned by llama_batch_get_one: the same canary check, then its fields.
    AbiProbe bp;
    for (auto& b : bp.bytes) b = 0xA5;
    std::int32_t tok[7] = {};
    using RawFn = void* (*)(void* ret, std::int32_t* tokens, std::int32_t n);
    RawFn raw;
    std::memcpy(&raw, &a.batch_get_one_raw, sizeof raw);
    raw(bp.bytes, tok, 7);
    for (std::size_t i = sizeof(Batch); i < sizeof bp.bytes; ++i) {
      if (bp.bytes[i] != 0xA5) {
        *why = fmt::format("llama_batch_get_one() wrote byte {} but our llama_batch is {} bytes (another commit than 0ad4a86)",
                           i, sizeof(Batch));
        return false;
      }
    }
    const auto b = Api::from_probe<Batch>(bp);
    if (b.n_tokens != 7 || b.token != tok || b.embd != nullptr || b.pos != nullptr || b.logits != nullptr) {
      *why = "llama_batch_get_one() does not return {n_tokens, token, null...} at our llama_batch offsets";
      return false;
    }
  }
  const auto m = Api::from_probe<ModelParams>(mp);
  const auto c = Api::from_probe<ContextParams>(cp);
  const auto q = Api::from_probe<QuantizeParams>(qp);
  std::string bad;
  auto expect = [&](bool ok, const char* what) {
    if (!ok) bad += std::string(bad.empty() ? "" : ", ") + what;
  };
  // Documented defaults at 0ad4a86 (llama-model.cpp / llama-context.cpp / llama-quant.cpp).
  expect(m.devices == nullptr && m.n_gpu_layers == -1 && m.main_gpu == 0 && m.tensor_split == nullptr,
         "model params: devices null, n_gpu_layers -1, main_gpu 0");
  expect(!m.vocab_only && !m.check_tensors && m.use_extra_bufts && !m.no_host && !m.no_alloc && !m.load_mtp,
         "model params: the six booleans false,false,true,false,false,false");
  expect(c.n_ctx == 512 && c.n_batch == 2048 && c.n_ubatch == 512 && c.n_seq_max == 1 && c.n_outputs_max_per_seq == 1,
         "context params: n_ctx 512, n_batch 2048, n_ubatch 512, n_seq_max 1, n_outputs_max_per_seq 1");
  expect(c.yarn_ext_factor == -1.0f && c.defrag_thold == -1.0f && c.type_k == kGgmlTypeF16 && c.type_v == kGgmlTypeF16,
         "context params: yarn_ext_factor -1, defrag_thold -1, type_k/type_v F16");
  expect(!c.embeddings && c.offload_kqv && c.no_perf && c.op_offload && c.swa_full && !c.kv_unified &&
             c.samplers == nullptr && c.n_samplers == 0 && c.ctx_other == nullptr,
         "context params: booleans false,true,true,true,true,false and null samplers / ctx_other");
  expect(q.nthread == 0 && q.ftype == ftype::kQ8_0 && q.output_tensor_type == kGgmlTypeCount &&
             q.token_embedding_type == kGgmlTypeCount && q.quantize_output_tensor && !q.pure && q.imatrix == nullptr &&
             q.max_buf_size == (std::size_t{8} << 30),
         "quantize params: nthread 0, ftype Q8_0, tensor types GGML_TYPE_COUNT, quantize_output_tensor, not pure, max_buf_size 8 GiB");
  if (!bad.empty()) {
    *why = fmt::format("llama.cpp in '{}' does not match the struct declarations of llamacpp_api.h (commit 0ad4a86): "
                       "unexpected {}", dir, bad);
    return false;
  }
  a.log_set(detail::keep_log, nullptr);
  // The CPU backend is one library per instruction-set level (libggml-cpu-<level>.so); ggml scores
  // each against this CPU and registers the best it can run.
  load_backends(dir.c_str());
  a.backend_init();
  if (a.backend_reg_count() == 0) {
    *why = fmt::format("ggml loaded no backend from '{}': {}", dir, last_log());
    return false;
  }
  return true;
}

}  // namespace qmeter::bench::llamacpp
