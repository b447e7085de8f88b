#pragma once
// Helpers for the tokenizer tests: writing hand-made tokenizer files, GPT-2's byte-to-unicode
// map written out independently of the engine's, and a strict UTF-8 check.
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace qmeter::testing {

inline void write_text_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

inline std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// GPT-2's bytes_to_unicode() as published in its encoder.py: the byte values in
// range('!', '~'), range('¡', '¬'), range('®', 'ÿ') keep their code point; every other byte,
// in increasing order, gets 256, 257, ...
inline std::vector<std::string> gpt2_byte_chars() {
  std::vector<int> kept;
  for (int b = '!'; b <= '~'; ++b) kept.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) kept.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) kept.push_back(b);
  std::vector<std::string> out(256);
  std::vector<bool> is_kept(256, false);
  for (int b : kept) is_kept[b] = true;
  int n = 0;
  for (int b = 0; b < 256; ++b) out[b] = utf8(is_kept[b] ? b : 256 + n++);
  return out;
}

// The byte-level spelling of raw bytes.
inline std::string byte_level(const std::string& raw) {
  static const auto chars = gpt2_byte_chars();
  std::string out;
  for (unsigned char c : raw) out += chars[c];
  return out;
}

// Strict UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF).
inline bool is_valid_utf8(const std::string& s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    int n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2, cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // the continuation bytes s[i+1..i+n] must exist
    for (int k = 1; k <= n; ++k) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n + 1;
  }
  return true;
}

}  // namespace qmeter::testing
