// Jinja subset: rendering the tree of jinja.h with Python's value semantics (truthiness, `+` on
// strings and lists, `and` / `or` returning an operand, Undefined for missing names and keys).
#include <fmt/format.h>

#include <cmath>

#include "jinja.h"

namespace qmeter::quality::jinja {

namespace {

class Renderer {
 public:
  Renderer(const std::string& where, const Json& variables) : where_(where) {
    scopes_.emplace_back();
    for (const auto& [k, v] : variables.items()) scopes_.back()[k] = Value{v};
  }

  enum Flow { kNext, kBreak, kContinue };

  Flow exec(const Body& body) {
    for (const auto& st : body) {
      const Flow f = exec(*st);
      if (f != kNext) return f;
    }
    return kNext;
  }

  std::string out;

 private:
  [[noreturn]] void error(int line, const std::string& what) const { fail(where_, line, what); }

  Flow exec(const Stmt& st) {
    switch (st.kind) {
      case Stmt::kText: out += st.text; return kNext;
      case Stmt::kOutput: out += to_str(defined(eval(*st.expr), st.line, false)); return kNext;
      case Stmt::kBreak: return kBreak;
      case Stmt::kContinue: return kContinue;
      case Stmt::kSet: {
        Value v = eval(*st.expr);
        if (st.targets.size() == 1) {
          scopes_.back()[st.targets[0]] = std::move(v);
          return kNext;
        }
        Value* ns = lookup(st.targets[0]);
        if (ns == nullptr || ns->kind != Value::kNamespace)
          error(st.line, fmt::format("'{}' is not a namespace(): only a namespace's attributes can be set", st.targets[0]));
        ns->j[st.targets[1]] = v.j;
        return kNext;
      }
      case Stmt::kIf:
        for (const auto& [cond, body] : st.branches)
          if (truthy(eval(*cond))) return exec(body);
        return exec(st.else_body);
      case Stmt::kFor: return exec_for(st);
    }
    return kNext;
  }

  Flow exec_for(const Stmt& st) {
    const Value seq = eval(*st.expr);
    std::vector<Json> items;
    if (seq.kind == Value::kUndefined) {
      // Jinja iterates an undefined value as empty.
    } else if (seq.j.is_array()) {
      items.assign(seq.j.begin(), seq.j.end());
    } else if (seq.j.is_object()) {
      for (const auto& [k, v] : seq.j.items()) items.emplace_back(k);
    } else if (seq.j.is_string()) {
      for (const auto& c : call_method(seq, "__chars__", {}, where_, st.line).j) items.push_back(c);
    } else {
      error(st.line, fmt::format("'{}' object is not iterable", type_name(seq)));
    }
    if (st.filter) {  // `for x in xs if cond`: filtered before loop.length is known, as Jinja does
      std::vector<Json> kept;
      for (auto& item : items) {
        scopes_.emplace_back();
        bind(st, item);
        if (truthy(eval(*st.filter))) kept.push_back(std::move(item));
        scopes_.pop_back();
      }
      items = std::move(kept);
    }
    const auto n = static_cast<long long>(items.size());
    for (long long i = 0; i < n; ++i) {
      scopes_.emplace_back();
      Json loop = {{"index", i + 1}, {"index0", i},        {"revindex", n - i}, {"revindex0", n - i - 1},
                   {"first", i == 0}, {"last", i == n - 1}, {"length", n}};
      if (i > 0) loop["previtem"] = items[static_cast<std::size_t>(i - 1)];
      if (i + 1 < n) loop["nextitem"] = items[static_cast<std::size_t>(i + 1)];
      scopes_.back()["loop"] = Value{std::move(loop)};
      bind(st, items[static_cast<std::size_t>(i)]);
      const Flow f = exec(st.branches[0].second);
      scopes_.pop_back();
      if (f == kBreak) break;
    }
    if (n == 0) return exec(st.else_body);
    return kNext;
  }

  void bind(const Stmt& st, const Json& item) {
    if (st.targets.size() == 1) {
      scopes_.back()[st.targets[0]] = Value{item};
      return;
    }
    if (!item.is_array() || item.size() != st.targets.size())
      error(st.line, fmt::format("cannot unpack {} into {} loop variables", to_str(Value{item}), st.targets.size()));
    for (std::size_t k = 0; k < st.targets.size(); ++k) scopes_.back()[st.targets[k]] = Value{item[k]};
  }

  Value* lookup(const std::string& name) {
    for (auto s = scopes_.rbegin(); s != scopes_.rend(); ++s)
      if (auto it = s->find(name); it != s->end()) return &it->second;
    return nullptr;
  }

  // Using an Undefined value other than printing, testing or truth (attribute access, arithmetic)
  // is an error, as with Jinja's default Undefined.
  const Value& defined(const Value& v, int line, bool strict) const {
    if (strict && v.kind == Value::kUndefined) error(line, fmt::format("'{}' is undefined", v.hint));
    return v;
  }

  std::vector<Value> eval_args(const Expr& e, std::size_t first) {
    std::vector<Value> out;
    for (std::size_t k = first; k < e.args.size(); ++k) out.push_back(e.args[k] ? eval(*e.args[k]) : Value::undefined("none"));
    return out;
  }

  static long long as_index(const Value& v, int line, const Renderer& r) {
    if (!v.j.is_number_integer()) r.error(line, fmt::format("indices must be integers, not {}", type_name(v)));
    return v.j.get<long long>();
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::kLiteral: return Value{e.literal};
      case Expr::kName: {
        if (const Value* v = lookup(e.name)) return *v;
        return Value::undefined(e.name);
      }
      case Expr::kAttr: {
        const Value obj = defined(eval(*e.args[0]), e.line, true);
        if (obj.j.is_object() && obj.j.contains(e.name)) return Value{obj.j[e.name]};
        return Value::undefined(fmt::format("{}.{}", obj.kind == Value::kUndefined ? obj.hint : type_name(obj), e.name));
      }
      case Expr::kItem: {
        const Value obj = defined(eval(*e.args[0]), e.line, true);
        const Value key = eval(*e.args[1]);
        if (obj.j.is_object()) {
          if (key.j.is_string() && obj.j.contains(key.j.get<std::string>())) return Value{obj.j[key.j.get<std::string>()]};
          return Value::undefined(fmt::format("{}[{}]", type_name(obj), to_str(key)));
        }
        if (obj.j.is_array() || obj.j.is_string()) {
          const Json seq = obj.j.is_string() ? call_method(obj, "__chars__", {}, where_, e.line).j : obj.j;
          long long i = as_index(key, e.line, *this);
          const auto n = static_cast<long long>(seq.size());
          if (i < 0) i += n;
          if (i < 0 || i >= n) return Value::undefined(fmt::format("{}[{}] (out of range)", type_name(obj), to_str(key)));
          return Value{seq[static_cast<std::size_t>(i)]};
        }
        error(e.line, fmt::format("'{}' object is not subscriptable", type_name(obj)));
      }
      case Expr::kSlice: return slice(e);
      case Expr::kCall: return call(e);
      case Expr::kFilter: {
        const Value operand = eval(*e.args[0]);
        std::map<std::string, Value> kwargs;
        for (const auto& [k, v] : e.kwargs) kwargs[k] = eval(*v);
        return apply_filter(e.name, operand, eval_args(e, 1), kwargs, where_, e.line);
      }
      case Expr::kTest: {
        const bool r = apply_test(e.name, eval(*e.args[0]), eval_args(e, 1), where_, e.line);
        return Value{r != e.negated};
      }
      case Expr::kUnary: {
        const Value v = eval(*e.args[0]);
        if (e.name == "not") return Value{!truthy(v)};
        defined(v, e.line, true);
        if (v.j.is_number_integer()) return Value{-v.j.get<long long>()};
        if (v.j.is_number()) return Value{-v.j.get<double>()};
        error(e.line, fmt::format("bad operand type for unary -: '{}'", type_name(v)));
      }
      case Expr::kBinary: return binary(e);
      case Expr::kCond: {
        if (truthy(eval(*e.args[0]))) return eval(*e.args[1]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined("the missing else of a conditional expression");
      }
      case Expr::kList: {
        Json a = Json::array();
        for (const auto& x : e.args) a.push_back(eval(*x).j);
        return Value{a};
      }
      case Expr::kDict: {
        Json o = Json::object();
        for (std::size_t k = 0; k + 1 < e.args.size(); k += 2) o[to_str(eval(*e.args[k]))] = eval(*e.args[k + 1]).j;
        return Value{o};
      }
    }
    error(e.line, "unknown expression");
  }

  Value slice(const Expr& e) {
    const Value obj = defined(eval(*e.args[0]), e.line, true);
    if (!obj.j.is_array() && !obj.j.is_string()) error(e.line, fmt::format("'{}' object cannot be sliced", type_name(obj)));
    const Json seq = obj.j.is_string() ? call_method(obj, "__chars__", {}, where_, e.line).j : obj.j;
    const auto n = static_cast<long long>(seq.size());
    auto part = [&](int k, long long fallback) {
      if (!e.args[static_cast<std::size_t>(k)]) return fallback;
      const Value v = eval(*e.args[static_cast<std::size_t>(k)]);
      return v.j.is_null() ? fallback : as_index(v, e.line, *this);
    };
    const long long step = part(3, 1);
    if (step == 0) error(e.line, "slice step cannot be zero");
    // Python's slice.indices().
    auto clamp = [&](long long i, long long lo, long long hi) {
      if (i < 0) i += n;
      return std::clamp(i, lo, hi);
    };
    const long long start = step > 0 ? clamp(part(1, 0), 0, n) : clamp(part(1, n - 1), -1, n - 1);
    const long long stop = step > 0 ? clamp(part(2, n), 0, n) : (e.args[2] ? clamp(part(2, -1), -1, n - 1) : -1);
    Json out = Json::array();
    for (long long i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(seq[static_cast<std::size_t>(i)]);
    if (!obj.j.is_string()) return Value{out};
    std::string s;
    for (const auto& c : out) s += c.get<std::string>();
    return Value{s};
  }

  Value call(const Expr& e) {
    const Expr& callee = *e.args[0];
    std::vector<Value> args = eval_args(e, 1);
    if (callee.kind == Expr::kAttr) {
      const Value obj = defined(eval(*callee.args[0]), e.line, true);
      if (!e.kwargs.empty()) error(e.line, fmt::format("method {}() takes no keyword arguments here", callee.name));
      return call_method(obj, callee.name, args, where_, e.line);
    }
    const std::string name = callee.kind == Expr::kName ? callee.name : "";
    if (name == "raise_exception") {
      if (lookup(name)) error(e.line, "'raise_exception' is not callable");
      fail(where_, e.line, fmt::format("the template raised an error: {}", args.empty() ? "" : to_str(args[0])));
    }
    if (name == "namespace") {
      Value ns{Json::object(), Value::kNamespace, ""};
      for (const auto& [k, v] : e.kwargs) ns.j[k] = eval(*v).j;
      return ns;
    }
    if (name == "range") {
      long long lo = 0, hi = 0, step = 1;
      if (args.size() == 1) hi = as_index(args[0], e.line, *this);
      else if (args.size() >= 2) lo = as_index(args[0], e.line, *this), hi = as_index(args[1], e.line, *this);
      if (args.size() == 3) step = as_index(args[2], e.line, *this);
      if (args.empty() || args.size() > 3 || step == 0) error(e.line, "range() takes 1 to 3 integers and a non-zero step");
      Json out = Json::array();
      for (long long i = lo; step > 0 ? i < hi : i > hi; i += step) out.push_back(i);
      return Value{out};
    }
    if (!name.empty() && !lookup(name)) error(e.line, fmt::format("'{}' is undefined (not a known function)", name));
    error(e.line, "only raise_exception(), namespace(), range() and string / dict methods can be called");
  }

  Value binary(const Expr& e) {
    const std::string& op = e.name;
    const Value a = eval(*e.args[0]);
    if (op == "and") return truthy(a) ? eval(*e.args[1]) : a;
    if (op == "or") return truthy(a) ? a : eval(*e.args[1]);
    const Value b = eval(*e.args[1]);
    if (op == "~") return Value{to_str(a) + to_str(b)};
    if (op == "==" || op == "!=") {
      const bool eq = a.kind == Value::kUndefined || b.kind == Value::kUndefined ? a.kind == b.kind : a.j == b.j;
      return Value{eq == (op == "==")};
    }
    if (op == "in" || op == "not in") {
      defined(b, e.line, true);
      bool found = false;
      if (b.j.is_string()) {
        if (!a.j.is_string()) error(e.line, fmt::format("'in <string>' requires a string, not {}", type_name(a)));
        found = b.j.get<std::string>().find(a.j.get<std::string>()) != std::string::npos;
      } else if (b.j.is_array()) {
        for (const auto& x : b.j) found = found || x == a.j;
      } else if (b.j.is_object()) {
        found = a.j.is_string() && b.j.contains(a.j.get<std::string>());
      } else {
        error(e.line, fmt::format("argument of type '{}' is not iterable", type_name(b)));
      }
      return Value{found == (op == "in")};
    }
    defined(a, e.line, true);
    defined(b, e.line, true);
    if (op == "<" || op == ">" || op == "<=" || op == ">=") {
      const bool comparable = (a.j.is_number() && b.j.is_number()) || (a.j.is_string() && b.j.is_string());
      if (!comparable) error(e.line, fmt::format("'{}' not supported between '{}' and '{}'", op, type_name(a), type_name(b)));
      const bool lt = a.j < b.j, gt = b.j < a.j;
      return Value{op == "<" ? lt : op == ">" ? gt : op == "<=" ? !gt : !lt};
    }
    if (op == "+" && a.j.is_string() && b.j.is_string()) return Value{a.j.get<std::string>() + b.j.get<std::string>()};
    if (op == "+" && a.j.is_array() && b.j.is_array()) {
      Json out = a.j;
      for (const auto& x : b.j) out.push_back(x);
      return Value{out};
    }
    if (op == "*" && a.j.is_string() && b.j.is_number_integer()) {
      std::string out;
      for (long long k = 0; k < b.j.get<long long>(); ++k) out += a.j.get<std::string>();
      return Value{out};
    }
    if (!a.j.is_number() || !b.j.is_number() || a.j.is_boolean() || b.j.is_boolean())
      error(e.line, fmt::format("unsupported operand types for {}: '{}' and '{}'", op, type_name(a), type_name(b)));
    const bool ints = a.j.is_number_integer() && b.j.is_number_integer();
    if (ints && op != "/") {
      const long long x = a.j.get<long long>(), y = b.j.get<long long>();
      if ((op == "//" || op == "%") && y == 0) error(e.line, "integer division or modulo by zero");
      if (op == "+") return Value{x + y};
      if (op == "-") return Value{x - y};
      if (op == "*") return Value{x * y};
      const long long q = x / y - ((x % y != 0) && ((x < 0) != (y < 0)));  // Python floors
      return Value{op == "//" ? q : x - q * y};
    }
    const double x = a.j.get<double>(), y = b.j.get<double>();
    if ((op == "/" || op == "//" || op == "%") && y == 0) error(e.line, "division by zero");
    if (op == "+") return Value{x + y};
    if (op == "-") return Value{x - y};
    if (op == "*") return Value{x * y};
    if (op == "/") return Value{x / y};
    if (op == "//") return Value{std::floor(x / y)};
    return Value{x - std::floor(x / y) * y};
  }

  const std::string& where_;
  std::vector<std::map<std::string, Value>> scopes_;  // innermost last; each loop iteration has its own
};

}  // namespace

std::string Template::render(const Json& variables) const {
  Renderer r(where_, variables);
  r.exec(*body_);
  return std::move(r.out);
}

}  // namespace qmeter::quality::jinja
