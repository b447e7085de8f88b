// The tokenizer stored in GGUF metadata (tokenizer.ggml.*), encoded the way llama.cpp does:
//   model "llama": SentencePiece BPE by piece scores; " " becomes U+2581, a dummy-prefix space
//     goes before the text and after every special token (add_space_prefix), characters without
//     a piece fall back to the <0xXX> byte tokens (type 6);
//   model "gpt2": byte-level BPE with ranked merges, words cut by the pre-tokenizer regexes named
//     by tokenizer.ggml.pre.
// Control tokens (type 3) are matched in text only with parse_special; user-defined ones (type 4)
// always.
#include "qmeter/core/error.h"
#include "qmeter/engine/tokenizer.h"
#include "tokenizer_bpe.h"

namespace qmeter::engine {
namespace {

using detail::BpeConfig;
using detail::TextStep;
using detail::TokenClass;

TokenClass class_of_type(int type) {
  switch (type) {
    case 2: return TokenClass::kUnknown;
    case 3: return TokenClass::kControl;
    case 4: return TokenClass::kUserDefined;
    case 5: return TokenClass::kUnused;
    case 6: return TokenClass::kByte;
    default: return TokenClass::kNormal;
  }
}

// Regexes, applied in order, for each tokenizer.ggml.pre name (llama.cpp's list, the ones
// that occur in LLaMA-family checkpoints).
std::vector<const char*> pre_regexes(const std::string& pre, bool* ignore_merges) {
  *ignore_merges = false;
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "smaug-bpe" || pre == "dbrx") {
    *ignore_merges = true;
    return {detail::regex::kLlama3};
  }
  if (pre == "qwen2" || pre == "deepseek-r1-qwen") return {detail::regex::kQwen2};
  if (pre == "smollm") return {R"(\p{N})", detail::regex::kGpt2};
  if (pre == "gpt-2" || pre == "gpt2" || pre == "default" || pre.empty()) return {detail::regex::kGpt2};
  return {};
}

}  // namespace

std::unique_ptr<Tokenizer> make_vocab_tokenizer(TokenizerVocab v) {
  const std::string where = "GGUF tokenizer" + (v.source.empty() ? std::string() : " in '" + v.source + "'");
  auto fail = [&](const std::string& what) -> void { throw UsageError(where + ": " + what); };
  const std::size_t n = v.tokens.size();
  if (n == 0) fail("tokenizer.ggml.tokens is empty");
  if (!v.scores.empty() && v.scores.size() != n)
    fail("tokenizer.ggml.scores has " + std::to_string(v.scores.size()) + " entries for " + std::to_string(n) + " tokens");
  if (!v.token_types.empty() && v.token_types.size() != n)
    fail("tokenizer.ggml.token_type has " + std::to_string(v.token_types.size()) + " entries for " + std::to_string(n) +
         " tokens");
  for (auto [name, id] : {std::pair{"bos_token_id", v.bos_id}, {"eos_token_id", v.eos_id}, {"unknown_token_id", v.unk_id}})
    if (id >= static_cast<int>(n)) fail(std::string("tokenizer.ggml.") + name + " " + std::to_string(id) + " is past the vocabulary");

  BpeConfig cfg;
  cfg.source = v.source;
  cfg.pieces = std::move(v.tokens);
  cfg.classes.resize(n, TokenClass::kNormal);
  for (std::size_t i = 0; i < v.token_types.size(); ++i) cfg.classes[i] = class_of_type(v.token_types[i]);
  cfg.bos_id = v.bos_id;
  cfg.eos_id = v.eos_id;
  cfg.unk_id = v.unk_id;
  cfg.add_bos = v.add_bos;
  for (std::size_t id = 0; id < n; ++id) {
    TokenClass c = cfg.classes[id];
    if (c == TokenClass::kControl || c == TokenClass::kUserDefined)
      cfg.added.push_back({cfg.pieces[id], static_cast<int>(id), c == TokenClass::kControl});
  }

  if (v.model == "llama") {
    if (cfg.unk_id >= 0 && cfg.classes[cfg.unk_id] == TokenClass::kNormal) cfg.classes[cfg.unk_id] = TokenClass::kUnknown;
    cfg.kind = "gguf-llama";
    if (v.scores.empty()) fail("model 'llama' needs tokenizer.ggml.scores");
    cfg.scores = std::move(v.scores);
    // Text merges into normal (and user-defined) pieces only: byte and control pieces such as
    // "<0x41>" or "<s>" must not be reachable by spelling them out.
    for (std::size_t id = 0; id < n; ++id) {
      TokenClass c = cfg.classes[id];
      if (c == TokenClass::kNormal || c == TokenClass::kUserDefined || c == TokenClass::kUnused)
        cfg.symbol_index.emplace(cfg.pieces[id], static_cast<int>(id));
    }
    cfg.byte_fallback = true;
    if (v.add_space_prefix) {
      TextStep prefix{TextStep::Kind::kPrepend};
      prefix.text = " ";
      prefix.when = detail::PrependWhen::kAfterSpecialOrStart;
      cfg.steps.push_back(std::move(prefix));
      cfg.decode_strips_leading_space = true;
    }
    TextStep escape{TextStep::Kind::kReplace};
    escape.from = " ";
    escape.text = std::string(detail::kSpmSpace);
    cfg.steps.push_back(std::move(escape));
  } else if (v.model == "gpt2") {
    cfg.kind = "gguf-gpt2";
    cfg.byte_level = true;
    for (std::size_t id = 0; id < n; ++id)
      if (cfg.classes[id] != TokenClass::kControl) cfg.symbol_index.emplace(cfg.pieces[id], static_cast<int>(id));
    auto regexes = pre_regexes(v.pre, &cfg.ignore_merges);
    if (regexes.empty())
      fail("tokenizer.ggml.pre '" + v.pre + "' is not supported (llama-bpe, qwen2, smollm, gpt2, default)");
    for (const char* re : regexes) {
      TextStep split{TextStep::Kind::kSplit};
      split.splitter = std::make_shared<detail::RegexSplitter>(re, where);
      cfg.steps.push_back(std::move(split));
    }
    cfg.merges.reserve(v.merges.size());
    for (std::size_t i = 0; i < v.merges.size(); ++i) {
      const std::string& m = v.merges[i];
      auto space = m.find(' ');
      std::string idx = "tokenizer.ggml.merges[" + std::to_string(i) + "] '" + m + "'";
      if (space == std::string::npos) fail(idx + " is not two pieces separated by a space");
      auto a = cfg.symbol_index.find(std::string_view(m).substr(0, space));
      auto b = cfg.symbol_index.find(std::string_view(m).substr(space + 1));
      if (a == cfg.symbol_index.end() || b == cfg.symbol_index.end()) fail(idx + " names a piece that is not a token");
      cfg.merges.emplace_back(a->second, b->second);
    }
  } else {
    fail("tokenizer.ggml.model '" + v.model + "' is not supported (llama, gpt2)");
  }
  cfg.extra_stop_ids = detail::conventional_stop_ids(cfg.pieces, cfg.classes);
  return detail::make_bpe_tokenizer(std::move(cfg));
}

}  // namespace qmeter::engine
