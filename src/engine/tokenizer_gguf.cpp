// The tokenizer stored in GGUF metadata (tokenizer.ggml.*), encoded the way llama.cpp does:
//   model "llama": SentencePiece BPE by piece scores; " " becomes U+2581, a dummy-prefix space
//     goes before the text and after every special token (add_space_prefix), characters without
//     a piece fall back to the <0xXX> byte tokens (type 6);
//   model "gpt2": byte-level BPE with ranked merges, words cut by the pre-tokenizer regexes named
//     by tokenizer.ggml.pre.
// Control and unknown tokens (types 3, 2) are matched in text only with parse_special; user-defined
// ones (type 4) always, and (as in llama.cpp) the text after any of them gets the dummy prefix
// again, which libsentencepiece does not do after a user-defined symbol.
#include <unordered_map>

#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_writer.h"
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

// GGUF's token_type for a class (the SentencePiece numbering llama.cpp uses).
int type_of_class(TokenClass c) {
  switch (c) {
    case TokenClass::kUnknown: return 2;
    case TokenClass::kControl: return 3;
    case TokenClass::kUserDefined: return 4;
    case TokenClass::kUnused: return 5;
    case TokenClass::kByte: return 6;
    default: return 1;
  }
}

}  // namespace

// tokenizer.json -> tokenizer.ggml.*: byte-level BPE becomes "gpt2" (merges as "a b", the
// pre-tokenizer named by the llama.cpp name whose regexes it uses); SentencePiece-style BPE (byte
// fallback, "▁" for spaces) becomes "llama", whose merge order is by piece score: a piece made by
// merge rank r scores -r, so the best-ranked applicable merge is still the one taken.
TokenizerVocab hf_vocab_for_gguf(const std::string& path) {
  BpeConfig cfg = detail::load_hf_bpe_config(path);
  auto fail = [&](const std::string& why) -> void {
    throw UsageError("tokenizer.json '" + path + "' cannot be written as a GGUF tokenizer: " + why);
  };
  TokenizerVocab v;
  v.source = path;
  v.bos_id = cfg.bos_id, v.eos_id = cfg.eos_id, v.unk_id = cfg.unk_id, v.add_bos = cfg.add_bos;
  for (std::size_t id = 0; id < cfg.pieces.size(); ++id) {
    // Ids that tokenizer.json leaves out get a placeholder, as llama.cpp's converter writes them.
    const bool hole = cfg.pieces[id].empty() && cfg.classes[id] == TokenClass::kUnused;
    v.tokens.push_back(hole ? "[PAD" + std::to_string(id) + "]" : cfg.pieces[id]);
    v.token_types.push_back(type_of_class(cfg.classes[id]));
  }
  if (v.unk_id >= 0) v.token_types[static_cast<std::size_t>(v.unk_id)] = 2;  // even when also an added special token
  if (cfg.byte_level) {
    v.model = "gpt2";
    std::vector<std::string> patterns;
    for (const TextStep& step : cfg.steps) {
      if (step.kind != TextStep::Kind::kSplit) fail("its byte-level pre-tokenizer also prepends or replaces text (e.g. ByteLevel add_prefix_space), which GGUF's gpt2 tokenizer cannot state");
      patterns.push_back(step.splitter->pattern());
    }
    for (const char* name : {"gpt2", "llama-bpe", "qwen2", "smollm"}) {
      bool ignore_merges = false;
      const std::vector<const char*> known = pre_regexes(name, &ignore_merges);
      if (ignore_merges == cfg.ignore_merges && std::equal(known.begin(), known.end(), patterns.begin(), patterns.end()))
        v.pre = name;
    }
    if (v.pre.empty()) fail("its pre-tokenizer regexes are none that a tokenizer.ggml.pre name stands for (gpt2, llama-bpe, qwen2, smollm)");
    for (auto [a, b] : cfg.merges) v.merges.push_back(cfg.pieces[static_cast<std::size_t>(a)] + " " + cfg.pieces[static_cast<std::size_t>(b)]);
    v.add_space_prefix = false;
    return v;
  }
  v.model = "llama";
  if (!cfg.byte_fallback) fail("a SentencePiece-style BPE without byte_fallback (GGUF's llama tokenizer always falls back to bytes)");
  const std::string space(detail::kSpmSpace);
  v.add_space_prefix = false;
  for (const TextStep& step : cfg.steps) {
    if (step.kind == TextStep::Kind::kPrepend && step.text == space) v.add_space_prefix = true;
    else if (step.kind == TextStep::Kind::kReplace && step.from == " " && step.text == space) continue;
    else if (step.kind == TextStep::Kind::kSplit && step.splitter->pattern() == space) continue;  // Metaspace split
    else fail("its normalizer / pre-tokenizer does more than Prepend(\"▁\") + Replace(\" \", \"▁\") (or Metaspace)");
  }
  // Pieces no merge makes score below every merged one: they are never a merge's result in HF.
  v.scores.assign(v.tokens.size(), -static_cast<float>(cfg.merges.size()) - 1.0f);
  std::vector<bool> scored(v.tokens.size(), false);
  for (std::size_t r = 0; r < cfg.merges.size(); ++r) {
    const std::string merged = cfg.pieces[static_cast<std::size_t>(cfg.merges[r].first)] +
                               cfg.pieces[static_cast<std::size_t>(cfg.merges[r].second)];
    auto it = cfg.symbol_index.find(merged);
    if (it == cfg.symbol_index.end() || scored[static_cast<std::size_t>(it->second)]) continue;
    scored[static_cast<std::size_t>(it->second)] = true;
    v.scores[static_cast<std::size_t>(it->second)] = -static_cast<float>(r);
  }
  return v;
}

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
  // llama.cpp matches control and unknown pieces in text with parse_special, user-defined ones always.
  for (std::size_t id = 0; id < n; ++id) {
    TokenClass c = cfg.classes[id];
    if (c == TokenClass::kControl || c == TokenClass::kUnknown || c == TokenClass::kUserDefined)
      cfg.added.push_back({cfg.pieces[id], static_cast<int>(id), c != TokenClass::kUserDefined});
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
