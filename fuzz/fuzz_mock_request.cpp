// The mock server's OpenAI request parsing (openai_format.cpp) and the response plan it builds
// from the parsed request (response_plan.cpp), as `qmeter mock-server` does for each POST.
// The first byte picks the route (completions / chat completions); the rest is the body.
#include "fuzz_support.h"
#include "openai_format.h"
#include "qmeter/mockserver/mock_server.h"
#include "qmeter/mockserver/response_plan.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const bool chat = data[0] & 1;
  const auto body = qmeter::fuzz::as_text(data + 1, size - 1);
  qmeter::fuzz::expect_only_qmeter_errors([&] {
    static const qmeter::mockserver::MockServerConfig config;
    qmeter::mockserver::GenerationRequest request;
    const std::string error = qmeter::mockserver::parse_generation_request(body, chat, config.model_name, request);
    if (!error.empty()) {
      (void)qmeter::mockserver::openai_error_body(400, error, "invalid_request_error");  // the 400 reply's body
      return;
    }
    const auto plan = qmeter::mockserver::plan_response(config, 0, request.plan, request.include_usage);
    (void)plan;
  });
  return 0;
}
