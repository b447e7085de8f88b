// A command backend's templates are checked when the spec is read, so a typo in a placeholder, a
// method without the option a flag needs, or a checkpoint for a model the study does not have
// is an error at its file:line:column instead of a failed server start hours into a study.
#include "command_templates.h"

#include <algorithm>
#include <map>
#include <set>

#include "qmeter/core/error.h"

namespace qmeter::spec {

namespace {

// Entry i of a list that for_list also accepts as a single scalar.
YAML::Node entry(const YAML::Node& list, std::size_t i) { return list.IsSequence() ? list[i] : list; }

std::string names_of(const std::vector<ModelSpec>& models) {
  std::string s;
  for (const auto& m : models) s += (s.empty() ? "" : ", ") + m.name;
  return s;
}

struct TemplateUses {
  std::map<std::string, std::string> required_options;  // opt NAME -> the field that needs it
  bool checkpoint = false;
};

void scan(const std::string& text, const YAML::Node& node, const std::string& field, bool allow_optional,
          TemplateUses& uses, const FailAt& fail) {
  std::vector<TemplatePlaceholder> found;
  try {
    found = template_placeholders(text);
  } catch (const UsageError& e) {
    fail(node, field, e.what());
  }
  const auto& fixed = run_placeholders();
  for (const auto& p : found) {
    if (p.optional && !allow_optional) fail(node, field, "an optional {?...} value is for argv and env entries only");
    const bool option = p.name.rfind("opt.", 0) == 0 && p.name.size() > 4;
    if (!option && std::find(fixed.begin(), fixed.end(), p.name) == fixed.end()) {
      std::string known;
      for (const auto& f : fixed) known += (known.empty() ? "" : ", ") + f;
      fail(node, field, "unknown placeholder {" + p.name + "} (known: " + known + ", and opt.NAME for a method option)");
    }
    if (p.name == "checkpoint") uses.checkpoint = true;
    if (option && !p.optional) uses.required_options.emplace(p.name.substr(4), field);
  }
}

}  // namespace

void check_command_templates(const StudySpec& s, const YAML::Node& root, const FailAt& fail) {
  const YAML::Node methods = root["methods"];
  for (std::size_t j = 0; j < s.methods.size(); ++j) {
    const auto& m = s.methods[j];
    if (m.checkpoints.empty()) continue;
    const std::string field = "methods[" + std::to_string(j) + "].checkpoints";
    const YAML::Node node = entry(methods, j)["checkpoints"];
    if (s.backend.kind != "command") {
      fail(node, field, "a checkpoint is what a command backend's server loads; the " + s.backend.kind +
                            " backend has none (the embedded engine quantizes the model itself)");
    }
    for (const auto& kv : node) {
      const std::string model = kv.first.Scalar();
      if (std::none_of(s.models.begin(), s.models.end(), [&](const ModelSpec& x) { return x.name == model; })) {
        fail(kv.first, field + "." + model, "no model named '" + model + "' in 'models' (known: " + names_of(s.models) + ")");
      }
      if (m.checkpoints.at(model).empty()) fail(kv.second, field + "." + model, "a checkpoint cannot be empty");
    }
  }
  if (s.backend.kind != "command") return;

  const YAML::Node backend = root["backend"];
  TemplateUses uses;
  for (std::size_t i = 0; i < s.backend.argv.size(); ++i) {
    scan(s.backend.argv[i], entry(backend["argv"], i), "backend.argv[" + std::to_string(i) + "]", true, uses, fail);
  }
  if (backend["env"]) {
    for (const auto& kv : backend["env"]) {
      const std::string key = kv.first.Scalar();
      scan(s.backend.env.at(key), kv.second, "backend.env." + key, true, uses, fail);
    }
  }
  if (!s.backend.served_model.empty()) {
    scan(s.backend.served_model, backend["served_model"], "backend.served_model", false, uses, fail);
  }
  for (std::size_t j = 0; j < s.methods.size(); ++j) {
    const auto& m = s.methods[j];
    const std::string field = "methods[" + std::to_string(j) + "]";
    for (const auto& [option, user] : uses.required_options) {
      if (!m.options.count(option)) {
        fail(entry(methods, j), field,
             "method '" + m.name + "' has no option '" + option + "', which " + user + " needs as {opt." + option +
                 "} (give the method a value, or write that argv entry as {?FLAG opt." + option +
                 "} so that methods without one leave the flag out)");
      }
    }
    if (!m.checkpoints.empty() && !uses.checkpoint) {
      fail(entry(methods, j)["checkpoints"], field + ".checkpoints",
           "the backend's argv and env do not use {checkpoint}, so these checkpoints would never be served (write "
           "{checkpoint} where the server takes its model)");
    }
  }
}

}  // namespace qmeter::spec
