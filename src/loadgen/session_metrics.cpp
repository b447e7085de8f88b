#include "qmeter/loadgen/session_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "session_output.h"

namespace qmeter::loadgen {

using client::RequestRecord;

LatencyStats latency_stats(std::vector<double> ms, std::span<const double> ps);  // metrics.cpp

SessionMetrics compute_session_metrics(std::span<const RequestRecord> records, const MetricsOptions& options) {
  SessionMetrics m;
  struct Session {
    int turns = 0, completed = 0;
    Nanos first_send = 0, last_end = 0;
  };
  std::map<std::int64_t, Session> sessions;
  std::map<int, std::vector<const RequestRecord*>> by_turn;
  for (const auto& r : records) {
    if (r.session < 0 || r.warmup) continue;
    Session& s = sessions[r.session];
    ++s.turns;
    if (r.ok()) ++s.completed;
    const Nanos sent = r.sent_ns ? r.sent_ns : r.scheduled_ns;
    if (s.first_send == 0 || sent < s.first_send) s.first_send = sent;
    s.last_end = std::max(s.last_end, r.end_ns);
    by_turn[r.turn].push_back(&r);
  }
  if (sessions.empty()) return m;
  m.defined = true;
  m.sessions = static_cast<std::int64_t>(sessions.size());
  std::vector<double> durations;
  std::vector<std::pair<Nanos, int>> events;  // +1 at a conversation's first send, -1 at its end
  double turns = 0;
  for (const auto& [id, s] : sessions) {
    turns += s.turns;
    m.max_turns = std::max(m.max_turns, s.turns);
    if (s.completed == s.turns) {
      ++m.completed_sessions;
      durations.push_back(static_cast<double>(s.last_end - s.first_send) / 1e6);
    }
    events.push_back({s.first_send, +1});
    events.push_back({s.last_end, -1});
  }
  m.mean_turns = turns / static_cast<double>(sessions.size());
  m.duration = latency_stats(std::move(durations), options.percentiles);

  // Open conversations over time: the time-weighted mean between the first send and the last end.
  std::sort(events.begin(), events.end());
  int open = 0;
  double area = 0;
  for (std::size_t k = 0; k < events.size(); ++k) {
    if (k) area += static_cast<double>(open) * static_cast<double>(events[k].first - events[k - 1].first);
    open += events[k].second;
    m.max_concurrent_sessions = std::max(m.max_concurrent_sessions, open);
  }
  const double span = static_cast<double>(events.back().first - events.front().first);
  m.mean_concurrent_sessions = span > 0 ? area / span : static_cast<double>(m.max_concurrent_sessions);

  for (const auto& [turn, recs] : by_turn) {
    TurnStats t;
    t.turn = turn;
    t.requests = static_cast<std::int64_t>(recs.size());
    std::vector<double> ttft;
    double context = 0, context_max = 0, output = 0;
    std::int64_t with_context = 0;
    for (const RequestRecord* r : recs) {
      if (!r->ok()) continue;
      ++t.completed;
      ttft.push_back(ttft_ms(*r));
      output += r->output_tokens();
      if (r->server_prompt_tokens >= 0) {
        ++with_context;
        context += r->server_prompt_tokens;
        context_max = std::max(context_max, static_cast<double>(r->server_prompt_tokens));
      }
    }
    t.ttft = latency_stats(std::move(ttft), options.percentiles);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    t.mean_context_tokens = with_context ? context / static_cast<double>(with_context) : nan;
    t.max_context_tokens = with_context ? context_max : nan;
    t.mean_output_tokens = t.completed ? output / static_cast<double>(t.completed) : nan;
    m.by_turn.push_back(std::move(t));
  }
  return m;
}

nlohmann::ordered_json session_metrics_json(const SessionMetrics& m) {
  using nlohmann::ordered_json;
  auto num = [](double v) { return std::isfinite(v) ? ordered_json(v) : ordered_json(nullptr); };
  auto stats = [&](const LatencyStats& s) {
    ordered_json j;
    j["mean_ms"] = num(s.mean_ms);
    j["median_ms"] = num(s.median_ms);
    for (const auto& [p, v] : s.percentiles_ms) j["p" + percentile_label(p) + "_ms"] = num(v);
    return j;
  };
  ordered_json j;
  j["sessions"] = m.sessions;
  j["completed_sessions"] = m.completed_sessions;
  j["mean_turns"] = m.mean_turns;
  j["max_turns"] = m.max_turns;
  j["session_duration"] = stats(m.duration);
  j["mean_concurrent_sessions"] = m.mean_concurrent_sessions;
  j["max_concurrent_sessions"] = m.max_concurrent_sessions;
  auto turns = ordered_json::array();
  for (const auto& t : m.by_turn) {
    ordered_json tj;
    tj["turn"] = t.turn;
    tj["requests"] = t.requests;
    tj["completed"] = t.completed;
    tj["ttft"] = stats(t.ttft);
    tj["mean_context_tokens"] = num(t.mean_context_tokens);
    tj["max_context_tokens"] = num(t.max_context_tokens);
    tj["mean_output_tokens"] = num(t.mean_output_tokens);
    turns.push_back(std::move(tj));
  }
  j["by_turn"] = std::move(turns);
  return j;
}

}  // namespace qmeter::loadgen
