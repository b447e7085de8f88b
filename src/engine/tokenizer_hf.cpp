// Hugging Face tokenizer.json with a BPE model: byte-level (GPT-2, LLaMA-3, Qwen2, SmolLM) or
// SentencePiece-style (Metaspace / Prepend+Replace "▁", byte fallback, fuse_unk). BOS/EOS and
// add_bos come from tokenizer_config.json beside the file when it is there, else from the
// post-processor template; generation_config.json's eos_token_id adds stop ids.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "qmeter/core/error.h"
#include "qmeter/core/paths.h"
#include "qmeter/engine/tokenizer.h"
#include "tokenizer_bpe.h"

namespace qmeter::engine {
namespace {

using nlohmann::json;
using detail::BpeConfig;
using detail::PrependWhen;
using detail::SplitBehavior;
using detail::TextStep;
using detail::TokenClass;

class HfLoader {
 public:
  explicit HfLoader(std::string path) : path_(std::move(path)) {}

  BpeConfig config() {
    json doc = parse_json_file(path_, /*required=*/true);
    if (!doc.is_object()) fail("top level is not a JSON object");
    cfg_.kind = "hf-bpe";
    cfg_.source = path_;
    const json& model = field(doc, "model", "model");
    if (!model.is_object()) fail("'model' is not an object");
    std::string type = model.contains("type") ? str(model["type"], "model.type") : "BPE";
    if (type != "BPE") fail("model.type '" + type + "' is not supported (only BPE)");
    load_model(model);
    load_added_tokens(doc);
    if (doc.contains("normalizer") && !doc["normalizer"].is_null()) add_normalizer(doc["normalizer"], "normalizer");
    if (doc.contains("pre_tokenizer") && !doc["pre_tokenizer"].is_null())
      add_pre_tokenizer(doc["pre_tokenizer"], "pre_tokenizer");
    if (doc.contains("decoder") && !doc["decoder"].is_null()) read_decoder(doc["decoder"], "decoder");
    if (doc.contains("post_processor") && !doc["post_processor"].is_null())
      read_post_processor(doc["post_processor"], "post_processor");
    read_side_configs();
    cfg_.extra_stop_ids = detail::conventional_stop_ids(cfg_.pieces, cfg_.classes);
    cfg_.extra_stop_ids.insert(cfg_.extra_stop_ids.end(), generation_eos_.begin(), generation_eos_.end());
    return std::move(cfg_);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw UsageError("tokenizer.json '" + path_ + "': " + what);
  }

  static json parse_json_file(const std::string& path, bool required) {
    if (!required && !std::filesystem::exists(path)) return json();
    std::string text = read_file(path);
    try {
      return json::parse(text);
    } catch (const json::parse_error& e) {
      throw UsageError("'" + path + "' is not valid JSON: " + e.what());
    }
  }

  const json& field(const json& obj, const char* key, const std::string& where) const {
    auto it = obj.find(key);
    if (it == obj.end()) fail("missing field '" + where + "'");
    return *it;
  }
  std::string str(const json& j, const std::string& where) const {
    if (!j.is_string()) fail("field '" + where + "' is not a string");
    return j.get<std::string>();
  }
  bool flag(const json& obj, const char* key, bool fallback, const std::string& where) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return fallback;
    if (!it->is_boolean()) fail("field '" + where + "." + key + "' is not a boolean");
    return it->get<bool>();
  }
  int integer(const json& j, const std::string& where) const {
    if (!j.is_number_integer() || j.get<int64_t>() < 0 || j.get<int64_t>() > (1 << 30))
      fail("field '" + where + "' is not a valid token id");
    return static_cast<int>(j.get<int64_t>());
  }

  void ensure_id(int id) {
    if (id >= static_cast<int>(cfg_.pieces.size())) {
      cfg_.pieces.resize(id + 1);
      cfg_.classes.resize(id + 1, TokenClass::kUnused);
    }
  }

  void load_model(const json& model) {
    const json& vocab = field(model, "vocab", "model.vocab");
    if (!vocab.is_object()) fail("'model.vocab' is not an object of piece -> id");
    cfg_.byte_fallback = flag(model, "byte_fallback", false, "model");
    cfg_.fuse_unk = flag(model, "fuse_unk", false, "model");
    cfg_.ignore_merges = flag(model, "ignore_merges", false, "model");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      auto it = model.find(key);
      if (it != model.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
        fail(std::string("model.") + key + " is not supported");
    }
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
      int id = integer(it.value(), "model.vocab[\"" + it.key() + "\"]");
      ensure_id(id);
      cfg_.pieces[id] = it.key();
      bool is_byte = cfg_.byte_fallback && detail::parse_byte_piece(it.key()).has_value();
      cfg_.classes[id] = is_byte ? TokenClass::kByte : TokenClass::kNormal;
      cfg_.symbol_index.emplace(it.key(), id);
    }
    if (auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
      std::string unk = str(*it, "model.unk_token");
      auto found = cfg_.symbol_index.find(unk);
      if (found == cfg_.symbol_index.end()) fail("model.unk_token '" + unk + "' is not in model.vocab");
      cfg_.unk_id = found->second;
      cfg_.classes[cfg_.unk_id] = TokenClass::kUnknown;
    }
    auto merges = model.find("merges");
    if (merges == model.end() || merges->is_null()) return;
    if (!merges->is_array()) fail("'model.merges' is not an array");
    cfg_.merges.reserve(merges->size());
    for (std::size_t i = 0; i < merges->size(); ++i) {
      const json& m = (*merges)[i];
      std::string where = "model.merges[" + std::to_string(i) + "]";
      std::string left, right;
      if (m.is_string()) {  // "left right"
        const std::string& s = m.get_ref<const std::string&>();
        auto space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
          fail(where + " '" + s + "' is not two pieces separated by one space");
        left = s.substr(0, space), right = s.substr(space + 1);
      } else if (m.is_array() && m.size() == 2) {  // ["left", "right"]
        left = str(m[0], where + "[0]"), right = str(m[1], where + "[1]");
      } else {
        fail(where + " is neither \"a b\" nor [\"a\", \"b\"]");
      }
      auto a = cfg_.symbol_index.find(left), b = cfg_.symbol_index.find(right);
      if (a == cfg_.symbol_index.end()) fail(where + ": '" + left + "' is not in model.vocab");
      if (b == cfg_.symbol_index.end()) fail(where + ": '" + right + "' is not in model.vocab");
      if (!cfg_.symbol_index.contains(left + right)) fail(where + ": merged piece '" + left + right + "' is not in model.vocab");
      cfg_.merges.emplace_back(a->second, b->second);
    }
  }

  void load_added_tokens(const json& doc) {
    auto it = doc.find("added_tokens");
    if (it == doc.end() || it->is_null()) return;
    if (!it->is_array()) fail("'added_tokens' is not an array");
    for (std::size_t i = 0; i < it->size(); ++i) {
      const json& t = (*it)[i];
      std::string where = "added_tokens[" + std::to_string(i) + "]";
      if (!t.is_object()) fail(where + " is not an object");
      int id = integer(field(t, "id", where + ".id"), where + ".id");
      std::string content = str(field(t, "content", where + ".content"), where + ".content");
      bool special = flag(t, "special", false, where);
      ensure_id(id);
      cfg_.pieces[id] = content;
      cfg_.classes[id] = special ? TokenClass::kControl : TokenClass::kUserDefined;
      cfg_.added.push_back({content, id, special, flag(t, "lstrip", false, where), flag(t, "rstrip", false, where)});
      added_by_content_[content] = id;
    }
  }

  // Pattern of a Split / Replace: {"String": s} (literal) or {"Regex": r}.
  std::string pattern(const json& node, const std::string& where, bool* is_regex) const {
    const json& p = field(node, "pattern", where + ".pattern");
    if (p.contains("Regex")) {
      *is_regex = true;
      return str(p["Regex"], where + ".pattern.Regex");
    }
    if (p.contains("String")) {
      *is_regex = false;
      return str(p["String"], where + ".pattern.String");
    }
    fail(where + ".pattern has neither String nor Regex");
  }

  static std::string escape_regex(const std::string& literal) {
    std::string out;
    for (char c : literal) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x80 && !std::isalnum(u)) out += '\\';
      out += c;
    }
    return out;
  }

  std::shared_ptr<detail::RegexSplitter> splitter(const std::string& regex, const std::string& where, bool invert,
                                                  SplitBehavior behavior) const {
    return std::make_shared<detail::RegexSplitter>(regex, "tokenizer.json '" + path_ + "' " + where, invert, behavior);
  }

  void add_normalizer(const json& n, const std::string& where) {
    std::string type = str(field(n, "type", where + ".type"), where + ".type");
    if (type == "Sequence") {
      const json& list = field(n, "normalizers", where + ".normalizers");
      if (!list.is_array()) fail(where + ".normalizers is not an array");
      for (std::size_t i = 0; i < list.size(); ++i) add_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]");
    } else if (type == "Prepend") {
      TextStep step{TextStep::Kind::kPrepend};
      step.text = str(field(n, "prepend", where + ".prepend"), where + ".prepend");
      cfg_.steps.push_back(std::move(step));
    } else if (type == "Replace") {
      bool is_regex = false;
      std::string from = pattern(n, where, &is_regex);
      if (is_regex) fail(where + ": Replace with a Regex pattern is not supported");
      TextStep step{TextStep::Kind::kReplace};
      step.from = from;
      step.text = str(field(n, "content", where + ".content"), where + ".content");
      cfg_.steps.push_back(std::move(step));
    } else if (type == "NFC") {
      // Identity here: text is taken to be NFC already (what nearly all text is); composing
      // decomposed input needs the Unicode tables, which this build does not carry.
    } else {
      fail(where + ": normalizer type '" + type + "' is not supported");
    }
  }

  void add_pre_tokenizer(const json& p, const std::string& where) {
    std::string type = str(field(p, "type", where + ".type"), where + ".type");
    if (type == "Sequence") {
      const json& list = field(p, "pretokenizers", where + ".pretokenizers");
      if (!list.is_array()) fail(where + ".pretokenizers is not an array");
      for (std::size_t i = 0; i < list.size(); ++i)
        add_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
    } else if (type == "Split") {
      bool is_regex = false;
      std::string pat = pattern(p, where, &is_regex);
      std::string behavior = p.contains("behavior") ? str(p["behavior"], where + ".behavior") : "Isolated";
      SplitBehavior b;
      if (behavior == "Isolated") b = SplitBehavior::kIsolated;
      else if (behavior == "Removed") b = SplitBehavior::kRemoved;
      else if (behavior == "MergedWithPrevious") b = SplitBehavior::kMergedWithPrevious;
      else if (behavior == "MergedWithNext") b = SplitBehavior::kMergedWithNext;
      else fail(where + ": split behavior '" + behavior + "' is not supported");
      TextStep step{TextStep::Kind::kSplit};
      step.splitter = splitter(is_regex ? pat : escape_regex(pat), where, flag(p, "invert", false, where), b);
      cfg_.steps.push_back(std::move(step));
    } else if (type == "ByteLevel") {
      cfg_.byte_level = true;
      if (flag(p, "add_prefix_space", false, where)) {
        TextStep step{TextStep::Kind::kPrepend};
        step.text = " ";
        step.unless_present = true;
        cfg_.steps.push_back(std::move(step));
      }
      if (flag(p, "use_regex", true, where)) {
        TextStep step{TextStep::Kind::kSplit};
        step.splitter = splitter(detail::regex::kGpt2, where, false, SplitBehavior::kIsolated);
        cfg_.steps.push_back(std::move(step));
      }
    } else if (type == "Metaspace") {
      std::string rep = p.contains("replacement") ? str(p["replacement"], where + ".replacement") : std::string(detail::kSpmSpace);
      std::string scheme;
      if (p.contains("prepend_scheme") && !p["prepend_scheme"].is_null())
        scheme = str(p["prepend_scheme"], where + ".prepend_scheme");
      else
        scheme = flag(p, "add_prefix_space", true, where) ? "always" : "never";
      TextStep replace{TextStep::Kind::kReplace};
      replace.from = " ";
      replace.text = rep;
      cfg_.steps.push_back(std::move(replace));
      if (scheme == "always" || scheme == "first") {
        TextStep prepend{TextStep::Kind::kPrepend};
        prepend.text = rep;
        prepend.unless_present = true;
        if (scheme == "first") prepend.when = PrependWhen::kAtTextStart, prepend.first_piece_only = true;
        cfg_.steps.push_back(std::move(prepend));
      } else if (scheme != "never") {
        fail(where + ": prepend_scheme '" + scheme + "' is not always, first or never");
      }
      if (flag(p, "split", true, where)) {
        TextStep step{TextStep::Kind::kSplit};
        step.splitter = splitter(escape_regex(rep), where, false, SplitBehavior::kMergedWithNext);
        cfg_.steps.push_back(std::move(step));
      }
    } else if (type == "Digits") {
      TextStep step{TextStep::Kind::kSplit};
      step.splitter = splitter(flag(p, "individual_digits", false, where) ? R"(\p{N})" : R"(\p{N}+)", where, false,
                               SplitBehavior::kIsolated);
      cfg_.steps.push_back(std::move(step));
    } else if (type == "Whitespace") {
      TextStep step{TextStep::Kind::kSplit};
      step.splitter = splitter(R"(\w+|[^\w\s]+)", where, true, SplitBehavior::kRemoved);
      cfg_.steps.push_back(std::move(step));
    } else if (type == "WhitespaceSplit") {
      TextStep step{TextStep::Kind::kSplit};
      step.splitter = splitter(R"(\s+)", where, false, SplitBehavior::kRemoved);
      cfg_.steps.push_back(std::move(step));
    } else {
      fail(where + ": pre-tokenizer type '" + type + "' is not supported");
    }
  }

  // Only one decoder property matters once tokens map to bytes: whether the dummy-prefix space
  // of the first token is dropped (Metaspace with a prepend scheme, or Strip of one leading " ").
  void read_decoder(const json& d, const std::string& where) {
    std::string type = str(field(d, "type", where + ".type"), where + ".type");
    if (type == "Sequence") {
      const json& list = field(d, "decoders", where + ".decoders");
      if (!list.is_array()) fail(where + ".decoders is not an array");
      for (std::size_t i = 0; i < list.size(); ++i) read_decoder(list[i], where + ".decoders[" + std::to_string(i) + "]");
    } else if (type == "Metaspace") {
      std::string scheme;
      if (d.contains("prepend_scheme") && !d["prepend_scheme"].is_null())
        scheme = str(d["prepend_scheme"], where + ".prepend_scheme");
      else
        scheme = flag(d, "add_prefix_space", true, where) ? "always" : "never";
      if (scheme != "never") cfg_.decode_strips_leading_space = true;
    } else if (type == "Strip") {
      std::string content = d.contains("content") ? str(d["content"], where + ".content") : " ";
      if (content == " " && d.value("start", 0) > 0) cfg_.decode_strips_leading_space = true;
    }
  }

  void read_post_processor(const json& p, const std::string& where) {
    std::string type = str(field(p, "type", where + ".type"), where + ".type");
    if (type == "Sequence") {
      const json& list = field(p, "processors", where + ".processors");
      if (!list.is_array()) fail(where + ".processors is not an array");
      for (std::size_t i = 0; i < list.size(); ++i)
        read_post_processor(list[i], where + ".processors[" + std::to_string(i) + "]");
    } else if (type == "TemplateProcessing") {
      const json& single = field(p, "single", where + ".single");
      if (!single.is_array() || single.empty() || !single[0].contains("SpecialToken")) return;
      std::string name = str(field(single[0]["SpecialToken"], "id", where + ".single[0].SpecialToken.id"),
                             where + ".single[0].SpecialToken.id");
      int id = -1;
      const std::string ids_where = where + ".special_tokens." + name + ".ids[0]";
      if (auto st = p.find("special_tokens"); st != p.end() && st->is_object()) {
        if (auto e = st->find(name); e != st->end() && e->is_object()) {
          if (auto ids = e->find("ids"); ids != e->end() && ids->is_array() && ids->size() == 1) id = integer((*ids)[0], ids_where);
        }
      }
      if (id < 0) id = lookup(name);
      if (id < 0) fail(where + ": template token '" + name + "' is not in the vocabulary");
      // An id past the vocabulary would come out of every encode (found by fuzz_hf_tokenizer).
      if (id >= static_cast<int>(cfg_.pieces.size()))
        fail(ids_where + ": token id " + std::to_string(id) + " is not in the vocabulary (" +
             std::to_string(cfg_.pieces.size()) + " tokens)");
      template_bos_ = id;
    }
  }

  int lookup(const std::string& content) const {
    if (auto it = added_by_content_.find(content); it != added_by_content_.end()) return it->second;
    if (auto it = cfg_.symbol_index.find(content); it != cfg_.symbol_index.end()) return it->second;
    return -1;
  }

  // A tokenizer_config.json token entry: "text", {"content": "text", ...} or null.
  std::optional<std::string> token_name(const json& cfg, const char* key, const std::string& file) const {
    auto it = cfg.find(key);
    if (it == cfg.end() || it->is_null()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
    throw UsageError("'" + file + "': field '" + key + "' is neither a string nor {\"content\": ...}");
  }

  void read_side_configs() {
    auto dir = std::filesystem::path(path_).parent_path();
    std::string cfg_path = (dir / "tokenizer_config.json").string();
    json tc = parse_json_file(cfg_path, false);
    std::optional<bool> add_bos;
    if (tc.is_object()) {
      if (auto name = token_name(tc, "bos_token", cfg_path)) {
        cfg_.bos_id = lookup(*name);
        if (cfg_.bos_id < 0) throw UsageError("'" + cfg_path + "': bos_token '" + *name + "' is not in the vocabulary");
      }
      if (auto name = token_name(tc, "eos_token", cfg_path)) {
        cfg_.eos_id = lookup(*name);
        if (cfg_.eos_id < 0) throw UsageError("'" + cfg_path + "': eos_token '" + *name + "' is not in the vocabulary");
      }
      if (auto it = tc.find("add_bos_token"); it != tc.end() && it->is_boolean()) add_bos = it->get<bool>();
    }
    if (cfg_.bos_id < 0 && template_bos_ >= 0) cfg_.bos_id = template_bos_;
    // The post-processor template is what `tokenizer(text)` applies; tokenizer_config's flag wins.
    cfg_.add_bos = add_bos.value_or(template_bos_ >= 0);
    std::string gen_path = (dir / "generation_config.json").string();
    json gc = parse_json_file(gen_path, false);
    if (gc.is_object() && gc.contains("eos_token_id")) {
      const json& e = gc["eos_token_id"];
      auto add = [&](const json& v) {
        if (v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() < static_cast<int64_t>(cfg_.pieces.size()))
          generation_eos_.push_back(static_cast<int>(v.get<int64_t>()));
      };
      if (e.is_array())
        for (const auto& v : e) add(v);
      else
        add(e);
    }
    if (cfg_.eos_id < 0 && !generation_eos_.empty()) cfg_.eos_id = generation_eos_.front();
  }

  std::string path_;
  BpeConfig cfg_;
  std::unordered_map<std::string, int> added_by_content_;
  int template_bos_ = -1;
  std::vector<int> generation_eos_;
};

}  // namespace

namespace detail {
BpeConfig load_hf_bpe_config(const std::string& tokenizer_json_path) {
  try {
    return HfLoader(tokenizer_json_path).config();
  } catch (const json::exception& e) {  // a field of an unexpected JSON type deep inside
    throw UsageError("tokenizer.json '" + tokenizer_json_path + "': " + e.what());
  }
}
}  // namespace detail

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& tokenizer_json_path) {
  return detail::make_bpe_tokenizer(detail::load_hf_bpe_config(tokenizer_json_path));
}

}  // namespace qmeter::engine
