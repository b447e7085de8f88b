#include "record_rows.h"

#include <curl/curl.h>
#include <sqlite3.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "qmeter/core/paths.h"

namespace qmeter::exec {

std::vector<store::RequestRow> request_rows(const loadgen::LoadgenResult& result) {
  std::vector<store::RequestRow> rows;
  rows.reserve(result.records.size());
  for (const auto& r : result.records) {
    store::RequestRow row;
    row.index = static_cast<int>(r.index);
    row.warmup = r.warmup;
    row.scheduled_ns = r.scheduled_ns;
    row.sent_ns = r.sent_ns;
    row.first_token_ns = r.first_token_ns;
    row.end_ns = r.end_ns;
    row.prompt_tokens = r.server_prompt_tokens >= 0 ? r.server_prompt_tokens : r.expected_prompt_tokens;
    row.output_tokens = r.output_tokens();
    row.client_tokens = r.client_tokens;
    row.max_tokens = r.max_tokens;
    row.http_status = r.http_status;
    row.error_kind = r.ok() ? "" : std::string(client::error_kind_name(r.error));
    row.error_message = r.error_message;
    nlohmann::json chunks = nlohmann::json::array();
    for (const auto& c : r.chunks) chunks.push_back({c.t_ns, c.tokens});
    row.chunks_json = chunks.dump();
    row.text = r.generated_text;
    rows.push_back(std::move(row));
  }
  return rows;
}

static double percentile_of(const loadgen::LatencyStats& s, double p) {
  for (const auto& [q, v] : s.percentiles_ms) {
    if (q == p) return v;
  }
  return std::nan("");
}

store::LoadPointRow load_point_row(const loadgen::LoadgenResult& result, const loadgen::MetricsOptions& metrics) {
  const auto& m = result.metrics;
  store::LoadPointRow p;
  p.duration_s = m.duration_s;
  p.completed = static_cast<int>(m.completed);
  p.failed = static_cast<int>(m.failed);
  p.achieved_rate = m.request_throughput;
  p.request_throughput = m.request_throughput;
  p.output_throughput = m.output_throughput;
  p.p50_ttft_ms = m.ttft.median_ms;
  p.p99_ttft_ms = percentile_of(m.ttft, 99);
  p.p50_tpot_ms = m.tpot.median_ms;
  p.p99_tpot_ms = percentile_of(m.tpot, 99);
  p.p99_e2el_ms = percentile_of(m.e2el, 99);
  // The per-request lists of vLLM's JSON are left out: the requests table holds every record.
  auto j = nlohmann::json::parse(loadgen::output_json_text(result, metrics));
  for (const char* k : {"input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors"}) j.erase(k);
  p.metrics_json = j.dump();
  for (const auto& [k, v] : result.extras.numbers) {
    if (k == "energy_per_output_token_j") p.energy_per_token_j = v;
    if (k == "avg_power_w") p.avg_power_w = v;
  }
  for (const auto& [k, v] : result.extras.strings) {
    if (k == "energy_source") p.energy_source = v;
    if (k == "energy_json") p.energy_json = v;
  }
  if (p.energy_source.empty()) p.energy_source = "none";
  return p;
}

static std::string first_line_with(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      auto c = line.find(':');
      if (c != std::string::npos) {
        auto v = line.substr(c + 1);
        return v.substr(v.find_first_not_of(" \t"));
      }
    }
  }
  return "";
}

std::string host_json() {
  utsname u{};
  uname(&u);
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  nlohmann::json j = {{"hostname", host},
                      {"kernel", std::string(u.sysname) + " " + u.release},
                      {"machine", u.machine},
                      {"cpu", first_line_with("/proc/cpuinfo", "model name")},
                      {"cpus", std::thread::hardware_concurrency()},
                      {"memory", first_line_with("/proc/meminfo", "MemTotal")}};
  return j.dump();
}

std::string versions_json() {
  nlohmann::json j = {{"qmeter", qmeter_version()},
                      {"compiler", std::string("g++ ") + __VERSION__},
                      {"libcurl", curl_version_info(CURLVERSION_NOW)->version},
                      {"sqlite", sqlite3_libversion()}};
  return j.dump();
}

}  // namespace qmeter::exec
