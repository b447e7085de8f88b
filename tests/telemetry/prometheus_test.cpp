// Prometheus text parsing (vLLM-style text, labels, escapes, histograms, errors) and the scraper
// against a real HTTP server on loopback.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <thread>

#include "qmeter/core/error.h"
#include "qmeter/telemetry/prometheus.h"

namespace qmeter::telemetry {
namespace {

// Shaped like vLLM 0.6+'s /metrics (names, labels, histogram layout).
const char* kVllmText = R"(# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="meta-llama/Llama-3.1-8B-Instruct"} 12.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="meta-llama/Llama-3.1-8B-Instruct"} 3.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"} 0.4375
# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.
# TYPE vllm:num_preemptions_total counter
vllm:num_preemptions_total{model_name="meta-llama/Llama-3.1-8B-Instruct"} 7.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="m"} 0.0
vllm:time_to_first_token_seconds_bucket{le="0.5",model_name="m"} 40.0
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="m"} 52.0
vllm:time_to_first_token_seconds_count{model_name="m"} 52.0
vllm:time_to_first_token_seconds_sum{model_name="m"} 13.25
)";

TEST(PrometheusParser, ParsesVllmStyleText) {
  PromText t = parse_prometheus_text(kVllmText);
  ASSERT_EQ(t.samples.size(), 9u);
  EXPECT_EQ(t.samples[0].name, "vllm:num_requests_running");
  ASSERT_EQ(t.samples[0].labels.size(), 1u);
  EXPECT_EQ(*t.samples[0].label("model_name"), "meta-llama/Llama-3.1-8B-Instruct");
  EXPECT_DOUBLE_EQ(t.samples[0].value, 12.0);
  EXPECT_DOUBLE_EQ(*t.sum("vllm:kv_cache_usage_perc"), 0.4375);
  EXPECT_EQ(*t.samples[2].label("engine"), "0");
  EXPECT_DOUBLE_EQ(*t.sum("vllm:num_preemptions_total"), 7.0);
  EXPECT_EQ(t.families.at("vllm:num_preemptions_total").type, "counter");
  EXPECT_EQ(t.families.at("vllm:num_requests_waiting").help, "Number of requests waiting to be processed.");
  // Histogram parts belong to their family; +Inf parses as infinity in the le label only.
  const PromSample& inf_bucket = t.samples[6];
  EXPECT_EQ(*inf_bucket.label("le"), "+Inf");
  EXPECT_DOUBLE_EQ(inf_bucket.value, 52.0);
  ASSERT_NE(t.family_of(inf_bucket), nullptr);
  EXPECT_EQ(t.family_of(inf_bucket)->type, "histogram");
  EXPECT_EQ(t.family_of(t.samples[8])->name, "vllm:time_to_first_token_seconds");
  EXPECT_DOUBLE_EQ(*t.sum("vllm:time_to_first_token_seconds_sum"), 13.25);
  EXPECT_FALSE(t.sum("vllm:gpu_cache_usage_perc").has_value());
}

TEST(PrometheusParser, EscapesSpecialValuesTimestampsAndComments) {
  const char* text =
      "# a plain comment\n"
      "  \n"
      "# HELP odd_metric A help with a \\\\ backslash\\nand a newline\n"
      "odd_metric{path=\"C:\\\\dir\",quote=\"say \\\"hi\\\"\",nl=\"a\\nb\",} 1.5e3 1700000000000\r\n"
      "no_labels -Inf\n"
      "nan_metric NaN\n"
      "spaced_metric { a = \"1\" , b=\"2\" }   +Inf\n"
      "empty_labels{} 0x1p4\n";
  PromText t = parse_prometheus_text(text);
  ASSERT_EQ(t.samples.size(), 5u);
  const PromSample& odd = t.samples[0];
  EXPECT_EQ(*odd.label("path"), "C:\\dir");
  EXPECT_EQ(*odd.label("quote"), "say \"hi\"");
  EXPECT_EQ(*odd.label("nl"), "a\nb");
  EXPECT_DOUBLE_EQ(odd.value, 1500.0);
  ASSERT_TRUE(odd.timestamp_ms.has_value());
  EXPECT_EQ(*odd.timestamp_ms, 1700000000000LL);
  EXPECT_EQ(t.families.at("odd_metric").help, "A help with a \\ backslash\nand a newline");
  EXPECT_TRUE(std::isinf(t.samples[1].value) && t.samples[1].value < 0);
  EXPECT_TRUE(std::isnan(t.samples[2].value));
  EXPECT_EQ(*t.samples[3].label("a"), "1");
  EXPECT_EQ(*t.samples[3].label("b"), "2");
  EXPECT_TRUE(std::isinf(t.samples[3].value) && t.samples[3].value > 0);
  EXPECT_TRUE(t.samples[4].labels.empty());
  EXPECT_DOUBLE_EQ(t.samples[4].value, 16.0);
}

void expect_error(const std::string& text, const std::string& fragment) {
  try {
    parse_prometheus_text(text);
    ADD_FAILURE() << "no error for: " << text;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(PrometheusParser, MalformedLinesNameTheLine) {
  expect_error("ok 1\nbad{a=\"1\" 2\n", "line 2: expected ',' or '}'");
  expect_error("m{a=\"1} 2\n", "line 1: unterminated label value");
  expect_error("m 1\nm 2\nm twelve\n", "line 3: 'twelve' is not a number");
  expect_error("m{a=\"x\",a=\"y\"} 1\n", "label 'a' appears twice");
  expect_error("# TYPE m histogramz\n", "unknown metric type 'histogramz'");
  expect_error("m{a=\"\\q\"} 1\n", "unknown escape");
  expect_error("m 1 12x\n", "not a timestamp");
  expect_error("9m 1\n", "expected a metric name");
  expect_error("m\n", "missing sample value");
}

// A minimal HTTP/1.1 server on 127.0.0.1 that answers every request with a metrics page whose
// running-requests gauge counts the requests served.
class MetricsServer {
 public:
  MetricsServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd_, 16) != 0) throw Error("bind");
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~MetricsServer() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/metrics"; }
  int served() const { return served_; }
  std::atomic<bool> broken{false};  // answer with malformed text

 private:
  void serve() {
    while (!stop_) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[1024];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        req.append(buf, static_cast<std::size_t>(n));
      }
      int k = ++served_;
      std::string body = broken ? std::string("vllm:num_requests_running{oops 1\n")
                                : "# TYPE vllm:num_requests_running gauge\n"
                                  "vllm:num_requests_running{model_name=\"m\",engine=\"0\"} " + std::to_string(k) +
                                      "\nvllm:num_requests_running{model_name=\"m\",engine=\"1\"} 100\n"
                                      "vllm:num_requests_waiting{model_name=\"m\"} 2\n"
                                      "vllm:gpu_cache_usage_perc{model_name=\"m\"} 0.25\n"
                                      "vllm:e2e_request_latency_seconds_count{model_name=\"m\"} 5\n"
                                      "qmeter:batch_size 4\n";
      std::string reply = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
      std::size_t off = 0;
      while (off < reply.size()) {
        ssize_t n = write(c, reply.data() + off, reply.size() - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
      }
      close(c);
    }
  }
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0};
  std::thread thread_;
};

ScraperOptions scrape(const std::string& url, Nanos interval_ns, std::vector<std::string> names = {}) {
  ScraperOptions o;
  o.url = url;
  o.interval_ns = interval_ns;
  o.metric_names = std::move(names);
  return o;
}

TEST(MetricsScraper, PollsALoopbackServerAndKeepsTheSeriesOfInterest) {
  MetricsServer server;
  MetricsScraper scraper(scrape(server.url(), 20'000'000));
  scraper.start();
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  scraper.stop();
  std::size_t n = scraper.successful_scrapes();
  EXPECT_GE(n, 3u);
  EXPECT_EQ(scraper.failed_scrapes(), 0u);
  EXPECT_EQ(static_cast<int>(n), server.served());
  auto series = scraper.series();
  // Two running series (engine 0 and 1), waiting, the old KV-cache name, and qmeter:batch_size;
  // the latency histogram count is not among the kept names.
  ASSERT_EQ(series.size(), 5u);
  for (const auto& s : series) {
    EXPECT_NE(s.name, "vllm:e2e_request_latency_seconds_count");
    EXPECT_EQ(s.points.size(), n);
  }
  // Summed over label sets: scrape k reports k + 100 running requests.
  auto running = scraper.points("vllm:num_requests_running");
  ASSERT_EQ(running.size(), n);
  for (std::size_t k = 0; k < n; ++k) {
    EXPECT_DOUBLE_EQ(running[k].value, static_cast<double>(k + 1 + 100));
    if (k > 0) {
      EXPECT_GT(running[k].t_ns, running[k - 1].t_ns);
    }
  }
  EXPECT_DOUBLE_EQ(scraper.points("vllm:gpu_cache_usage_perc").back().value, 0.25);
}

TEST(MetricsScraper, FailuresAreCountedNotFatal) {
  MetricsServer server;
  server.broken = true;
  MetricsScraper scraper(scrape(server.url(), 1'000'000'000));
  EXPECT_FALSE(scraper.scrape_once());
  EXPECT_NE(scraper.last_error().find("line 1"), std::string::npos) << scraper.last_error();
  server.broken = false;
  EXPECT_TRUE(scraper.scrape_once());
  MetricsScraper nowhere(scrape("http://127.0.0.1:1/metrics", 1'000'000'000));
  EXPECT_FALSE(nowhere.scrape_once());
  EXPECT_EQ(nowhere.failed_scrapes(), 1u);
  EXPECT_FALSE(nowhere.last_error().empty());
  EXPECT_THROW(MetricsScraper(scrape("", 1'000'000'000)), UsageError);
}

TEST(MetricsScraper, StarKeepsEverything) {
  MetricsServer server;
  MetricsScraper scraper(scrape(server.url(), 1'000'000'000, {"*"}));
  ASSERT_TRUE(scraper.scrape_once());
  EXPECT_EQ(scraper.series().size(), 6u);
}

}  // namespace
}  // namespace qmeter::telemetry
