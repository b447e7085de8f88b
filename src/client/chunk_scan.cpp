#include "chunk_scan.h"

#include <charconv>
#include <cstring>

namespace qmeter::client::detail {

namespace {

constexpr int kMaxDepth = 32;

struct Cursor {
  const char* p;
  const char* e;
  bool done() const { return p >= e; }
  char peek() const { return *p; }
};

void skip_ws(Cursor& c) {
  while (c.p < c.e && (*c.p == ' ' || *c.p == '\t' || *c.p == '\n' || *c.p == '\r')) ++c.p;
}

bool is_hex(char ch) { return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'); }

// A string at c.p ('"'). Only ASCII and simple escapes: a non-ASCII byte or a \u escape in the
// surrogate range sends the chunk to the general parser (which validates UTF-8 and surrogates).
bool scan_string(Cursor& c, std::string_view& raw, bool& escaped) {
  if (c.done() || c.peek() != '"') return false;
  ++c.p;
  const char* start = c.p;
  escaped = false;
  while (c.p < c.e) {
    const auto ch = static_cast<unsigned char>(*c.p);
    if (ch == '"') {
      raw = std::string_view(start, static_cast<std::size_t>(c.p - start));
      ++c.p;
      return true;
    }
    if (ch < 0x20 || ch >= 0x80) return false;
    if (ch == '\\') {
      escaped = true;
      if (c.e - c.p < 2) return false;
      const char k = c.p[1];
      if (k == 'u') {
        if (c.e - c.p < 6 || !is_hex(c.p[2]) || !is_hex(c.p[3]) || !is_hex(c.p[4]) || !is_hex(c.p[5])) return false;
        const char d = static_cast<char>(c.p[2] | 0x20);
        if (d == 'd') return false;  // D800-DFFF: surrogates
        c.p += 6;
        continue;
      }
      if (!std::strchr("\"\\/bfnrt", k) || k == '\0') return false;
      c.p += 2;
      continue;
    }
    ++c.p;
  }
  return false;
}

// A JSON number; `integer` is set when it is a plain integer that fits an int.
bool scan_number(Cursor& c, int& value, bool& integer) {
  const char* s = c.p;
  if (c.p < c.e && *c.p == '-') ++c.p;
  if (c.done() || !(*c.p >= '0' && *c.p <= '9')) return false;
  if (*c.p == '0') {
    ++c.p;
  } else {
    while (c.p < c.e && *c.p >= '0' && *c.p <= '9') ++c.p;
  }
  integer = true;
  if (c.p < c.e && *c.p == '.') {
    integer = false;
    ++c.p;
    if (c.done() || !(*c.p >= '0' && *c.p <= '9')) return false;
    while (c.p < c.e && *c.p >= '0' && *c.p <= '9') ++c.p;
  }
  if (c.p < c.e && (*c.p == 'e' || *c.p == 'E')) {
    integer = false;
    ++c.p;
    if (c.p < c.e && (*c.p == '+' || *c.p == '-')) ++c.p;
    if (c.done() || !(*c.p >= '0' && *c.p <= '9')) return false;
    while (c.p < c.e && *c.p >= '0' && *c.p <= '9') ++c.p;
  }
  if (integer) {
    if (c.p - s > 9) {
      integer = false;  // let the general parser handle big values
    } else {
      std::from_chars(s, c.p, value);
    }
  }
  return true;
}

bool skip_value(Cursor& c, int depth, int* array_count = nullptr);

bool literal(Cursor& c, std::string_view word) {
  if (static_cast<std::size_t>(c.e - c.p) < word.size() || std::memcmp(c.p, word.data(), word.size()) != 0) return false;
  c.p += word.size();
  return true;
}

// Iterates an object at c.p ('{'), calling on_member(key, cursor) with the cursor at the value;
// on_member must consume the value. Keys with escapes are refused.
template <class F>
bool scan_object(Cursor& c, F&& on_member) {
  if (c.done() || c.peek() != '{') return false;
  ++c.p;
  skip_ws(c);
  if (!c.done() && c.peek() == '}') {
    ++c.p;
    return true;
  }
  while (true) {
    skip_ws(c);
    std::string_view key;
    bool escaped = false;
    if (!scan_string(c, key, escaped) || escaped) return false;
    skip_ws(c);
    if (c.done() || c.peek() != ':') return false;
    ++c.p;
    skip_ws(c);
    if (!on_member(key, c)) return false;
    skip_ws(c);
    if (c.done()) return false;
    if (c.peek() == ',') {
      ++c.p;
      continue;
    }
    if (c.peek() == '}') {
      ++c.p;
      return true;
    }
    return false;
  }
}

bool skip_value(Cursor& c, int depth, int* array_count) {
  if (depth > kMaxDepth) return false;
  skip_ws(c);
  if (c.done()) return false;
  switch (c.peek()) {
    case '"': {
      std::string_view raw;
      bool esc;
      return scan_string(c, raw, esc);
    }
    case '{':
      return scan_object(c, [&](std::string_view, Cursor& v) { return skip_value(v, depth + 1); });
    case '[': {
      ++c.p;
      skip_ws(c);
      int n = 0;
      if (!c.done() && c.peek() == ']') {
        ++c.p;
      } else {
        while (true) {
          if (!skip_value(c, depth + 1)) return false;
          ++n;
          skip_ws(c);
          if (c.done()) return false;
          if (c.peek() == ',') {
            ++c.p;
            continue;
          }
          if (c.peek() == ']') {
            ++c.p;
            break;
          }
          return false;
        }
      }
      if (array_count) *array_count = n;
      return true;
    }
    case 't':
      return literal(c, "true");
    case 'f':
      return literal(c, "false");
    case 'n':
      return literal(c, "null");
    default: {
      int v;
      bool integer;
      return scan_number(c, v, integer);
    }
  }
}

bool is_null(Cursor& c) { return !c.done() && c.peek() == 'n'; }

// A string member: sets has/raw/escaped when the value is a string, else skips it.
bool string_member(Cursor& c, bool& has, std::string_view& raw, bool& escaped) {
  if (!c.done() && c.peek() == '"') {
    has = true;
    return scan_string(c, raw, escaped);
  }
  has = false;
  return skip_value(c, 1);
}

bool int_member(Cursor& c, int& out) {
  if (c.done()) return false;
  const char ch = c.peek();
  if (ch == '-' || (ch >= '0' && ch <= '9')) {
    int v = 0;
    bool integer = false;
    if (!scan_number(c, v, integer) || !integer) return false;  // fractional counts: general parser
    out = v;
    return true;
  }
  out = -1;  // not a number: as if absent
  return skip_value(c, 1);
}

}  // namespace

bool scan_chunk(std::string_view data, ScannedChunk& out) {
  out = ScannedChunk{};
  Cursor c{data.data(), data.data() + data.size()};
  skip_ws(c);
  bool has_usage_key = false;
  const bool ok = scan_object(c, [&](std::string_view key, Cursor& v) {
    if (key == "id") {
      bool has = false, esc = false;
      std::string_view raw;
      if (!string_member(v, has, raw, esc) || (has && esc)) return false;
      out.id = has ? raw : std::string_view();
      return true;
    }
    if (key == "error") return is_null(v) && literal(v, "null");  // a real error: general path
    if (key == "object") {
      bool has = false, esc = false;
      std::string_view raw;
      if (!string_member(v, has, raw, esc)) return false;
      return !(has && raw == "error");
    }
    if (key == "usage") {
      has_usage_key = true;
      if (v.done() || v.peek() != '{') {
        out.has_usage = false;
        return skip_value(v, 1);
      }
      out.has_usage = true;
      out.prompt_tokens = out.completion_tokens = -1;
      return scan_object(v, [&](std::string_view k, Cursor& u) {
        if (k == "prompt_tokens") return int_member(u, out.prompt_tokens);
        if (k == "completion_tokens") return int_member(u, out.completion_tokens);
        return skip_value(u, 2);
      });
    }
    if (key == "choices") {
      out.has_choices_key = true;
      out.choices_nonempty = false;
      if (v.done() || v.peek() != '[') return skip_value(v, 1);
      ++v.p;
      skip_ws(v);
      if (!v.done() && v.peek() == ']') {
        ++v.p;
        return true;
      }
      if (v.done() || v.peek() != '{') return false;  // choices[0] not an object: general path reports it
      out.choices_nonempty = true;
      bool has_text = false, text_esc = false, delta_obj = false, delta_content = false, delta_esc = false;
      bool msg_obj = false, msg_content = false, msg_esc = false;
      std::string_view text_raw, delta_raw, msg_raw;
      int lp_content = -1, lp_tokens = -1;
      out.finish_reason = false;
      out.has_reasoning = false;
      const bool choice_ok = scan_object(v, [&](std::string_view k, Cursor& ch) {
        if (k == "text") return string_member(ch, has_text, text_raw, text_esc);
        if (k == "finish_reason") {
          out.finish_reason = !is_null(ch);
          return skip_value(ch, 3);
        }
        if (k == "delta") {
          delta_obj = !ch.done() && ch.peek() == '{';
          if (!delta_obj) return skip_value(ch, 3);
          delta_content = false;
          out.has_reasoning = false;
          return scan_object(ch, [&](std::string_view dk, Cursor& d) {
            if (dk == "content") return string_member(d, delta_content, delta_raw, delta_esc);
            if (dk == "reasoning_content" || dk == "reasoning") {
              bool has = false, esc = false;
              std::string_view raw;
              if (!string_member(d, has, raw, esc)) return false;
              if (has && !raw.empty()) out.has_reasoning = true;
              return true;
            }
            return skip_value(d, 4);
          });
        }
        if (k == "message") {
          msg_obj = !ch.done() && ch.peek() == '{';
          if (!msg_obj) return skip_value(ch, 3);
          msg_content = false;
          return scan_object(ch, [&](std::string_view mk, Cursor& m) {
            if (mk == "content") return string_member(m, msg_content, msg_raw, msg_esc);
            return skip_value(m, 4);
          });
        }
        if (k == "logprobs") {
          lp_content = lp_tokens = -1;
          if (ch.done() || ch.peek() != '{') return skip_value(ch, 3);
          return scan_object(ch, [&](std::string_view lk, Cursor& l) {
            const bool is_array = !l.done() && l.peek() == '[';
            if (lk == "content") {
              lp_content = -1;
              return skip_value(l, 4, is_array ? &lp_content : nullptr);
            }
            if (lk == "tokens") {
              lp_tokens = -1;
              return skip_value(l, 4, is_array ? &lp_tokens : nullptr);
            }
            return skip_value(l, 4);
          });
        }
        return skip_value(ch, 3);
      });
      if (!choice_ok) return false;
      // Same precedence as the general path: text, else delta.content, else message.content.
      if (has_text) {
        out.has_content = true;
        out.content_raw = text_raw;
        out.content_escaped = text_esc;
      } else if (delta_obj) {
        out.has_content = delta_content;
        out.content_raw = delta_raw;
        out.content_escaped = delta_esc;
      } else if (msg_obj) {
        out.has_content = msg_content;
        out.content_raw = msg_raw;
        out.content_escaped = msg_esc;
      }
      if (!delta_obj) out.has_reasoning = false;
      out.logprob_entries = lp_content >= 0 ? lp_content : (lp_tokens >= 0 ? lp_tokens : 0);
      // The rest of the array is skipped (only choices[0] matters).
      while (true) {
        skip_ws(v);
        if (v.done()) return false;
        if (v.peek() == ']') {
          ++v.p;
          return true;
        }
        if (v.peek() != ',') return false;
        ++v.p;
        if (!skip_value(v, 2)) return false;
      }
    }
    return skip_value(v, 1);
  });
  if (!ok) return false;
  skip_ws(c);
  if (!c.done()) return false;
  if (!out.has_choices_key && !has_usage_key) return false;  // the general path says why it is malformed
  return true;
}

bool append_unescaped(std::string_view raw, std::string& out) {
  for (std::size_t i = 0; i < raw.size(); ++i) {
    const char ch = raw[i];
    if (ch != '\\') {
      out.push_back(ch);
      continue;
    }
    if (++i >= raw.size()) return false;
    switch (raw[i]) {
      case '"': out.push_back('"'); break;
      case '\\': out.push_back('\\'); break;
      case '/': out.push_back('/'); break;
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        if (i + 4 >= raw.size()) return false;
        unsigned cp = 0;
        std::from_chars(raw.data() + i + 1, raw.data() + i + 5, cp, 16);
        i += 4;
        if (cp < 0x80) {
          out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
          out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
          out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
          out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
          out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
          out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
        break;
      }
      default: return false;
    }
  }
  return true;
}

}  // namespace qmeter::client::detail
