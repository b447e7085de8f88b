// The run's outputs: vLLM-compatible result JSON, one JSON line per request, the summary table.
#include <fmt/core.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "session_output.h"

#include "qmeter/core/error.h"
#include "qmeter/loadgen/loadgen.h"

namespace qmeter::loadgen {

using client::RequestRecord;
using nlohmann::ordered_json;

namespace {

// NaN (no samples) becomes null, as JSON has no NaN.
ordered_json num(double v) { return std::isfinite(v) ? ordered_json(v) : ordered_json(nullptr); }

void add_latency(ordered_json& j, const std::string& name, const LatencyStats& s) {
  j["mean_" + name + "_ms"] = num(s.mean_ms);
  j["median_" + name + "_ms"] = num(s.median_ms);
  j["std_" + name + "_ms"] = num(s.std_ms);
  for (const auto& [p, v] : s.percentiles_ms) j["p" + percentile_label(p) + "_" + name + "_ms"] = num(v);
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw Error("cannot write '" + path + "'");
  out << text;
  if (!out.flush()) throw Error("error writing '" + path + "'");
}

}  // namespace

std::string output_json_text(const LoadgenResult& result, const MetricsOptions& options) {
  const Metrics& m = result.metrics;
  const RunInfo& info = result.info;
  ordered_json j;
  j["date"] = info.date;
  j["backend"] = info.backend;
  j["model_id"] = info.model_id;
  j["base_url"] = info.base_url;
  j["endpoint"] = info.endpoint;
  j["dataset"] = info.dataset;
  j["arrival"] = info.arrival;
  j["schedule"] = info.schedule_description;
  j["num_prompts"] = info.num_prompts;
  j["request_rate"] = info.request_rate > 0 ? ordered_json(info.request_rate) : ordered_json("inf");
  j["burstiness"] = info.burstiness;
  j["max_concurrency"] = info.max_concurrency > 0 ? ordered_json(info.max_concurrency) : ordered_json(nullptr);
  j["seed"] = info.seed;
  j["warmup"] = info.warmup;

  j["duration"] = m.duration_s;
  j["completed"] = m.completed;
  j["failed"] = m.failed;
  j["failed_by_kind"] = m.failed_by_kind;
  j["total_input_tokens"] = m.total_input_tokens;
  j["total_output_tokens"] = m.total_output_tokens;
  j["token_count_mismatches"] = m.token_count_mismatches;
  j["request_throughput"] = m.request_throughput;
  if (!m.slo.empty()) j["request_goodput"] = m.slo.front().goodput_rps;  // vLLM's single-SLO key: the first class
  j["output_throughput"] = m.output_throughput;
  j["total_token_throughput"] = m.total_token_throughput;
  j["max_concurrent_requests"] = m.max_concurrent_requests;
  add_latency(j, "ttft", m.ttft);
  add_latency(j, "tpot", m.tpot);
  add_latency(j, "itl", m.itl);
  add_latency(j, "e2el", m.e2el);
  add_latency(j, "send_lag", m.send_lag);
  add_latency(j, "connection_wait", m.connection_wait);
  add_latency(j, "client_lag", m.client_lag);
  j["max_connections"] = info.max_connections;
  // Who limited the point (always present, true or false) and the evidence.
  const LoadVerdict& v = m.verdict;
  j["offered_rate"] = v.offered_rate < 0 ? ordered_json(nullptr) : std::isinf(v.offered_rate) ? ordered_json("inf") : ordered_json(v.offered_rate);
  j["client_bound"] = v.client_bound;
  j["client_bound_evidence"] = {{"p99_client_lag_ms", v.p99_client_lag_ms},
                                {"p99_connection_wait_ms", v.p99_connection_wait_ms},
                                {"threshold_ms", v.threshold_ms},
                                {"reason", v.client_bound_reason}};
  j["server_saturated"] = v.server_saturated;
  j["saturation_evidence"] = {{"steady_request_throughput", num(m.steady.request_throughput)},
                              {"in_flight_growth", num(v.in_flight_growth)},
                              {"mean_in_flight", v.mean_in_flight},
                              {"reason", v.saturation_reason}};
  j["sustainable"] = v.sustainable;
  {
    const SteadyState& ss = m.steady;
    ordered_json st;
    st["defined"] = ss.defined;
    st["start_s"] = ss.start_s;
    st["end_s"] = ss.end_s;
    st["duration_s"] = ss.duration_s;
    st["completed"] = ss.completed;
    st["latency_requests"] = ss.latency_requests;
    st["request_throughput"] = ss.request_throughput;
    st["output_throughput"] = ss.output_throughput;
    if (!ss.slo.empty()) st["request_goodput"] = ss.slo.front().goodput_rps;
    add_latency(st, "ttft", ss.ttft);
    add_latency(st, "tpot", ss.tpot);
    add_latency(st, "e2el", ss.e2el);
    auto slo = ordered_json::object();
    for (const auto& c : ss.slo) slo[c.slo.name] = {{"met", c.met}, {"attainment", c.attainment}, {"request_goodput", c.goodput_rps}};
    st["slo"] = std::move(slo);
    j["steady_state"] = std::move(st);
  }
  j["percentiles"] = options.percentiles;

  ordered_json slo = ordered_json::object();
  for (const auto& s : m.slo) {
    ordered_json c;
    auto bound = [&](const char* key, double v) { c[key] = v >= 0 ? ordered_json(v) : ordered_json(nullptr); };
    bound("ttft_ms", s.slo.ttft_ms);
    bound("tpot_ms", s.slo.tpot_ms);
    bound("e2e_ms", s.slo.e2e_ms);
    bound("itl_ms", s.slo.itl_ms);
    c["met"] = s.met;
    c["attainment"] = s.attainment;
    c["request_goodput"] = s.goodput_rps;
    slo[s.slo.name] = std::move(c);
  }
  j["slo"] = std::move(slo);
  for (const auto& [k, v] : result.extras.numbers) j[k] = num(v);
  for (const auto& [k, v] : result.extras.strings) j[k] = v;
  if (result.sessions.defined) j["sessions"] = session_metrics_json(result.sessions);

  // vLLM's per-request lists (measured requests, schedule order; seconds).
  auto input_lens = ordered_json::array(), output_lens = ordered_json::array(), ttfts = ordered_json::array(),
       itls = ordered_json::array(), texts = ordered_json::array(), errors = ordered_json::array();
  for (const auto& r : result.records) {
    if (r.warmup) continue;
    input_lens.push_back(r.server_prompt_tokens >= 0 ? r.server_prompt_tokens : r.expected_prompt_tokens);
    output_lens.push_back(r.ok() ? r.output_tokens() : 0);
    ttfts.push_back(r.ok() && r.first_token_ns ? ns_to_s(r.first_token_ns - r.scheduled_ns) : 0.0);
    auto gaps = ordered_json::array();
    for (double v : itl_samples_ms(r)) gaps.push_back(v / 1000.0);
    itls.push_back(std::move(gaps));
    texts.push_back(r.generated_text);
    errors.push_back(r.ok() ? std::string() : std::string(client::error_kind_name(r.error)) + ": " + r.error_message);
  }
  j["input_lens"] = std::move(input_lens);
  j["output_lens"] = std::move(output_lens);
  j["ttfts"] = std::move(ttfts);
  j["itls"] = std::move(itls);
  j["generated_texts"] = std::move(texts);
  j["errors"] = std::move(errors);
  return j.dump(2) + "\n";
}

void write_output_json(const std::string& path, const LoadgenResult& result, const MetricsOptions& options) {
  write_text(path, output_json_text(result, options));
}

void write_requests_jsonl(const std::string& path, std::span<const RequestRecord> records) {
  std::string text;
  for (const auto& r : records) {
    ordered_json j;
    j["index"] = r.index;
    j["warmup"] = r.warmup;
    if (r.session >= 0) {
      j["session"] = r.session;
      j["turn"] = r.turn;
    }
    j["ok"] = r.ok();
    j["error"] = client::error_kind_name(r.error);
    j["error_message"] = r.error_message;
    j["http_status"] = r.http_status;
    j["scheduled_ns"] = r.scheduled_ns;
    j["planned_ns"] = r.planned_ns;
    j["sent_ns"] = r.sent_ns;
    j["first_token_ns"] = r.first_token_ns;
    j["end_ns"] = r.end_ns;
    j["ttft_ms"] = num(ttft_ms(r));
    j["tpot_ms"] = num(tpot_ms(r));
    j["e2el_ms"] = num(e2el_ms(r));
    j["send_lag_ms"] = r.sent_ns ? num(ns_to_ms(r.sent_ns - r.scheduled_ns)) : ordered_json(nullptr);
    j["dispatched_ns"] = r.dispatched_ns;
    j["connection_wait_ms"] = ns_to_ms(r.connection_wait_ns);
    j["expected_prompt_tokens"] = r.expected_prompt_tokens;
    j["max_tokens"] = r.max_tokens;
    j["server_prompt_tokens"] = r.server_prompt_tokens;
    j["server_completion_tokens"] = r.server_completion_tokens;
    j["client_tokens"] = r.client_tokens;
    j["token_count_mismatch"] = r.token_count_mismatch();
    auto chunks = ordered_json::array();
    for (const auto& c : r.chunks) chunks.push_back({c.t_ns, c.tokens});
    j["chunks"] = std::move(chunks);  // [arrival steady ns, tokens]
    j["response_id"] = r.response_id;
    j["generated_text"] = r.generated_text;
    text += j.dump();
    text += '\n';
  }
  write_text(path, text);
}

std::string format_summary(const LoadgenResult& result, const MetricsOptions& options) {
  const Metrics& m = result.metrics;
  std::string s;
  auto line = [&](const std::string& k, const std::string& v) { s += fmt::format("{:<42}{:>14}\n", k, v); };
  auto f2 = [](double v) { return std::isfinite(v) ? fmt::format("{:.2f}", v) : std::string("-"); };
  auto header = [&](const std::string& t) {
    const int pad = std::max(0, 56 - static_cast<int>(t.size()) - 2);
    s += fmt::format("{} {} {}\n", std::string(pad / 2, '-'), t, std::string(pad - pad / 2, '-'));
  };
  s += fmt::format("{:=^56}\n", " Serving Benchmark Result ");
  line("Schedule:", "");
  s += "  " + result.info.schedule_description + "\n";
  line("Successful requests:", std::to_string(m.completed));
  line("Failed requests:", std::to_string(m.failed));
  for (const auto& [kind, n] : m.failed_by_kind) line("  " + kind + ":", std::to_string(n));
  if (m.warmup_excluded) line("Warmup requests (excluded):", std::to_string(m.warmup_excluded));
  line("Benchmark duration (s):", f2(m.duration_s));
  line("Total input tokens:", std::to_string(m.total_input_tokens));
  line("Total generated tokens:", std::to_string(m.total_output_tokens));
  line("Token count mismatches (usage vs stream):", std::to_string(m.token_count_mismatches));
  line("Request throughput (req/s):", f2(m.request_throughput));
  line("Output token throughput (tok/s):", f2(m.output_throughput));
  line("Total token throughput (tok/s):", f2(m.total_token_throughput));
  line("Max concurrent requests:", std::to_string(m.max_concurrent_requests));
  auto block = [&](const std::string& title, const std::string& abbrev, const LatencyStats& st) {
    header(title);
    line("Mean " + abbrev + " (ms):", f2(st.mean_ms));
    line("Median " + abbrev + " (ms):", f2(st.median_ms));
    line("Std " + abbrev + " (ms):", f2(st.std_ms));
    for (const auto& [p, v] : st.percentiles_ms) line("P" + percentile_label(p) + " " + abbrev + " (ms):", f2(v));
  };
  block("Time to First Token (from scheduled time)", "TTFT", m.ttft);
  block("Time per Output Token (excl. 1st token)", "TPOT", m.tpot);
  block("Inter-token Latency", "ITL", m.itl);
  block("End-to-end Latency (from scheduled time)", "E2EL", m.e2el);
  block("Send lag (actual - scheduled send)", "send lag", m.send_lag);
  header("Client");
  line("Max connections:", std::to_string(result.info.max_connections));
  line("P99 wait for a connection (ms):", f2(m.verdict.p99_connection_wait_ms));
  line("P99 client's own lag (ms):", f2(m.verdict.p99_client_lag_ms));
  if (m.steady.defined) {
    header("Steady state (ramp-up excluded)");
    line("Window (s from first send):", fmt::format("{:.2f}-{:.2f}", m.steady.start_s, m.steady.end_s));
    if (m.verdict.offered_rate > 0 && std::isfinite(m.verdict.offered_rate)) line("Offered rate (req/s):", f2(m.verdict.offered_rate));
    line("Request throughput (req/s):", f2(m.steady.request_throughput));
    line("Output token throughput (tok/s):", f2(m.steady.output_throughput));
    for (const auto& [p, v] : m.steady.ttft.percentiles_ms) line("P" + percentile_label(p) + " TTFT (ms):", f2(v));
    for (const auto& c : m.steady.slo) line("Goodput " + c.slo.name + " (req/s):", f2(c.goodput_rps));
  }
  if (const SessionMetrics& ss = result.sessions; ss.defined) {
    header("Conversations (multi-turn)");
    line("Conversations (all turns completed):", fmt::format("{} ({})", ss.sessions, ss.completed_sessions));
    line("Mean turns per conversation:", f2(ss.mean_turns));
    line("Concurrent conversations (mean / max):", fmt::format("{} / {}", f2(ss.mean_concurrent_sessions), ss.max_concurrent_sessions));
    for (const auto& t : ss.by_turn)
      line(fmt::format("Turn {}: median TTFT (ms), context tok:", t.turn), fmt::format("{} {:>6.0f}", f2(t.ttft.median_ms), t.mean_context_tokens));
  }
  for (const auto& c : m.slo) {
    header("SLO class " + c.slo.name);
    line("Attainment (%):", f2(100.0 * c.attainment));
    line("Goodput (req/s):", f2(c.goodput_rps));
  }
  for (const auto& l : result.extras.summary_lines) s += l + "\n";
  if (m.verdict.client_bound) s += "WARNING: the load generator limited this point (client-bound): " + m.verdict.client_bound_reason + "\n";
  if (m.verdict.server_saturated) s += "WARNING: not sustainable (server saturated): " + m.verdict.saturation_reason + "\n";
  s += std::string(56, '=') + "\n";
  (void)options;
  return s;
}

}  // namespace qmeter::loadgen
