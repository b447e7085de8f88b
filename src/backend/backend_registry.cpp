#include <mutex>

#include "qmeter/backend/backend.h"
#include "qmeter/core/error.h"

namespace qmeter::backend {

std::unique_ptr<Backend> make_command_backend(const spec::BackendSpec& spec);
std::unique_ptr<Backend> make_url_backend(const spec::BackendSpec& spec);

namespace {
std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<std::string, BackendFactory>& registry() {
  static std::map<std::string, BackendFactory> table = {
      {"command", make_command_backend},
      {"url", make_url_backend},
  };
  return table;
}
}  // namespace

void register_backend(const std::string& kind, BackendFactory factory) {
  std::lock_guard lock(registry_mutex());
  registry()[kind] = std::move(factory);
}

std::unique_ptr<Backend> make_backend(const spec::BackendSpec& spec) {
  std::lock_guard lock(registry_mutex());
  auto it = registry().find(spec.kind);
  if (it == registry().end()) {
    std::string known;
    for (const auto& [k, f] : registry()) known += (known.empty() ? "" : ", ") + k;
    throw UsageError("unknown backend kind '" + spec.kind + "' (available: " + known + ")");
  }
  return it->second(spec);
}

}  // namespace qmeter::backend
