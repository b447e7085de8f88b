#pragma once
// A Jinja2 subset, enough for the chat templates of Hugging Face tokenizer_config.json files and
// GGUF's tokenizer.chat_template (chat_template.h renders them). Parsed as transformers compiles
// them: trim_blocks and lstrip_blocks on, one trailing newline of the source dropped, `-` / `+`
// whitespace control on every tag. Supported:
//   {{ expr }}, {% if / elif / else / endif %}, {% for a[, b] in expr [if cond] %} ... {% else %}
//   {% endfor %} (loop.index, index0, revindex, revindex0, first, last, length, previtem,
//   nextitem), {% set name = expr %}, {% set ns.attr = expr %} (namespace()), {% break %},
//   {% continue %}, {% generation %}...{% endgeneration %} (rendered as is), {# comments #};
//   literals (strings, integers, floats, true/false/none in either case, lists, dicts),
//   attribute / subscript / slice access, calls of the globals raise_exception, namespace, range
//   and of string / dict methods, the operators of Jinja's precedence (if-else, or, and, not,
//   in, not in, == != < > <= >=, + -, ~, * / // %, unary -), `is [not] TEST` and `| FILTER`
//   (the tables in jinja_builtins.cpp).
// Errors are UsageErrors naming the template (`where`) and its line.
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace qmeter::quality::jinja {

using Json = nlohmann::ordered_json;  // dicts keep their insertion order, as Python's do

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Expr {
  enum Kind { kLiteral, kName, kAttr, kItem, kSlice, kCall, kFilter, kTest, kUnary, kBinary, kCond, kList, kDict };
  Kind kind = kLiteral;
  int line = 0;
  Json literal;
  std::string name;  // kName: the variable; kAttr: the attribute; kFilter / kTest: its name; kUnary / kBinary: the operator
  bool negated = false;        // kTest: `is not`
  std::vector<ExprPtr> args;   // operands; kSlice: object, start, stop, step (null where absent); kDict: key, value, ...
  std::vector<std::pair<std::string, ExprPtr>> kwargs;  // kCall / kFilter keyword arguments
};

struct Stmt {
  enum Kind { kText, kOutput, kIf, kFor, kSet, kBreak, kContinue };
  Kind kind = kText;
  int line = 0;
  std::string text;                  // kText
  ExprPtr expr;                      // kOutput / kSet: the value; kFor: the iterable
  ExprPtr filter;                    // kFor: `if cond` (null: none)
  std::vector<std::string> targets;  // kFor: loop variables; kSet: {name} or {namespace, attribute}
  std::vector<std::pair<ExprPtr, Body>> branches;  // kIf: (condition, body) for if and each elif; kFor: ({}, body)
  Body else_body;
};

// A value while rendering: JSON data, Jinja's Undefined (what a missing name or key gives), or a
// namespace() object (the only value `set ns.attr` may change).
struct Value {
  enum Kind { kData, kUndefined, kNamespace };
  Json j;
  Kind kind = kData;
  std::string hint;  // kUndefined: what was looked up, for the error when it is used
  static Value undefined(std::string what) { return {Json(), kUndefined, std::move(what)}; }
};

class Template {
 public:
  // Parses `source`; a syntax error is a UsageError "WHERE: template line N: ...".
  Template(const std::string& source, std::string where);
  // Renders with `variables` (an object: messages, add_generation_prompt, bos_token, ...).
  std::string render(const Json& variables) const;
  const std::string& where() const { return where_; }

 private:
  std::string where_;
  std::shared_ptr<const Body> body_;
};

// Builtins (jinja_builtins.cpp), shared by the parser (names are checked when parsing) and the
// renderer.
[[noreturn]] void fail(const std::string& where, int line, const std::string& message);
bool has_filter(const std::string& name);
bool has_test(const std::string& name);
Value apply_filter(const std::string& name, const Value& operand, const std::vector<Value>& args,
                   const std::map<std::string, Value>& kwargs, const std::string& where, int line);
bool apply_test(const std::string& name, const Value& operand, const std::vector<Value>& args, const std::string& where,
                int line);
Value call_method(const Value& object, const std::string& method, const std::vector<Value>& args,
                  const std::string& where, int line);
std::string to_str(const Value& v);  // Python's str() (None, True, 1.5, ['a'], ...); Undefined: ""
bool truthy(const Value& v);
std::string type_name(const Value& v);  // Python's type name, for errors
// Python's json.dumps(x, ensure_ascii=False, indent=indent) (indent < 0: None), as tojson renders.
std::string dumps(const Json& j, int indent);

}  // namespace qmeter::quality::jinja
