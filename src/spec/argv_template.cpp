// The command backend's argv/env templates: {placeholders} filled per run, and optional
// arguments `{?WORD... NAME}` that vanish, flag and all, when the run has no value for NAME
// (a method that passes no --quantization to vLLM must not pass "--quantization none": vLLM
// accepts no such value). Parse time scans the same syntax (template_placeholders) so a spec's
// unknown placeholder or a method missing an option is an error at its line, not a failed run.
#include <algorithm>
#include <cctype>

#include "qmeter/core/error.h"
#include "qmeter/spec/study_spec.h"

namespace qmeter::spec {

namespace {

bool is_identifier(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.';
  });
}

// An argument that is exactly `{?WORD... NAME}`: its words and NAME. Throws UsageError (without
// a location: the callers add it) for an optional form that is not a whole argument or not of
// that shape, so a typo cannot silently become a literal.
bool optional_form(const std::string& arg, std::vector<std::string>& words, std::string& name) {
  const auto open = arg.find("{?");
  if (open == std::string::npos) return false;
  if (open != 0 || arg.back() != '}' || arg.find('}') != arg.size() - 1) {
    throw UsageError("'" + arg + "': an optional argument {?...} must be a whole argv entry");
  }
  words.clear();
  const std::string body = arg.substr(2, arg.size() - 3);
  std::size_t start = 0;
  while (start <= body.size()) {
    const auto space = body.find(' ', start);
    const std::string word = body.substr(start, space == std::string::npos ? std::string::npos : space - start);
    if (word.empty()) throw UsageError("'" + arg + "': write {?FLAG... NAME} with single spaces, e.g. {?--quantization opt.quant}");
    words.push_back(word);
    if (space == std::string::npos) break;
    start = space + 1;
  }
  name = words.back();
  words.pop_back();
  if (!is_identifier(name)) throw UsageError("'" + arg + "': '" + name + "' is not a placeholder name (the last word of {?...})");
  return true;
}

std::string known_list(const std::map<std::string, std::string>& vars) {
  std::string known;
  for (const auto& [k, v] : vars) known += (known.empty() ? "" : ", ") + k;
  return known;
}

}  // namespace

const std::vector<std::string>& run_placeholders() {
  static const std::vector<std::string> names = {"model", "model_path", "checkpoint", "method",
                                                 "tp",    "port",       "host",       "run_id"};
  return names;
}

std::vector<TemplatePlaceholder> template_placeholders(const std::string& arg) {
  std::vector<TemplatePlaceholder> out;
  std::vector<std::string> words;
  std::string name;
  if (optional_form(arg, words, name)) return {{name, true}};
  for (std::size_t i = 0; i < arg.size(); ++i) {
    if (arg[i] != '{') continue;
    const auto end = arg.find('}', i);
    if (end == std::string::npos) break;
    if (std::string n = arg.substr(i + 1, end - i - 1); is_identifier(n)) {
      out.push_back({n, false});
      i = end;
    }
  }
  return out;
}

std::string expand_template(const std::string& arg, const std::map<std::string, std::string>& vars) {
  std::string out;
  for (std::size_t i = 0; i < arg.size(); ++i) {
    if (arg[i] == '{') {
      auto end = arg.find('}', i);
      if (end != std::string::npos) {
        const std::string name = arg.substr(i + 1, end - i - 1);
        if (auto it = vars.find(name); it != vars.end()) {
          out += it->second;
          i = end;
          continue;
        }
        if (is_identifier(name)) {
          throw UsageError("backend argv: unknown placeholder {" + name + "} in '" + arg + "' (known: " + known_list(vars) + ")");
        }
      }
    }
    out += arg[i];
  }
  return out;
}

std::vector<std::string> expand_argv(const std::vector<std::string>& argv, const std::map<std::string, std::string>& vars) {
  std::vector<std::string> out;
  std::vector<std::string> words;
  std::string name;
  for (const auto& arg : argv) {
    if (!optional_form(arg, words, name)) {
      out.push_back(expand_template(arg, vars));
      continue;
    }
    // Absent or empty: the method has no value for it, so the flag goes too.
    const auto it = vars.find(name);
    if (it == vars.end() || it->second.empty()) continue;
    out.insert(out.end(), words.begin(), words.end());
    out.push_back(it->second);
  }
  return out;
}

std::map<std::string, std::string> expand_env_template(const std::map<std::string, std::string>& env,
                                                       const std::map<std::string, std::string>& vars) {
  std::map<std::string, std::string> out;
  std::vector<std::string> words;
  std::string name;
  for (const auto& [key, value] : env) {
    if (!optional_form(value, words, name)) {
      out[key] = expand_template(value, vars);
      continue;
    }
    if (!words.empty()) throw UsageError("backend env " + key + ": an optional value is {?NAME} (no flag words)");
    if (const auto it = vars.find(name); it != vars.end() && !it->second.empty()) out[key] = it->second;
  }
  return out;
}

}  // namespace qmeter::spec
