#pragma once
// Counts prompt tokens as the server will: POST /tokenize (vLLM, SGLang, qmeter serve) with
// add_special_tokens = false, so the count is the text's own tokens (what vLLM's datasets call the
// input length; the server adds BOS on top). Workload datasets use it to build exact lengths.
#include <functional>
#include <string>

namespace qmeter::client {

// Throws qmeter::Error naming the URL when the server has no usable /tokenize.
std::function<int(const std::string&)> server_token_counter(const std::string& base_url, const std::string& model,
                                                            const std::string& api_key = "");

}  // namespace qmeter::client
