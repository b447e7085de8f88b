#include "qmeter/client/token_counter.h"

#include <fmt/format.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "qmeter/client/http_call.h"
#include "qmeter/core/error.h"
#include "qmeter/core/text.h"

namespace qmeter::client {

std::function<int(const std::string&)> server_token_counter(const std::string& base_url, const std::string& model,
                                                            const std::string& api_key) {
  // /tokenize is served at the root, beside /v1 (vLLM's layout).
  const std::string url = server_root_url(base_url) + "/tokenize";
  auto caller = std::make_shared<HttpCaller>(api_key, 60);
  return [caller, url, model](const std::string& text) {
    const nlohmann::json body = {{"model", model}, {"prompt", text}, {"add_special_tokens", false}};
    const HttpReply r = caller->post_json(url, body.dump());
    if (!r.ok())
      throw Error(fmt::format("counting prompt tokens through {}: {}", url,
                              r.error.empty() ? fmt::format("HTTP {}: {}", r.status, r.body.substr(0, 200)) : r.error));
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("count") && j["count"].is_number_integer()) return j["count"].get<int>();
    if (j.is_object() && j.contains("tokens") && j["tokens"].is_array()) return static_cast<int>(j["tokens"].size());
    throw Error(fmt::format("{} replied without 'count' or 'tokens': {}", url, r.body.substr(0, 200)));
  };
}

}  // namespace qmeter::client
