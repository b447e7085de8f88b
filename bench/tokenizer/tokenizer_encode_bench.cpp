// Encoding throughput of the engine's tokenizers on TinyStories text (shared data):
//   - llama2c (stories260K's tok512.bin): every paragraph as its own prompt, and the whole file
//     as one text at growing sizes (MB/s that stays flat as the text grows shows the merge loop
//     is not quadratic);
//   - gguf-llama: the same vocabulary through the GGUF SentencePiece-BPE path;
//   - byte-level BPE with the LLaMA-3 regex: the same pieces spelled byte-level, with merges in
//     piece order (the hf-bpe / gguf-gpt2 path: PCRE2 split + ranked merges + word cache).
// Usage: tokenizer_encode_bench [tinystories_val.txt] [tok512.bin]
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "qmeter/core/paths.h"
#include "qmeter/engine/tokenizer.h"

using namespace qmeter::engine;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Figure {
  double wall_mb_s, cpu_mb_s;
  std::size_t tokens;
};

// Runs `fn` over the inputs until at least `min_s` seconds passed. MB/s by wall time and by this
// thread's CPU time (the second is the one to quote on a shared, busy machine).
template <class Fn>
Figure throughput(const std::vector<std::string>& inputs, Fn fn, double min_s = 1.0) {
  std::size_t bytes = 0;
  for (auto& s : inputs) bytes += s.size();
  auto t0 = std::chrono::steady_clock::now();
  double c0 = thread_cpu_seconds();
  int rounds = 0;
  std::size_t tokens = 0;
  do {
    tokens = 0;
    for (auto& s : inputs) tokens += fn(s);
    ++rounds;
  } while (seconds_since(t0) < min_s);
  double total = static_cast<double>(bytes) * rounds / 1e6;
  return {total / seconds_since(t0), total / (thread_cpu_seconds() - c0), tokens};
}

void print(const char* what, const Figure& f) {
  std::printf("%-34s %8.2f MB/s cpu  %8.2f MB/s wall  %7zu tokens\n", what, f.cpu_mb_s, f.wall_mb_s, f.tokens);
}

std::vector<std::string> paragraphs(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find("\n\n", pos);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(pos, end - pos));
    pos = end + 2;
  }
  return out;
}

std::string byte_level(const std::string& raw) {
  std::string out;
  int next = 256;
  static std::vector<std::string> chars;
  if (chars.empty()) {
    chars.resize(256);
    for (int b = 0; b < 256; ++b) {
      bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      int cp = keep ? b : next++;
      std::string s;
      if (cp < 0x80) s += static_cast<char>(cp);
      else s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
      chars[b] = s;
    }
  }
  for (unsigned char c : raw) out += chars[c];
  return out;
}

// A byte-level BPE built from tok512's pieces: each multi-byte piece becomes a merge of the
// split into two earlier pieces that exist (pieces are in merge order already).
std::unique_ptr<Tokenizer> byte_level_from(const Tokenizer& spm) {
  TokenizerVocab v;
  v.model = "gpt2";
  v.pre = "llama-bpe";
  std::vector<std::string> raw;
  for (int b = 0; b < 256; ++b) raw.push_back(std::string(1, static_cast<char>(b)));
  std::vector<std::string> seen(raw);
  for (int id = 259; id < spm.vocab_size(); ++id) {
    std::string p = spm.token_bytes(id);
    if (p.size() < 2) continue;
    for (std::size_t cut = p.size() - 1; cut >= 1; --cut) {
      auto has = [&](const std::string& s) { return std::find(seen.begin(), seen.end(), s) != seen.end(); };
      if (has(p.substr(0, cut)) && has(p.substr(cut))) {
        v.merges.push_back(byte_level(p.substr(0, cut)) + " " + byte_level(p.substr(cut)));
        seen.push_back(p);
        break;
      }
    }
  }
  for (auto& s : seen) v.tokens.push_back(byte_level(s));
  v.token_types.assign(v.tokens.size(), 1);
  return make_vocab_tokenizer(v);
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = qmeter::shared_data_dir();
  std::string text_path = argc > 1 ? argv[1] : data + "/eval/tinystories_val.txt";
  std::string tok_path = argc > 2 ? argv[2] : data + "/models/stories260K/tok512.bin";
  if (!std::filesystem::exists(text_path) || !std::filesystem::exists(tok_path)) {
    std::fprintf(stderr, "SHARED DATA ABSENT: need %s and %s\n", text_path.c_str(), tok_path.c_str());
    return 1;
  }
  std::string text = qmeter::read_file(text_path);
  auto paras = paragraphs(text);
  auto llama2c = load_llama2c_tokenizer(tok_path, 512);
  std::printf("input: %s (%.1f KB, %zu paragraphs)\n", text_path.c_str(), text.size() / 1e3, paras.size());

  auto count = [](const Tokenizer& t) { return [&t](const std::string& s) { return t.encode(s, true).size(); }; };
  print("llama2c per paragraph", throughput(paras, count(*llama2c)));
  for (std::size_t size : {8000ul, 80000ul, text.size()}) {
    std::string label = "llama2c one text of " + std::to_string(size / 1000) + " KB";
    print(label.c_str(), throughput({text.substr(0, size)}, count(*llama2c)));
  }

  TokenizerVocab gv;
  gv.model = "llama";
  for (int id = 0; id < llama2c->vocab_size(); ++id) {
    std::string p = llama2c->piece(id);
    std::string esc;
    for (char c : p) esc += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
    gv.tokens.push_back(id >= 3 && id < 259 ? p : esc);
    gv.token_types.push_back(id == 0 ? 2 : id < 3 ? 3 : id < 259 ? 6 : 1);
  }
  // Scores are not exposed by the interface; re-read them: piece order is score order here.
  for (int id = 0; id < llama2c->vocab_size(); ++id) gv.scores.push_back(id < 259 ? 0.0f : -static_cast<float>(id));
  gv.bos_id = 1, gv.eos_id = 2, gv.unk_id = 0;
  auto gguf = make_vocab_tokenizer(gv);
  print("gguf-llama per paragraph", throughput(paras, count(*gguf)));

  auto bl = byte_level_from(*llama2c);
  std::printf("byte-level BPE: LLaMA-3 regex, %d-token vocabulary\n", bl->vocab_size());
  print("byte-level per paragraph", throughput(paras, count(*bl)));
  print("byte-level one text (whole file)", throughput({text}, count(*bl)));
  return 0;
}
