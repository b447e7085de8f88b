// Loads llama.cpp's shared libraries once (llamacpp_lib.h).
#include "llamacpp_lib.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

namespace qmeter::testing {

namespace {

struct Loaded {
  LlamaCpp lib{};
  std::string why;  // non-empty: not loaded
};

Loaded load() {
  Loaded r;
  const std::string dir = llamacpp_lib_dir();
  if (!std::filesystem::exists(dir + "/libllama.v0.5.0.so")) {
    r.why = fmt::format("llama.cpp's libllama.v0.5.0.so not found in '{}'", dir);
    return r;
  }
  if (!llama::load_llamacpp(dir, &r.lib.api, &r.why)) return r;
  // The vocabulary functions, from the library load_llamacpp opened (RTLD_NOLOAD: the same handle).
  void* h = dlopen((dir + "/libllama.v0.5.0.so").c_str(), RTLD_NOW | RTLD_NOLOAD);
  std::string missing;
  auto bind = [&](auto& fn, const char* name) {
    void* p = h ? dlsym(h, name) : nullptr;
    if (p == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
    std::memcpy(&fn, &p, sizeof p);  // object pointer -> function pointer (POSIX guarantees it works)
  };
  LlamaCpp& l = r.lib;
  bind(l.model_get_vocab, "llama_model_get_vocab");
  bind(l.vocab_n_tokens, "llama_vocab_n_tokens");
  bind(l.vocab_bos, "llama_vocab_bos");
  bind(l.vocab_eos, "llama_vocab_eos");
  bind(l.tokenize, "llama_tokenize");
  bind(l.token_to_piece, "llama_token_to_piece");
  if (!missing.empty()) r.why = fmt::format("'{}' lacks {}", dir, missing);
  return r;
}

}  // namespace

std::string llamacpp_lib_dir() {
  if (const char* d = std::getenv("QMETER_LLAMACPP_LIB_DIR"); d != nullptr && *d != '\0') return d;
  return QMETER_LLAMACPP_LIB_DIR;
}

const LlamaCpp* llamacpp(std::string* why) {
  static const Loaded loaded = load();
  if (!loaded.why.empty()) {
    if (why) *why = loaded.why;
    return nullptr;
  }
  return &loaded.lib;
}

std::string llamacpp_quantize(const LlamaCpp& l, const std::string& in, const std::string& out, int ftype) {
  llama::QuantizeParams params = l.api.quantize_default_params();
  params.nthread = 2;
  params.ftype = ftype;
  const std::uint32_t rc = l.api.model_quantize(in.c_str(), out.c_str(), &params);
  if (rc == 0) return "";
  return fmt::format("llama_model_quantize({} -> {}, ftype {}) returned {}; llama.cpp logged:\n{}", in, out, ftype, rc,
                     llama::last_log());
}

std::vector<int> llamacpp_tokenize(const LlamaCpp& l, const LlamaVocab* vocab, const std::string& text, bool add_special) {
  std::vector<std::int32_t> ids(text.size() + 8);
  std::int32_t n = l.tokenize(vocab, text.data(), static_cast<std::int32_t>(text.size()), ids.data(),
                              static_cast<std::int32_t>(ids.size()), add_special, false);
  if (n < 0) {  // -n: the count needed
    ids.resize(static_cast<std::size_t>(-n));
    n = l.tokenize(vocab, text.data(), static_cast<std::int32_t>(text.size()), ids.data(),
                   static_cast<std::int32_t>(ids.size()), add_special, false);
  }
  ids.resize(static_cast<std::size_t>(std::max(n, 0)));
  return std::vector<int>(ids.begin(), ids.end());
}

std::string llamacpp_piece(const LlamaCpp& l, const LlamaVocab* vocab, int token) {
  char buf[256];
  const std::int32_t n = l.token_to_piece(vocab, token, buf, sizeof buf, 0, false);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

}  // namespace qmeter::testing
