// Jinja subset: the template source split into text and tags (with transformers' whitespace
// rules), each tag's expression tokenized and parsed into the tree of jinja.h.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "jinja.h"
#include "qmeter/core/text.h"

namespace qmeter::quality::jinja {

namespace {

// ---- Splitting the source ------------------------------------------------------------------

struct Segment {
  enum Kind { kText, kExpr, kStmt } kind;
  std::string text;  // the text, or the tag's inside without its delimiters and controls
  int line;          // where it starts
};

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

// The position of `close` at or after `from`, skipping string literals (a '%}' in a quoted string
// does not end a tag); npos when the tag is never closed.
std::size_t find_close(const std::string& s, std::size_t from, const char* close, bool skip_strings) {
  for (std::size_t i = from; i + 1 < s.size(); ++i) {
    if (skip_strings && (s[i] == '\'' || s[i] == '"')) {
      const char q = s[i];
      for (++i; i < s.size() && s[i] != q; ++i)
        if (s[i] == '\\') ++i;
      if (i >= s.size()) return std::string::npos;
      continue;
    }
    if (s[i] == close[0] && s[i + 1] == close[1]) return i;
  }
  return std::string::npos;
}

std::vector<Segment> split_segments(std::string src, const std::string& where) {
  // keep_trailing_newline=False: one trailing newline of the source is dropped.
  if (!src.empty() && src.back() == '\n') {
    src.pop_back();
    if (!src.empty() && src.back() == '\r') src.pop_back();
  }
  std::vector<Segment> out;
  std::size_t pos = 0;
  int line = 1;
  bool line_starting = true;  // the text to come starts a line (the source's start, or after a newline a tag ate)
  while (pos < src.size()) {
    std::size_t open = pos;
    while ((open = src.find('{', open)) != std::string::npos && open + 1 < src.size() &&
           std::string_view("{%#").find(src[open + 1]) == std::string_view::npos)
      ++open;
    if (open != std::string::npos && open + 1 >= src.size()) open = std::string::npos;
    std::string text = src.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
    const int text_line = line;
    line += static_cast<int>(std::count(text.begin(), text.end(), '\n'));
    if (open == std::string::npos) {
      if (!text.empty()) out.push_back({Segment::kText, text, text_line});
      break;
    }
    const char kind = src[open + 1];
    const int tag_line = line;
    std::size_t body = open + 2;
    char lctl = 0;
    if (body < src.size() && (src[body] == '-' || src[body] == '+')) lctl = src[body++];
    const char* close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
    const std::size_t end = find_close(src, body, close, kind != '#');
    if (end == std::string::npos)
      fail(where, tag_line, fmt::format("'{{{}' is never closed by '{}'", kind, close));
    std::size_t content_end = end;
    char rctl = 0;
    if (content_end > body && (src[content_end - 1] == '-' || src[content_end - 1] == '+')) rctl = src[--content_end];
    const bool block = kind != '{';  // statements and comments: trim_blocks / lstrip_blocks apply
    // Whitespace before the tag.
    if (lctl == '-') {
      while (!text.empty() && is_space(text.back())) text.pop_back();
    } else if (block && lctl != '+') {  // lstrip_blocks: blanks from the line's start to the tag
      const std::size_t l_pos = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
      if ((l_pos > 0 || line_starting) && l_pos < text.size() &&
          std::all_of(text.begin() + static_cast<std::ptrdiff_t>(l_pos), text.end(), is_space))
        text.resize(l_pos);
    }
    if (!text.empty()) out.push_back({Segment::kText, text, text_line});
    const std::string inside = src.substr(body, content_end - body);
    line += static_cast<int>(std::count(inside.begin(), inside.end(), '\n'));
    if (kind != '#') out.push_back({kind == '{' ? Segment::kExpr : Segment::kStmt, inside, tag_line});
    // Whitespace after the tag.
    pos = end + 2;
    if (rctl == '-') {
      while (pos < src.size() && is_space(src[pos])) line += src[pos++] == '\n';
    } else if (block && rctl != '+') {  // trim_blocks: the newline right after a block tag
      if (src.compare(pos, 2, "\r\n") == 0) pos += 2, ++line;
      else if (pos < src.size() && src[pos] == '\n') ++pos, ++line;
    }
    line_starting = pos > 0 && src[pos - 1] == '\n';
  }
  return out;
}

// ---- Tokens of one tag ----------------------------------------------------------------------

struct Tok {
  enum Type { kName, kString, kInt, kFloat, kOp, kEnd } type = kEnd;
  std::string s;
  long long i = 0;
  double f = 0;
  int line = 0;
};

std::vector<Tok> tokenize(const std::string& s, int line, const std::string& where) {
  static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<", ">",
                                     "(",  ")",  "[",  "]",  "{",  "}",  ",", ".", ":", "|", "="};
  std::vector<Tok> out;
  std::size_t i = 0;
  while (i < s.size()) {
    const char c = s[i];
    if (is_space(c)) {
      line += c == '\n';
      ++i;
      continue;
    }
    Tok t;
    t.line = line;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      const std::size_t b = i;
      while (i < s.size() && (std::isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
      t.type = Tok::kName;
      t.s = s.substr(b, i - b);
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      const std::size_t b = i;
      while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
      bool is_float = false;
      if (i + 1 < s.size() && s[i] == '.' && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
        is_float = true;
        for (++i; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]));) ++i;
      }
      std::string digits = s.substr(b, i - b);
      digits.erase(std::remove(digits.begin(), digits.end(), '_'), digits.end());
      t.type = is_float ? Tok::kFloat : Tok::kInt;
      if (is_float) t.f = std::stod(digits);
      else t.i = std::stoll(digits);
    } else if (c == '\'' || c == '"') {
      t.type = Tok::kString;
      for (++i; i < s.size() && s[i] != c; ++i) {
        if (s[i] != '\\' || i + 1 >= s.size()) {
          line += s[i] == '\n';
          t.s += s[i];
          continue;
        }
        const char e = s[++i];
        switch (e) {
          case 'n': t.s += '\n'; break;
          case 't': t.s += '\t'; break;
          case 'r': t.s += '\r'; break;
          case 'b': t.s += '\b'; break;
          case 'f': t.s += '\f'; break;
          case '0': t.s += '\0'; break;
          case '\\': case '\'': case '"': t.s += e; break;
          case '\n': ++line; break;  // a line continuation
          case 'x': case 'u': case 'U': {
            const std::size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            const std::string hex = i + n < s.size() ? s.substr(i + 1, n) : "";
            if (hex.size() != n || hex.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
              fail(where, line, fmt::format("bad \\{} escape in a string literal", e));
            append_utf8(t.s, static_cast<unsigned>(std::stoul(hex, nullptr, 16)));
            i += n;
            break;
          }
          default: t.s += '\\', t.s += e;  // Python keeps unknown escapes as written
        }
      }
      if (i >= s.size()) fail(where, t.line, "a string literal is never closed");
      ++i;
    } else {
      for (const char* op : kOps)
        if (s.compare(i, std::strlen(op), op) == 0) {
          t.type = Tok::kOp;
          t.s = op;
          break;
        }
      if (t.type != Tok::kOp) fail(where, line, fmt::format("unexpected character '{}'", c));
      i += t.s.size();
    }
    out.push_back(std::move(t));
  }
  Tok end;
  end.line = line;
  out.push_back(end);
  return out;
}

// ---- Expressions ----------------------------------------------------------------------------

class ExprParser {
 public:
  ExprParser(std::vector<Tok> toks, const std::string& where) : t_(std::move(toks)), where_(where) {}

  const Tok& peek(std::size_t k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
  bool at_op(const char* op) const { return peek().type == Tok::kOp && peek().s == op; }
  bool at_name(const char* name) const { return peek().type == Tok::kName && peek().s == name; }
  bool at_end() const { return peek().type == Tok::kEnd; }
  bool skip_op(const char* op) { return at_op(op) ? (++p_, true) : false; }
  bool skip_name(const char* name) { return at_name(name) ? (++p_, true) : false; }
  [[noreturn]] void error(const std::string& what) const {
    const Tok& k = peek();
    const std::string got = k.type == Tok::kEnd ? "the end of the tag" : k.type == Tok::kString ? "a string" : "'" + k.s + "'";
    fail(where_, k.line, fmt::format("{}, found {}", what, k.type == Tok::kInt || k.type == Tok::kFloat ? "a number" : got));
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) error(fmt::format("expected '{}'", op));
  }
  std::string expect_name(const char* what) {
    if (peek().type != Tok::kName) error(fmt::format("expected {}", what));
    return t_[p_++].s;
  }
  void expect_end() {
    if (!at_end()) error("expected the end of the tag");
  }

  ExprPtr expression() {  // a if cond else b
    ExprPtr e = or_expr();
    while (at_name("if")) {
      const int line = peek().line;
      ++p_;
      ExprPtr cond = or_expr();
      ExprPtr other = skip_name("else") ? expression() : nullptr;
      e = node(Expr::kCond, line, "", std::move(cond), std::move(e), std::move(other));
    }
    return e;
  }
  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (at_name("or")) e = binary("or", std::move(e), [&] { return and_expr(); });
    return e;
  }

 private:
  template <typename... A>
  ExprPtr node(Expr::Kind kind, int line, std::string name, A&&... args) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    e->name = std::move(name);
    (e->args.push_back(std::forward<A>(args)), ...);
    return e;
  }
  template <typename F>
  ExprPtr binary(std::string op, ExprPtr left, F right) {
    const int line = peek().line;
    ++p_;
    return node(Expr::kBinary, line, std::move(op), std::move(left), right());
  }

  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (at_name("and")) e = binary("and", std::move(e), [&] { return not_expr(); });
    return e;
  }
  ExprPtr not_expr() {
    if (at_name("not")) {
      const int line = peek().line;
      ++p_;
      return node(Expr::kUnary, line, "not", not_expr());
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr e = add();
    for (;;) {
      if (peek().type == Tok::kOp && (at_op("==") || at_op("!=") || at_op("<") || at_op(">") || at_op("<=") || at_op(">="))) {
        const std::string op = peek().s;
        e = binary(op, std::move(e), [&] { return add(); });
      } else if (at_name("in")) {
        e = binary("in", std::move(e), [&] { return add(); });
      } else if (at_name("not") && peek(1).type == Tok::kName && peek(1).s == "in") {
        ++p_;
        e = binary("not in", std::move(e), [&] { return add(); });
      } else {
        return e;
      }
    }
  }
  ExprPtr add() {  // Jinja: + and - bind looser than ~
    ExprPtr e = concat();
    while (at_op("+") || at_op("-")) {
      const std::string op = peek().s;
      e = binary(op, std::move(e), [&] { return concat(); });
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = mul();
    while (at_op("~")) e = binary("~", std::move(e), [&] { return mul(); });
    return e;
  }
  ExprPtr mul() {
    ExprPtr e = unary();
    while (at_op("*") || at_op("/") || at_op("//") || at_op("%")) {
      const std::string op = peek().s;
      e = binary(op, std::move(e), [&] { return unary(); });
    }
    return e;
  }
  ExprPtr unary() {
    if (at_op("-") || at_op("+")) {
      const Tok k = peek();
      ++p_;
      ExprPtr operand = unary();
      if (k.s == "+") return operand;
      return node(Expr::kUnary, k.line, "-", std::move(operand));
    }
    return filters(postfix(primary()));
  }

  void call_args(Expr& call) {  // after '(' up to and with ')'
    while (!skip_op(")")) {
      if (peek().type == Tok::kName && peek(1).type == Tok::kOp && peek(1).s == "=") {
        std::string key = t_[p_].s;
        p_ += 2;
        call.kwargs.emplace_back(std::move(key), expression());
      } else {
        call.args.push_back(expression());
      }
      if (!at_op(")")) expect_op(",");
    }
  }

  ExprPtr filters(ExprPtr e) {
    for (;;) {
      if (at_op("|")) {
        ++p_;
        const int line = peek().line;
        std::string name = expect_name("a filter name after '|'");
        if (!has_filter(name)) fail(where_, line, fmt::format("unknown filter '{}'", name));
        e = node(Expr::kFilter, line, std::move(name), std::move(e));
        if (skip_op("(")) call_args(*e);
      } else if (at_name("is")) {
        const int line = peek().line;
        ++p_;
        const bool negated = skip_name("not");
        std::string name = at_name("none") ? (++p_, "none") : expect_name("a test name after 'is'");
        if (!has_test(name)) fail(where_, line, fmt::format("unknown test '{}'", name));
        e = node(Expr::kTest, line, std::move(name), std::move(e));
        e->negated = negated;
        if (skip_op("(")) call_args(*e);
        else if (peek().type == Tok::kString || peek().type == Tok::kInt || peek().type == Tok::kFloat)
          e->args.push_back(primary());  // `is equalto 'x'`, `is divisibleby 3`
      } else {
        return e;
      }
    }
  }

  ExprPtr postfix(ExprPtr e) {
    for (;;) {
      const int line = peek().line;
      if (skip_op(".")) {
        if (peek().type == Tok::kInt) {  // x.0: Jinja's item access by a literal index
          e = node(Expr::kItem, line, "", std::move(e), literal(Json(t_[p_++].i), line));
          continue;
        }
        e = node(Expr::kAttr, line, expect_name("an attribute name after '.'"), std::move(e));
      } else if (skip_op("[")) {
        ExprPtr parts[3];
        bool slice = false;
        for (int k = 0; k < 3; ++k) {
          if (!at_op(":") && !at_op("]")) parts[k] = expression();
          if (k < 2 && skip_op(":")) slice = true;
          else break;
        }
        expect_op("]");
        if (!slice && !parts[0]) error("expected a subscript");
        e = slice ? node(Expr::kSlice, line, "", std::move(e), std::move(parts[0]), std::move(parts[1]), std::move(parts[2]))
                  : node(Expr::kItem, line, "", std::move(e), std::move(parts[0]));
      } else if (skip_op("(")) {
        e = node(Expr::kCall, line, "", std::move(e));
        call_args(*e);
      } else {
        return e;
      }
    }
  }

  ExprPtr literal(Json j, int line) {
    auto e = node(Expr::kLiteral, line, "");
    e->literal = std::move(j);
    return e;
  }

  ExprPtr primary() {
    const Tok& k = peek();
    const int line = k.line;
    switch (k.type) {
      case Tok::kName: {
        ++p_;
        if (k.s == "true" || k.s == "True") return literal(true, line);
        if (k.s == "false" || k.s == "False") return literal(false, line);
        if (k.s == "none" || k.s == "None") return literal(nullptr, line);
        return node(Expr::kName, line, k.s);
      }
      case Tok::kString: {
        std::string s;
        while (peek().type == Tok::kString) s += t_[p_++].s;  // adjacent literals join, as in Python
        return literal(s, line);
      }
      case Tok::kInt: ++p_; return literal(k.i, line);
      case Tok::kFloat: ++p_; return literal(k.f, line);
      case Tok::kOp:
        if (skip_op("(")) {  // a parenthesized expression, or a tuple (a list here)
          ExprPtr e = expression();
          if (skip_op(")")) return e;
          auto tuple = node(Expr::kList, line, "", std::move(e));
          while (skip_op(",") && !at_op(")")) tuple->args.push_back(expression());
          expect_op(")");
          return tuple;
        }
        if (skip_op("[")) {
          auto e = node(Expr::kList, line, "");
          while (!skip_op("]")) {
            e->args.push_back(expression());
            if (!at_op("]")) expect_op(",");
          }
          return e;
        }
        if (skip_op("{")) {
          auto e = node(Expr::kDict, line, "");
          while (!skip_op("}")) {
            e->args.push_back(expression());
            expect_op(":");
            e->args.push_back(expression());
            if (!at_op("}")) expect_op(",");
          }
          return e;
        }
        break;
      case Tok::kEnd: break;
    }
    error("expected a value");
  }

  std::vector<Tok> t_;
  std::size_t p_ = 0;
  const std::string& where_;
};

// ---- Statements -----------------------------------------------------------------------------

class StmtParser {
 public:
  StmtParser(std::vector<Segment> segs, const std::string& where) : segs_(std::move(segs)), where_(where) {}

  Body parse() {
    Body body;
    std::string end;
    parse_until({}, body, end, 0, "");
    return body;
  }

 private:
  // Parses statements into `body` until a block tag whose keyword is in `ends` (returned in
  // `end`, its parser left at the tag's rest in `rest_`); at the source's end that is an error
  // naming the block opened at `open_line`.
  void parse_until(const std::set<std::string>& ends, Body& body, std::string& end, int open_line, const std::string& opener) {
    while (i_ < segs_.size()) {
      const Segment& s = segs_[i_++];
      if (s.kind == Segment::kText) {
        auto st = std::make_unique<Stmt>();
        st->kind = Stmt::kText;
        st->line = s.line;
        st->text = s.text;
        body.push_back(std::move(st));
        continue;
      }
      auto p = std::make_unique<ExprParser>(tokenize(s.text, s.line, where_), where_);
      if (s.kind == Segment::kExpr) {
        auto st = std::make_unique<Stmt>();
        st->kind = Stmt::kOutput;
        st->line = s.line;
        st->expr = p->expression();
        p->expect_end();
        body.push_back(std::move(st));
        continue;
      }
      const std::string kw = p->expect_name("a statement keyword");
      if (ends.count(kw)) {
        end = kw;
        rest_ = std::move(p);
        return;
      }
      body.push_back(statement(kw, *p, s.line));
    }
    if (!ends.empty())
      fail(where_, open_line, fmt::format("'{{% {} %}}' is never closed (expected '{{% {} %}}')", opener, *ends.rbegin()));
  }

  StmtPtr statement(const std::string& kw, ExprParser& p, int line) {
    auto st = std::make_unique<Stmt>();
    st->line = line;
    if (kw == "if") {
      st->kind = Stmt::kIf;
      ExprPtr cond = p.expression();
      p.expect_end();
      for (;;) {
        Body b;
        std::string end;
        parse_until({"elif", "else", "endif"}, b, end, line, "if");
        st->branches.emplace_back(std::move(cond), std::move(b));
        if (end == "elif") {
          cond = rest_->expression();
          rest_->expect_end();
          continue;
        }
        rest_->expect_end();
        if (end == "else") {
          parse_until({"endif"}, st->else_body, end, line, "if");
          rest_->expect_end();
        }
        return st;
      }
    }
    if (kw == "for") {
      st->kind = Stmt::kFor;
      do st->targets.push_back(p.expect_name("a loop variable"));
      while (p.skip_op(","));
      if (!p.skip_name("in")) p.error("expected 'in'");
      st->expr = p.or_expr();  // not expression(): a trailing `if` filters the items
      if (p.skip_name("if")) st->filter = p.expression();
      p.skip_name("recursive");
      p.expect_end();
      Body b;
      std::string end;
      parse_until({"else", "endfor"}, b, end, line, "for");
      rest_->expect_end();
      st->branches.emplace_back(nullptr, std::move(b));
      if (end == "else") {
        parse_until({"endfor"}, st->else_body, end, line, "for");
        rest_->expect_end();
      }
      return st;
    }
    if (kw == "set") {
      st->kind = Stmt::kSet;
      st->targets.push_back(p.expect_name("a variable name"));
      if (p.skip_op(".")) st->targets.push_back(p.expect_name("an attribute name"));
      if (!p.skip_op("=")) p.error("expected '=' (block {% set %} ... {% endset %} is not supported)");
      st->expr = p.expression();
      p.expect_end();
      return st;
    }
    if (kw == "break" || kw == "continue") {
      st->kind = kw == "break" ? Stmt::kBreak : Stmt::kContinue;
      p.expect_end();
      return st;
    }
    if (kw == "generation") {  // transformers' assistant-mask marker: its body renders as is
      p.expect_end();
      st->kind = Stmt::kIf;
      Body b;
      std::string end;
      parse_until({"endgeneration"}, b, end, line, "generation");
      rest_->expect_end();
      auto yes = std::make_unique<Expr>();
      yes->literal = true;
      st->branches.emplace_back(std::move(yes), std::move(b));
      return st;
    }
    static const std::set<std::string> kStray = {"elif", "else", "endif", "endfor", "endgeneration"};
    if (kStray.count(kw)) fail(where_, line, fmt::format("'{{% {} %}}' without its opening tag", kw));
    fail(where_, line, fmt::format("unsupported tag '{{% {} %}}' (supported: if, for, set, break, continue, generation)", kw));
  }

  std::vector<Segment> segs_;
  std::size_t i_ = 0;
  const std::string& where_;
  std::unique_ptr<ExprParser> rest_;  // the parser of the tag that ended the last block
};

}  // namespace

Template::Template(const std::string& source, std::string where) : where_(std::move(where)) {
  StmtParser parser(split_segments(source, where_), where_);
  body_ = std::make_shared<const Body>(parser.parse());
}

}  // namespace qmeter::quality::jinja
