// `qmeter mock-server`: the OpenAI-compatible test double with exact ground truth (mockserver module).
#include <fmt/core.h>
#include <pthread.h>
#include <signal.h>

#include <cstdio>

#include "qmeter/core/error.h"
#include "flag_names.h"
#include "qmeter/mockserver/mock_server.h"
#include "verbs.h"

namespace qmeter::cli {

namespace {

struct MockServerFlags {
  mockserver::MockServerConfig config;
  std::string itl_dist = "constant";
  int output_len = 0;
  CLI::Option* output_len_option = nullptr;  // given or not
  std::vector<std::string> faults;
  bool no_echo = false;
  int no_echo_status = 400;
};

void run_mock_server(MockServerFlags& flags) {
  mockserver::MockServerConfig config = flags.config;
  config.itl_dist = mockserver::parse_itl_distribution(flags.itl_dist);
  if (flags.output_len_option->count() > 0) config.output_len = flags.output_len;
  for (const auto& f : flags.faults) config.faults.push_back(mockserver::parse_fault_spec(f));
  if (flags.no_echo) config.no_echo_status = flags.no_echo_status;
  config.validate();

  // SIGINT/SIGTERM are blocked before the io threads exist (they inherit the mask) and taken
  // here with sigwait, so a signal never interrupts a handler and the stop is orderly.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  mockserver::MockServer server(config);
  server.start();
  std::fprintf(stdout, "mock-server listening on %s\n", server.base_url().c_str());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop_signals, &sig);
  server.stop();  // closes connections, writes the records of unfinished requests, flushes the log
  std::fprintf(stderr, "mock-server: stopped by signal %d after %llu generation requests\n", sig,
               static_cast<unsigned long long>(server.requests_received()));
}

}  // namespace

void add_mock_server_verb(CLI::App& app) {
  auto flags = std::make_shared<MockServerFlags>();
  auto& c = flags->config;
  auto* sub = app.add_subcommand(
      "mock-server",
      "Serve an OpenAI-compatible mock (/v1/completions, /v1/chat/completions, /v1/models, /health) with seeded "
      "timing, fault injection and a per-request ground-truth log. Prompt tokens = whitespace-separated words; "
      "output token i is the word ' tok<i>'. Prints 'mock-server listening on http://HOST:PORT' when ready; "
      "SIGINT/SIGTERM stop it.");
  sub->add_option("--host", c.host, "Address to bind")->capture_default_str();
  sub->add_option("--port", c.port, "Port to bind (0: pick a free one, printed on start)")->capture_default_str();
  add_connection_limit_flags(sub, c.connection_limits);
  sub->add_option("--ttft-ms", c.ttft_ms, "Time from request arrival to the first token chunk (ms)")->capture_default_str();
  sub->add_option("--itl-ms", c.itl_ms, "Mean gap between consecutive token chunks (ms)")->capture_default_str();
  sub->add_option("--itl-dist", flags->itl_dist, "Gap distribution: constant | exponential | lognormal")
      ->capture_default_str();
  sub->add_option("--itl-sigma", c.itl_lognormal_sigma, "Shape (sigma) of lognormal gaps; their mean stays --itl-ms")
      ->capture_default_str();
  flags->output_len_option = sub->add_option(renamed("--tokens-before-eos", {"--output-len"}), flags->output_len,
                  "Tokens before 'EOS': a reply has min(N, max_tokens) tokens, or max_tokens with ignore_eos "
                  "(default: max_tokens, 16 when absent)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--tokens-per-chunk", c.tokens_per_chunk, "Generated tokens per streamed chunk")->capture_default_str();
  sub->add_option("--fault", flags->faults,
                  "KIND:FRACTION, repeatable; kinds: http500 http429 drop stall malformed role_only_first "
                  "empty_chunks usage_mismatch (disjoint; fractions add up to <= 1)");
  sub->add_option("--request-log", c.request_log_path, "Write one JSON line per request (chunk send times) here");
  sub->add_option("--seed", c.seed, "Seed of faults and gap sampling")->capture_default_str();
  // Not compute threads (--threads elsewhere): the mock computes nothing.
  sub->add_option(renamed("--io-threads", {"--threads"}), c.io_threads, "IO threads (event loops)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  sub->add_option("--max-concurrent-streams", c.max_concurrent_streams,
                  "At most N replies are generated at once (0: unlimited); later requests wait in arrival (FIFO) "
                  "order, their wait counted in their TTFT (logged as queue_wait_ns). Every 200 generation reply, "
                  "streamed or not, holds a slot until its last chunk (or a drop / the client leaving); capacity "
                  "with constant gaps = 1000 * N / (ttft_ms + (chunks - 1) * itl_ms) requests/s")
      ->capture_default_str();
  sub->add_option(renamed("--served-model-name", {"--model"}), c.model_name,
                  "Model name listed by /v1/models (any requested name is accepted)")
      ->capture_default_str();
  sub->add_flag("--no-echo", flags->no_echo,
                "Refuse \"echo\" on /v1/completions (HTTP 400, or --no-echo-status) like a server without prompt "
                "log-probabilities (llama.cpp's llama-server)");
  sub->add_option("--no-echo-status", flags->no_echo_status, "HTTP status of the --no-echo refusal (400..599)")
      ->capture_default_str();
  sub->callback([flags] { run_mock_server(*flags); });
}

}  // namespace qmeter::cli
