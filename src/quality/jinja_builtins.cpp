// Jinja subset: Python's str() / truth / json.dumps, and the filter, test and method tables.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>

#include "jinja.h"
#include "qmeter/core/error.h"

namespace qmeter::quality::jinja {

void fail(const std::string& where, int line, const std::string& message) {
  throw UsageError(fmt::format("{}: template line {}: {}", where, line, message));
}

namespace {

const char* const kSpaces = " \t\n\r\f\v";

std::string strip(const std::string& s, const std::string& chars, bool left, bool right) {
  std::size_t b = 0, e = s.size();
  if (left) {
    b = s.find_first_not_of(chars);
    if (b == std::string::npos) return "";
  }
  if (right) {
    const auto last = s.find_last_not_of(chars);
    if (last == std::string::npos) return "";
    e = last + 1;
  }
  return b < e ? s.substr(b, e - b) : "";
}

std::string py_repr_string(const std::string& s) {
  const char q = s.find('\'') != std::string::npos && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == '\\' || c == q) out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else out += c;
  }
  return out + q;
}

std::string py_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", d);
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

std::string repr(const Json& j) {  // Python's repr() of the value inside a list or dict
  if (j.is_string()) return py_repr_string(j.get<std::string>());
  if (j.is_array()) {
    std::string out = "[";
    for (std::size_t i = 0; i < j.size(); ++i) out += (i ? ", " : "") + repr(j[i]);
    return out + "]";
  }
  if (j.is_object()) {
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : j.items()) out += (first ? "" : ", ") + py_repr_string(k) + ": " + repr(v), first = false;
    return out + "}";
  }
  return to_str(Value{j});
}

std::vector<std::string> chars(const std::string& s) {  // code points, as Python iterates a str
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = 1;
    while (i + n < s.size() && (static_cast<unsigned char>(s[i + n]) & 0xC0) == 0x80) ++n;
    out.push_back(s.substr(i, n));
    i += n;
  }
  return out;
}

std::string case_map(std::string s, int mode) {  // 0 lower, 1 upper, 2 capitalize, 3 title (ASCII letters)
  bool word_start = true;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    const bool alpha = std::isalpha(c) != 0;
    bool up = mode == 1;
    if (mode == 2) up = i == 0;
    if (mode == 3) up = word_start;
    s[i] = static_cast<char>(up ? std::toupper(c) : std::tolower(c));
    word_start = !alpha;
  }
  return s;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to, long long count) {
  if (from.empty()) return s;
  for (std::size_t p = 0; count != 0 && (p = s.find(from, p)) != std::string::npos; p += to.size(), --count)
    s.replace(p, from.size(), to);
  return s;
}

std::vector<std::string> split(const std::string& s, const Value* sep, long long maxsplit) {
  std::vector<std::string> out;
  if (sep == nullptr || sep->j.is_null()) {  // runs of whitespace, no empty parts
    std::size_t i = s.find_first_not_of(kSpaces);
    while (i != std::string::npos) {
      if (maxsplit >= 0 && static_cast<long long>(out.size()) == maxsplit) {
        out.push_back(strip(s.substr(i), kSpaces, false, true));
        break;
      }
      const std::size_t e = s.find_first_of(kSpaces, i);
      out.push_back(s.substr(i, e == std::string::npos ? std::string::npos : e - i));
      i = e == std::string::npos ? e : s.find_first_not_of(kSpaces, e);
    }
    return out;
  }
  const std::string& d = sep->j.get_ref<const std::string&>();
  std::size_t b = 0;
  for (std::size_t p; !d.empty() && (maxsplit < 0 || static_cast<long long>(out.size()) < maxsplit) &&
                      (p = s.find(d, b)) != std::string::npos;
       b = p + d.size())
    out.push_back(s.substr(b, p - b));
  out.push_back(s.substr(b));
  return out;
}

// ---- Filters: one table -----------------------------------------------------------------------

struct FilterCall {
  const Value& v;
  const std::vector<Value>& args;
  const std::map<std::string, Value>& kwargs;
  const std::string& where;
  int line;
  // The argument at `pos` or named `name`; nullptr when absent.
  const Value* arg(std::size_t pos, const char* name) const {
    if (pos < args.size()) return &args[pos];
    auto it = kwargs.find(name);
    return it == kwargs.end() ? nullptr : &it->second;
  }
  [[noreturn]] void error(const std::string& what) const { fail(where, line, what); }
};

Json sequence_of(const FilterCall& c, const char* filter) {
  const Value& v = c.v;
  if (v.kind == Value::kUndefined) return Json::array();
  if (v.j.is_array()) return v.j;
  if (v.j.is_string()) return Json(chars(v.j.get<std::string>()));
  if (v.j.is_object()) {
    Json keys = Json::array();
    for (const auto& [k, x] : v.j.items()) keys.push_back(k);
    return keys;
  }
  c.error(fmt::format("filter '{}' needs a list, a string or a dict, not {}", filter, type_name(v)));
}

// selectattr / rejectattr: items whose attribute passes the test (no test: is truthy).
Value select_attr(const FilterCall& c, bool keep) {
  const Value* attr = c.arg(0, "attribute");
  if (attr == nullptr || !attr->j.is_string()) c.error("selectattr / rejectattr need an attribute name");
  Json out = Json::array();
  for (const auto& item : sequence_of(c, "selectattr")) {
    const std::string& a = attr->j.get_ref<const std::string&>();
    const Value field = item.is_object() && item.contains(a) ? Value{item[a]} : Value::undefined(a);
    bool pass = truthy(field);
    if (c.args.size() >= 2) {
      const std::string test = to_str(c.args[1]);
      if (!has_test(test)) c.error(fmt::format("unknown test '{}'", test));
      pass = apply_test(test, field, std::vector<Value>(c.args.begin() + 2, c.args.end()), c.where, c.line);
    }
    if (pass == keep) out.push_back(item);
  }
  return Value{out};
}

using FilterFn = Value (*)(const FilterCall&);
struct FilterEntry {
  const char* name;
  FilterFn fn;
};

const FilterEntry kFilters[] = {
    {"trim", [](const FilterCall& c) {
       const Value* chars_arg = c.arg(0, "chars");
       return Value{strip(to_str(c.v), chars_arg ? to_str(*chars_arg) : kSpaces, true, true)};
     }},
    {"length", [](const FilterCall& c) { return Value{static_cast<long long>(sequence_of(c, "length").size())}; }},
    {"count", [](const FilterCall& c) { return Value{static_cast<long long>(sequence_of(c, "count").size())}; }},
    {"upper", [](const FilterCall& c) { return Value{case_map(to_str(c.v), 1)}; }},
    {"lower", [](const FilterCall& c) { return Value{case_map(to_str(c.v), 0)}; }},
    {"capitalize", [](const FilterCall& c) { return Value{case_map(to_str(c.v), 2)}; }},
    {"title", [](const FilterCall& c) { return Value{case_map(to_str(c.v), 3)}; }},
    {"string", [](const FilterCall& c) { return Value{to_str(c.v)}; }},
    {"safe", [](const FilterCall& c) { return c.v; }},
    {"tojson", [](const FilterCall& c) {
       const Value* indent = c.arg(0, "indent");
       return Value{dumps(c.v.j, indent && indent->j.is_number_integer() ? indent->j.get<int>() : -1)};
     }},
    {"default", [](const FilterCall& c) {
       const Value* fallback = c.arg(0, "default_value");
       const Value* boolean = c.arg(1, "boolean");
       const bool use = c.v.kind == Value::kUndefined || (boolean && truthy(*boolean) && !truthy(c.v));
       return use ? (fallback ? *fallback : Value{""}) : c.v;
     }},
    {"first", [](const FilterCall& c) {
       const Json s = sequence_of(c, "first");
       return s.empty() ? Value::undefined("first of an empty sequence") : Value{s.front()};
     }},
    {"last", [](const FilterCall& c) {
       const Json s = sequence_of(c, "last");
       return s.empty() ? Value::undefined("last of an empty sequence") : Value{s.back()};
     }},
    {"replace", [](const FilterCall& c) {
       const Value* from = c.arg(0, "old");
       const Value* to = c.arg(1, "new");
       const Value* count = c.arg(2, "count");
       if (!from || !to) c.error("replace needs the old and the new string");
       return Value{replace_all(to_str(c.v), to_str(*from), to_str(*to), count ? count->j.get<long long>() : -1)};
     }},
    {"join", [](const FilterCall& c) {
       const Value* sep = c.arg(0, "d");
       const Value* attr = c.arg(1, "attribute");
       std::string out;
       bool first = true;
       for (const auto& item : sequence_of(c, "join")) {
         const Json& x = attr && item.is_object() ? item.value(to_str(*attr), Json("")) : item;
         out += (first ? "" : (sep ? to_str(*sep) : "")) + to_str(Value{x});
         first = false;
       }
       return Value{out};
     }},
    {"list", [](const FilterCall& c) { return Value{sequence_of(c, "list")}; }},
    {"reverse", [](const FilterCall& c) {
       Json s = sequence_of(c, "reverse");
       std::reverse(s.begin(), s.end());
       if (!c.v.j.is_string()) return Value{s};
       std::string out;
       for (const auto& x : s) out += x.get<std::string>();
       return Value{out};
     }},
    {"items", [](const FilterCall& c) { return call_method(c.v, "items", {}, c.where, c.line); }},
    {"int", [](const FilterCall& c) {
       if (c.v.j.is_number()) return Value{static_cast<long long>(c.v.j.get<double>())};
       try {
         return Value{std::stoll(to_str(c.v))};
       } catch (const std::exception&) {
         return Value{0LL};
       }
     }},
    {"float", [](const FilterCall& c) {
       if (c.v.j.is_number()) return Value{c.v.j.get<double>()};
       try {
         return Value{std::stod(to_str(c.v))};
       } catch (const std::exception&) {
         return Value{0.0};
       }
     }},
    {"selectattr", [](const FilterCall& c) { return select_attr(c, true); }},
    {"rejectattr", [](const FilterCall& c) { return select_attr(c, false); }},
    {"map", [](const FilterCall& c) {
       const Value* attr = c.arg(99, "attribute");
       if (attr == nullptr) c.error("map is supported with attribute= only");
       Json out = Json::array();
       for (const auto& item : sequence_of(c, "map"))
         out.push_back(item.is_object() ? item.value(to_str(*attr), Json()) : Json());
       return Value{out};
     }},
};

// ---- Tests: one table -------------------------------------------------------------------------

using TestFn = bool (*)(const Value&, const std::vector<Value>&);
struct TestEntry {
  const char* name;
  TestFn fn;
};

const TestEntry kTests[] = {
    {"defined", [](const Value& v, const std::vector<Value>&) { return v.kind != Value::kUndefined; }},
    {"undefined", [](const Value& v, const std::vector<Value>&) { return v.kind == Value::kUndefined; }},
    {"none", [](const Value& v, const std::vector<Value>&) { return v.kind != Value::kUndefined && v.j.is_null(); }},
    {"string", [](const Value& v, const std::vector<Value>&) { return v.j.is_string(); }},
    {"number", [](const Value& v, const std::vector<Value>&) { return v.j.is_number(); }},
    {"integer", [](const Value& v, const std::vector<Value>&) { return v.j.is_number_integer(); }},
    {"float", [](const Value& v, const std::vector<Value>&) { return v.j.is_number_float(); }},
    {"boolean", [](const Value& v, const std::vector<Value>&) { return v.j.is_boolean(); }},
    {"true", [](const Value& v, const std::vector<Value>&) { return v.j.is_boolean() && v.j.get<bool>(); }},
    {"false", [](const Value& v, const std::vector<Value>&) { return v.j.is_boolean() && !v.j.get<bool>(); }},
    {"mapping", [](const Value& v, const std::vector<Value>&) { return v.j.is_object(); }},
    {"sequence", [](const Value& v, const std::vector<Value>&) { return v.j.is_array() || v.j.is_string() || v.j.is_object(); }},
    {"iterable", [](const Value& v, const std::vector<Value>&) { return v.j.is_array() || v.j.is_string() || v.j.is_object(); }},
    {"odd", [](const Value& v, const std::vector<Value>&) { return v.j.is_number_integer() && v.j.get<long long>() % 2 != 0; }},
    {"even", [](const Value& v, const std::vector<Value>&) { return v.j.is_number_integer() && v.j.get<long long>() % 2 == 0; }},
    {"equalto", [](const Value& v, const std::vector<Value>& a) { return !a.empty() && v.j == a[0].j; }},
    {"eq", [](const Value& v, const std::vector<Value>& a) { return !a.empty() && v.j == a[0].j; }},
    {"ne", [](const Value& v, const std::vector<Value>& a) { return a.empty() || v.j != a[0].j; }},
};

}  // namespace

bool has_filter(const std::string& name) {
  if (name == "d") return true;  // Jinja's alias of default
  return std::any_of(std::begin(kFilters), std::end(kFilters), [&](const FilterEntry& f) { return name == f.name; });
}

bool has_test(const std::string& name) {
  return std::any_of(std::begin(kTests), std::end(kTests), [&](const TestEntry& t) { return name == t.name; });
}

Value apply_filter(const std::string& name, const Value& operand, const std::vector<Value>& args,
                   const std::map<std::string, Value>& kwargs, const std::string& where, int line) {
  const std::string& n = name == "d" ? std::string("default") : name;
  for (const auto& f : kFilters)
    if (n == f.name) return f.fn(FilterCall{operand, args, kwargs, where, line});
  fail(where, line, fmt::format("unknown filter '{}'", name));
}

bool apply_test(const std::string& name, const Value& operand, const std::vector<Value>& args, const std::string& where,
                int line) {
  for (const auto& t : kTests)
    if (name == t.name) return t.fn(operand, args);
  fail(where, line, fmt::format("unknown test '{}'", name));
}

Value call_method(const Value& object, const std::string& method, const std::vector<Value>& args,
                  const std::string& where, int line) {
  const Json& j = object.j;
  auto arg_str = [&](std::size_t k, const char* what) -> std::string {
    if (k >= args.size()) fail(where, line, fmt::format("{}() needs {}", method, what));
    return to_str(args[k]);
  };
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (method == "__chars__") return Value{Json(chars(s))};
    if (method == "strip" || method == "lstrip" || method == "rstrip") {
      const std::string set = args.empty() || args[0].j.is_null() ? kSpaces : to_str(args[0]);
      return Value{strip(s, set, method != "rstrip", method != "lstrip")};
    }
    if (method == "startswith" || method == "endswith") {
      if (args.empty()) fail(where, line, fmt::format("{}() needs a prefix", method));
      const Json options = args[0].j.is_array() ? args[0].j : Json::array({args[0].j});
      for (const auto& o : options) {
        if (!o.is_string()) fail(where, line, fmt::format("{}() needs a string or a tuple of strings", method));
        const std::string& x = o.get_ref<const std::string&>();
        const bool hit = method == "startswith" ? s.compare(0, x.size(), x) == 0
                                                : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
        if (hit) return Value{true};
      }
      return Value{false};
    }
    if (method == "split" || method == "rsplit") {
      const long long maxsplit = args.size() >= 2 ? args[1].j.get<long long>() : -1;
      if (method == "rsplit" && maxsplit >= 0) fail(where, line, "rsplit() with maxsplit is not supported");
      if (!args.empty() && args[0].j.is_string() && args[0].j.get<std::string>().empty()) fail(where, line, "empty separator");
      return Value{Json(split(s, args.empty() ? nullptr : &args[0], maxsplit))};
    }
    if (method == "upper") return Value{case_map(s, 1)};
    if (method == "lower") return Value{case_map(s, 0)};
    if (method == "capitalize") return Value{case_map(s, 2)};
    if (method == "title") return Value{case_map(s, 3)};
    if (method == "replace")
      return Value{replace_all(s, arg_str(0, "the old string"), arg_str(1, "the new string"),
                               args.size() >= 3 ? args[2].j.get<long long>() : -1)};
    if (method == "join") {
      std::string out;
      if (args.empty() || !args[0].j.is_array()) fail(where, line, "join() needs a list");
      for (std::size_t k = 0; k < args[0].j.size(); ++k) out += (k ? s : "") + to_str(Value{args[0].j[k]});
      return Value{out};
    }
    if (method == "find") {
      const auto p = s.find(arg_str(0, "a substring"));
      return Value{p == std::string::npos ? -1LL : static_cast<long long>(p)};
    }
  } else if (j.is_object()) {
    if (method == "items" || method == "keys" || method == "values") {
      Json out = Json::array();
      for (const auto& [k, v] : j.items())
        out.push_back(method == "items" ? Json::array({k, v}) : method == "keys" ? Json(k) : v);
      return Value{out};
    }
    if (method == "get") {
      const std::string key = arg_str(0, "a key");
      if (j.contains(key)) return Value{j[key]};
      return args.size() >= 2 ? args[1] : Value{nullptr};
    }
  }
  fail(where, line, fmt::format("'{}' object has no method '{}'", type_name(object), method));
}

std::string to_str(const Value& v) {
  if (v.kind == Value::kUndefined) return "";
  const Json& j = v.j;
  if (j.is_string()) return j.get<std::string>();
  if (j.is_null()) return "None";
  if (j.is_boolean()) return j.get<bool>() ? "True" : "False";
  if (j.is_number_integer()) return std::to_string(j.get<long long>());
  if (j.is_number_unsigned()) return std::to_string(j.get<unsigned long long>());
  if (j.is_number_float()) return py_float(j.get<double>());
  if (v.kind == Value::kNamespace) return "<Namespace " + repr(j) + ">";
  return repr(j);
}

bool truthy(const Value& v) {
  if (v.kind == Value::kUndefined) return false;
  if (v.kind == Value::kNamespace) return true;
  const Json& j = v.j;
  if (j.is_null()) return false;
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_number()) return j.get<double>() != 0;
  if (j.is_string()) return !j.get_ref<const std::string&>().empty();  // json::empty() is false for any string
  if (j.is_array() || j.is_object()) return !j.empty();
  return true;
}

std::string type_name(const Value& v) {
  if (v.kind == Value::kUndefined) return "Undefined";
  if (v.kind == Value::kNamespace) return "Namespace";
  const Json& j = v.j;
  if (j.is_string()) return "str";
  if (j.is_null()) return "NoneType";
  if (j.is_boolean()) return "bool";
  if (j.is_number_integer() || j.is_number_unsigned()) return "int";
  if (j.is_number_float()) return "float";
  if (j.is_array()) return "list";
  return "dict";
}

std::string dumps(const Json& j, int indent) {
  // Python's json.dumps: ", " and ": " without indent, "," and ": " with it; non-ASCII kept.
  std::function<void(const Json&, int, std::string&)> put = [&](const Json& x, int depth, std::string& out) {
    const std::string nl = indent >= 0 ? "\n" + std::string(static_cast<std::size_t>(indent * (depth + 1)), ' ') : "";
    const std::string close = indent >= 0 ? "\n" + std::string(static_cast<std::size_t>(indent * depth), ' ') : "";
    const char* sep = indent >= 0 ? "," : ", ";
    if (x.is_array() || x.is_object()) {
      const bool arr = x.is_array();
      if (x.empty()) {
        out += arr ? "[]" : "{}";
        return;
      }
      out += arr ? '[' : '{';
      bool first = true;
      for (const auto& [k, v] : x.items()) {
        out += (first ? "" : sep) + nl;
        first = false;
        if (!arr) out += Json(k).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + ": ";
        put(v, depth + 1, out);
      }
      out += close + (arr ? ']' : '}');
    } else if (x.is_boolean()) {
      out += x.get<bool>() ? "true" : "false";
    } else if (x.is_number_float()) {
      const double d = x.get<double>();
      out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d > 0 ? "Infinity" : "-Infinity") : py_float(d);
    } else {
      out += x.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
  };
  std::string out;
  put(j, 0, out);
  return out;
}

}  // namespace qmeter::quality::jinja
