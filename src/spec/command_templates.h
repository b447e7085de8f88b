#pragma once
// Parse-time checks of a command backend's argv/env templates against the study (module-private).
#include <yaml-cpp/yaml.h>

#include <functional>
#include <string>

#include "qmeter/spec/study_spec.h"

namespace qmeter::spec {

// Throws the spec error for `node`; `field` is the dotted path from the root ("methods[2]").
using FailAt = std::function<void(const YAML::Node& node, const std::string& field, const std::string& what)>;

// Every placeholder of backend.argv/env/served_model is one a run fills, every method has each
// option a non-optional {opt.NAME} needs, and methods' checkpoints name models of the study and
// reach the server through {checkpoint}. Calls `fail` (which throws) at the first problem.
void check_command_templates(const StudySpec& s, const YAML::Node& root, const FailAt& fail);

}  // namespace qmeter::spec
