#include "qmeter/core/option_schema.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "qmeter/core/parse_number.h"

namespace qmeter {

std::string FieldNames::operator()(std::string_view key) const {
  std::string k(key);
  if (dashes) std::replace(k.begin(), k.end(), '_', '-');
  return prefix + k;
}

FieldNames FieldNames::spec(const std::string& path) { return {path.empty() ? "" : path + ".", false}; }

OptionSpec OptionSpec::integer(std::string key, std::string dflt, std::string help, double min, double max,
                               int multiple_of) {
  OptionSpec o{std::move(key), OptionType::kInt, std::move(dflt), std::move(help)};
  o.min = min;
  o.max = max;
  o.multiple_of = multiple_of;
  return o;
}

OptionSpec OptionSpec::number(std::string key, std::string dflt, std::string help, double min, double max,
                              bool max_exclusive) {
  OptionSpec o{std::move(key), OptionType::kNumber, std::move(dflt), std::move(help)};
  o.min = min;
  o.max = max;
  o.max_exclusive = max_exclusive;
  return o;
}

OptionSpec OptionSpec::boolean(std::string key, std::string help) {
  return {std::move(key), OptionType::kBool, "false", std::move(help)};
}

OptionSpec OptionSpec::text(std::string key, std::string help) {
  return {std::move(key), OptionType::kText, "", std::move(help)};
}

OptionSpec OptionSpec::choice(std::string key, std::string dflt, std::vector<std::string> choices, std::string help) {
  OptionSpec o{std::move(key), OptionType::kChoice, std::move(dflt), std::move(help)};
  o.choices = std::move(choices);
  return o;
}

std::string canonical_option_key(std::string_view key) {
  std::string k(key);
  std::replace(k.begin(), k.end(), '-', '_');
  return k;
}

const OptionSpec* find_option(const std::vector<OptionSpec>& table, std::string_view key) {
  const std::string k = canonical_option_key(key);
  for (const OptionSpec& o : table)
    if (o.key == k) return &o;
  return nullptr;
}

bool parse_option_bool(const std::string& v, bool& out) {
  if (v == "true" || v == "1" || v == "yes" || v.empty()) out = true;
  else if (v == "false" || v == "0" || v == "no") out = false;
  else return false;
  return true;
}

namespace {

// The whole string as a finite number (core's strict parse; no surrounding spaces either).
bool whole_number(const std::string& s, double& out) {
  if (s.empty() || std::isspace(static_cast<unsigned char>(s.front())) || std::isspace(static_cast<unsigned char>(s.back())))
    return false;
  const auto v = parse_double(s);
  if (!v || !std::isfinite(*v)) return false;
  out = *v;
  return true;
}

std::string range_error(const OptionSpec& o, double v) {
  if (v < o.min) return fmt::format("{:g} is below the minimum {:g}", v, o.min);
  if (o.max_exclusive ? v >= o.max : v > o.max)
    return fmt::format("{:g} must be {} {:g}", v, o.max_exclusive ? "below" : "at most", o.max);
  return "";
}

}  // namespace

std::string option_value_error(const OptionSpec& o, const std::string& value) {
  switch (o.type) {
    case OptionType::kText: return "";
    case OptionType::kBool: {
      bool b = false;
      return parse_option_bool(value, b) ? "" : fmt::format("'{}' is not true or false", value);
    }
    case OptionType::kChoice:
      if (std::find(o.choices.begin(), o.choices.end(), value) != o.choices.end()) return "";
      return fmt::format("'{}' is not one of {}", value, fmt::join(o.choices, ", "));
    case OptionType::kInt:
    case OptionType::kNumber: {
      double v = 0;
      if (!whole_number(value, v))
        return fmt::format("'{}' is not {}", value, o.type == OptionType::kInt ? "an integer" : "a number");
      if (o.type == OptionType::kInt) {
        if (v != std::floor(v) || std::fabs(v) > 2e9) return fmt::format("'{}' is not an integer", value);
        if (o.multiple_of > 0 && static_cast<long long>(v) % o.multiple_of != 0)
          return fmt::format("{:g} is not a multiple of {}", v, o.multiple_of);
      }
      return range_error(o, v);
    }
  }
  return "";
}

std::map<std::string, std::string> check_options(const std::vector<OptionSpec>& table,
                                                 const std::map<std::string, std::string>& options,
                                                 const std::string& what, const FieldNames& names) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : options) {
    const OptionSpec* o = find_option(table, key);
    if (!o) {
      std::vector<std::string> known;
      for (const OptionSpec& k : table) known.push_back(names.dashes ? names(k.key).substr(names.prefix.size()) : k.key);
      throw OptionError(names, key, fmt::format("unknown {} option '{}' (known: {})", what, key, fmt::join(known, ", ")));
    }
    if (std::string why = option_value_error(*o, value); !why.empty()) throw OptionError(names, o->key, why);
    if (!out.emplace(o->key, value).second)
      throw OptionError(names, o->key, fmt::format("given twice (as '{}' and in the other spelling)", key));
  }
  return out;
}

}  // namespace qmeter
