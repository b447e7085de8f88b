// `qmeter serve`'s request handling (src/server/openai_api.cpp) on arbitrary bodies, over a tiny
// seeded model with a real continuous-batching scheduler. The first byte picks the route; the
// rest is the POST body. Each request is waited for (reply, stream end or abort) so queued
// generations never pile up; a request that never finishes is a hang the fuzzer reports.
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "fuzz_support.h"
#include "openai_api.h"
#include "qmeter/engine/model.h"
#include "qmeter/server/scheduler.h"
#include "server_metrics.h"

namespace {

using namespace qmeter;

// Records the reply; finished once respond / end / abort has been called.
class RecordingWriter final : public net::ResponseWriter {
 public:
  explicit RecordingWriter(net::HttpRequest r) : request_(std::move(r)) {}
  const net::HttpRequest& request() const override { return request_; }
  void respond(net::HttpResponse response) override {
    status_ = response.status;
    finish();
  }
  void start_stream(int status, std::string, std::vector<net::HttpHeader>) override { status_ = status; }
  bool write_chunk(std::string data) override { return !is_closed(); }
  void end() override { finish(); }
  void abort() override { finish(); }
  bool is_closed() const override {
    std::lock_guard lock(mu_);
    return done_;
  }
  bool disconnected() const override { return false; }
  void on_close(std::function<void()>) override {}
  void run_at(Nanos, std::function<void()> fn) override { fn(); }
  void run_after(Nanos, std::function<void()> fn) override { fn(); }
  void post(std::function<void()> fn) override { fn(); }
  bool on_io_thread() const override { return true; }

  bool wait(std::chrono::seconds limit) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, limit, [&] { return done_; });
  }

 private:
  void finish() {
    std::lock_guard lock(mu_);
    done_ = true;
    cv_.notify_all();
  }
  net::HttpRequest request_;
  int status_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
};

struct Server {
  std::unique_ptr<engine::Model> model = engine::make_synthetic_model("synthetic:tiny", {});
  server::Scheduler scheduler{*model, [] {
                                server::SchedulerOptions o;
                                o.max_num_seqs = 4;
                                o.kv_cache_bytes = 1u << 20;
                                return o;
                              }()};
  server::ServerMetrics metrics;
  server::ApiContext ctx{model.get(), &scheduler, &metrics, "tiny", "", /*max_model_len=*/24};
};

Server& the_server() {
  static Server server;  // one model and scheduler for the process; stopped at exit
  return server;
}

}  // namespace

// Made before fuzzing starts: libFuzzer's per-input leak check must not see its allocations.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)the_server();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Server* server = &the_server();
  if (size == 0) return 0;
  static const char* const kRoutes[] = {"/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"};
  net::HttpRequest req;
  req.method = "POST";
  req.path = req.target = kRoutes[data[0] % 4];
  req.body.assign(reinterpret_cast<const char*>(data + 1), size - 1);
  auto writer = std::make_shared<RecordingWriter>(req);
  qmeter::fuzz::expect_only_qmeter_errors([&] { server::handle_request(server->ctx, req, writer); });
  if (!writer->wait(std::chrono::seconds(20))) {
    std::fprintf(stderr, "fuzz: request to %s never finished\n", req.path.c_str());
    std::abort();
  }
  return 0;
}
