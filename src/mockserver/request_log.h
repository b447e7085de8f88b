#pragma once
// The mock's per-request ground-truth log: one JSON object per line, written by a background
// thread so that serving threads only move a finished record into a queue (no file I/O, no JSON
// formatting on the timing path).
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "qmeter/core/clock.h"

namespace qmeter::mockserver {

struct LoggedChunk {
  Nanos ns = 0;             // steady clock just before the bytes were handed to the socket
  const char* kind = "";    // event_kind_name(): role, empty, malformed, tokens, usage, done; "body" (non-streamed)
  int tokens = 0;           // generated tokens in it
};

struct RequestLogRecord {
  std::uint64_t index = 0;
  std::string id;
  std::string endpoint;
  std::string model;
  bool stream = false;
  Nanos arrival_ns = 0;
  Nanos headers_ns = 0;  // when the stream's status line and headers went out (0: none)
  // --max-concurrent-streams: when its generation began, i.e. its schedule's origin (arrival_ns
  // when it did not wait; 0: never, e.g. an error reply or a client that left while queued), and
  // how long it waited for a slot (started_ns - arrival_ns; end_ns - arrival_ns if it left queued).
  Nanos started_ns = 0;
  Nanos queue_wait_ns = 0;
  std::string fault = "none";
  int status = 0;
  int prompt_tokens = 0;
  int max_tokens = -1;  // -1: the request gave none
  int completion_tokens = 0;
  int reported_completion_tokens = 0;
  std::vector<LoggedChunk> chunks;
  Nanos stalled_ns = 0;  // when a stall began (0: none)
  Nanos end_ns = 0;
  std::string outcome;  // completed | error_status | dropped | client_closed | server_stopped
  std::string error;    // message of a 4xx reply
};

class RequestLog {
 public:
  // Throws qmeter::UsageError naming --request-log when the file cannot be created.
  explicit RequestLog(const std::string& path);
  ~RequestLog();  // close()
  void append(RequestLogRecord record);  // thread-safe
  void close();                          // writes what is queued, then closes the file

  static std::string to_json_line(const RequestLogRecord& r);

 private:
  void writer_loop();
  std::FILE* file_ = nullptr;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RequestLogRecord> queue_;
  bool closing_ = false;
  std::thread writer_;
};

}  // namespace qmeter::mockserver
