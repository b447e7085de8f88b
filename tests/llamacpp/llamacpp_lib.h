#pragma once
// llama.cpp itself, as the ground truth of qmeter's GGUF files: its CPU shared libraries from the
// npm package @node-llama-cpp/linux-x64 3.22.1 (llama.cpp commit 0ad4a86), which
// scripts/setup.sh installs into tests/llamacpp/node_modules (pinned by package-lock.json),
// dlopened at run time through bench/engine/llamacpp_api.h (the one declaration of the llama.cpp
// C API in this repository, with its ABI check of the by-value structs). Nothing of llama.cpp is
// compiled into qmeter or its tests.
#include <cstdint>
#include <string>

#include "llamacpp_api.h"  // bench/engine
#include "test_support.h"

namespace qmeter::testing {

namespace llama = qmeter::bench::llamacpp;

// llama.h's enum llama_ftype: the file types of llama-quantize's presets.
namespace llama_ftype {
constexpr int kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 7, kQ5_0 = 8, kQ5_1 = 9, kQ2_K = 10, kQ3_K_M = 12,
              kQ4_K_M = 15, kQ5_K_M = 17, kQ6_K = 18, kIQ4_NL = 25, kIQ4_XS = 30;
}

struct LlamaVocab;

// llama_api.h's functions plus the vocabulary ones these tests use (no by-value structs).
struct LlamaCpp {
  llama::Api api;
  const LlamaVocab* (*model_get_vocab)(const llama::Model*);
  std::int32_t (*vocab_n_tokens)(const LlamaVocab*);
  std::int32_t (*vocab_bos)(const LlamaVocab*);
  std::int32_t (*vocab_eos)(const LlamaVocab*);
  std::int32_t (*tokenize)(const LlamaVocab*, const char* text, std::int32_t text_len, std::int32_t* tokens,
                           std::int32_t n_tokens_max, bool add_special, bool parse_special);
  std::int32_t (*token_to_piece)(const LlamaVocab*, std::int32_t token, char* buf, std::int32_t length,
                                 std::int32_t lstrip, bool special);
};

// The folder holding libllama: $QMETER_LLAMACPP_LIB_DIR, else the one CMake passes
// (tests/llamacpp/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64).
std::string llamacpp_lib_dir();
// The loaded libraries (loaded once, backends included), or nullptr with *why set.
const LlamaCpp* llamacpp(std::string* why);

// llama.cpp's quantization of `in` into `out` as `llama-quantize <in> <out> <ftype> 2` does (no
// importance matrix, default options). "" on success, else what llama.cpp logged.
std::string llamacpp_quantize(const LlamaCpp& l, const std::string& in, const std::string& out, int ftype);

// llama.cpp's tokenization of `text` (add_special: BOS as the vocabulary says; no special-token
// parsing), and the text of a token.
std::vector<int> llamacpp_tokenize(const LlamaCpp& l, const LlamaVocab* vocab, const std::string& text, bool add_special);
std::string llamacpp_piece(const LlamaCpp& l, const LlamaVocab* vocab, int token);

}  // namespace qmeter::testing

// Binds `var` (const LlamaCpp&) to llama.cpp's libraries. When they are absent (scripts/setup.sh
// not run): skips with a message naming the folder and the fix, or fails where data is required
// (CI=true or QMETER_REQUIRE_DATA=1: test_support.h's rule for the shared data).
#define QMETER_REQUIRE_LLAMACPP(var)                                                                  \
  std::string var##_why;                                                                              \
  const ::qmeter::testing::LlamaCpp* var##_ptr = ::qmeter::testing::llamacpp(&var##_why);             \
  if (var##_ptr == nullptr) {                                                                         \
    if (::qmeter::testing::shared_data_required())                                                    \
      GTEST_FAIL() << "LLAMA.CPP REQUIRED (CI or QMETER_REQUIRE_DATA=1): " << var##_why                \
                   << "; run scripts/setup.sh (npm ci in tests/llamacpp)";                            \
    GTEST_SKIP() << "LLAMA.CPP ABSENT: " << var##_why << "; run scripts/setup.sh (npm ci in tests/llamacpp)"; \
  }                                                                                                   \
  const ::qmeter::testing::LlamaCpp& var = *var##_ptr;
