#include "request_log.h"

#include <fmt/core.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"

namespace qmeter::mockserver {

RequestLog::RequestLog(const std::string& path) {
  file_ = std::fopen(path.c_str(), "w");
  if (!file_) throw UsageError(fmt::format("--request-log {}: cannot create the file: {}", path, std::strerror(errno)));
  writer_ = std::thread([this] { writer_loop(); });
}

RequestLog::~RequestLog() { close(); }

void RequestLog::append(RequestLogRecord record) {
  bool was_empty;
  {
    std::lock_guard lock(mu_);
    if (closing_) return;
    was_empty = queue_.empty();
    queue_.push_back(std::move(record));
  }
  if (was_empty) cv_.notify_one();  // the writer only sleeps on an empty queue
}

void RequestLog::close() {
  {
    std::lock_guard lock(mu_);
    closing_ = true;
  }
  cv_.notify_one();
  if (writer_.joinable()) writer_.join();
  if (file_) {
    std::fclose(file_);
    file_ = nullptr;
  }
}

void RequestLog::writer_loop() {
  std::vector<RequestLogRecord> batch;
  std::string text;
  for (;;) {
    bool last;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return closing_ || !queue_.empty(); });
      batch.swap(queue_);
      last = closing_ && batch.empty();
    }
    if (last) break;
    text.clear();
    for (const auto& r : batch) {
      text += to_json_line(r);
      text += '\n';
    }
    batch.clear();
    std::fwrite(text.data(), 1, text.size(), file_);
    std::fflush(file_);  // a reader (a test, a tool) sees each finished request promptly
  }
}

std::string RequestLog::to_json_line(const RequestLogRecord& r) {
  nlohmann::ordered_json j;
  j["index"] = r.index;
  j["id"] = r.id;
  j["endpoint"] = r.endpoint;
  j["model"] = r.model;
  j["stream"] = r.stream;
  j["arrival_ns"] = r.arrival_ns;
  j["headers_ns"] = r.headers_ns;
  j["started_ns"] = r.started_ns;
  j["queue_wait_ns"] = r.queue_wait_ns;
  j["fault"] = r.fault;
  j["status"] = r.status;
  j["prompt_tokens"] = r.prompt_tokens;
  j["max_tokens"] = r.max_tokens;
  j["completion_tokens"] = r.completion_tokens;
  j["reported_completion_tokens"] = r.reported_completion_tokens;
  auto chunks = nlohmann::ordered_json::array();
  for (const auto& c : r.chunks) chunks.push_back({{"ns", c.ns}, {"kind", c.kind}, {"tokens", c.tokens}});
  j["chunks"] = std::move(chunks);
  j["stalled_ns"] = r.stalled_ns;
  j["end_ns"] = r.end_ns;
  j["outcome"] = r.outcome;
  if (!r.error.empty()) j["error"] = r.error;
  return j.dump();
}

}  // namespace qmeter::mockserver
