// Every tokenizer kind's encode on arbitrary bytes (tokenizer_bpe.cpp, tokenizer_gguf.cpp,
// tokenizer_llama2c.cpp, tokenizer_util.cpp): ids stay inside the vocabulary, decode works, and
// the incremental detokenizer never emits broken UTF-8 (its documented promise). The first byte
// picks the tokenizer and the flags; the rest is the text.
#include <nlohmann/json.hpp>

#include "model_files.h"
#include "qmeter/engine/tokenizer.h"

namespace {

using namespace qmeter;
using nlohmann::json;

std::string utf8_of(unsigned cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {  // < 0x800 is all a byte-level alphabet needs
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's byte-level alphabet: printable Latin-1 bytes keep their code point, the others get
// 256, 257, ... in byte order.
std::vector<std::string> byte_level_alphabet() {
  std::vector<std::string> out(256);
  unsigned next = 256;
  for (unsigned b = 0; b < 256; ++b) {
    const bool kept = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    out[b] = utf8_of(kept ? b : next++);
  }
  return out;
}

std::unique_ptr<engine::Tokenizer> gguf_gpt2_tokenizer() {
  engine::TokenizerVocab v;
  v.model = "gpt2";
  v.pre = "llama-bpe";
  v.tokens = byte_level_alphabet();
  v.token_types.assign(256, 1);
  const auto space = v.tokens[' '];
  for (const char* m : {"t h", "th e", "i n", "e r"}) v.merges.push_back(m);
  for (const char* t : {"th", "the", "in", "er"}) v.tokens.push_back(t), v.token_types.push_back(1);
  v.merges.push_back(space + " t");
  v.tokens.push_back(space + "t");
  v.token_types.push_back(1);
  for (const char* s : {"<|begin_of_text|>", "<|eot_id|>"}) v.tokens.push_back(s), v.token_types.push_back(3);
  v.bos_id = static_cast<int>(v.tokens.size()) - 2;
  v.eos_id = static_cast<int>(v.tokens.size()) - 1;
  return engine::make_vocab_tokenizer(std::move(v));
}

std::unique_ptr<engine::Tokenizer> hf_byte_level_tokenizer() {
  json vocab = json::object();
  const auto alphabet = byte_level_alphabet();
  for (int b = 0; b < 256; ++b) vocab[alphabet[static_cast<std::size_t>(b)]] = b;
  vocab["he"] = 256;
  vocab["ll"] = 257;
  vocab["hell"] = 258;
  json doc = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"h e", "l l", "he ll"}}}},
              {"added_tokens", {{{"id", 259}, {"content", "<|im_start|>"}, {"special", true}},
                                {{"id", 260}, {"content", "<|im_end|>"}, {"special", true}}}},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
              {"decoder", {{"type", "ByteLevel"}}}};
  return engine::load_hf_tokenizer(fuzz::write_scratch("byte_level.json", doc.dump()));
}

std::unique_ptr<engine::Tokenizer> hf_metaspace_tokenizer() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = 3 + b;
  }
  vocab["\xE2\x96\x81"] = 259;
  vocab["a"] = 260;
  vocab["\xE2\x96\x81" "a"] = 261;
  json doc = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"\xE2\x96\x81 a"}}, {"byte_fallback", true},
                         {"unk_token", "<unk>"}}},
              {"added_tokens", {{{"id", 0}, {"content", "<unk>"}, {"special", true}},
                                {{"id", 1}, {"content", "<s>"}, {"special", true}},
                                {{"id", 2}, {"content", "</s>"}, {"special", true}}}},
              {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}},
                                                                     {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}}}}},
              {"decoder", {{"type", "Sequence"}, {"decoders", {{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                                                               {{"type", "ByteFallback"}}, {{"type", "Fuse"}}, {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}}};
  return engine::load_hf_tokenizer(fuzz::write_scratch("metaspace.json", doc.dump()));
}

std::vector<std::unique_ptr<engine::Tokenizer>> make_tokenizers() {
  std::vector<std::unique_ptr<engine::Tokenizer>> t;
  t.push_back(std::move(engine::make_synthetic_model("synthetic:tiny", {})->tokenizer));  // GGUF "llama" vocab
  t.push_back(gguf_gpt2_tokenizer());
  t.push_back(hf_byte_level_tokenizer());
  t.push_back(hf_metaspace_tokenizer());
  // llama2.c's tokenizer from the shared data when it is there (not needed for CI).
  const char* shared = std::getenv("QMETER_SHARED_DATA");
  const std::string tok512 = std::string(shared ? shared : "/work/shared/data") + "/models/stories260K/tok512.bin";
  if (std::filesystem::exists(tok512)) t.push_back(engine::load_llama2c_tokenizer(tok512, 512));
  return t;
}

// Lead bytes and continuation counts (the structure a broken split would violate).
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    if (c < 0x80) n = 0;
    else if (c >= 0xC2 && c <= 0xDF) n = 1;
    else if (c >= 0xE0 && c <= 0xEF) n = 2;
    else if (c >= 0xF0 && c <= 0xF4) n = 3;
    else return false;
    for (std::size_t k = 1; k <= n; ++k)
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto tokenizers = make_tokenizers();
  if (size == 0) return 0;
  const auto& tok = *tokenizers[data[0] % tokenizers.size()];
  const bool add_bos = data[0] & 0x40, parse_special = data[0] & 0x80;
  const auto text = fuzz::as_text(data + 1, size - 1);
  fuzz::expect_only_qmeter_errors([&] {
    const auto ids = tok.encode(text, add_bos, parse_special);
    for (int id : ids)
      if (id < 0 || id >= tok.vocab_size()) {
        std::fprintf(stderr, "fuzz: %s encode gave id %d outside the vocabulary (%d)\n", std::string(tok.kind()).c_str(), id,
                     tok.vocab_size());
        std::abort();
      }
    (void)tok.decode(ids);
    engine::IncrementalDetokenizer detok(tok);
    std::string streamed;
    for (int id : ids) streamed += detok.push(id);
    streamed += detok.flush();
    if (!valid_utf8(streamed)) {
      std::fprintf(stderr, "fuzz: %s incremental detokenizer emitted invalid UTF-8\n", std::string(tok.kind()).c_str());
      std::abort();
    }
  });
  return 0;
}
