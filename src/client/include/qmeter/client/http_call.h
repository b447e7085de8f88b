#pragma once
// One blocking HTTP request (libcurl easy interface) for callers that need a whole reply, not a
// timed stream: quality scoring, tokenization, model listing, readiness checks, metric scraping. One HttpCaller per thread; it keeps
// its connection alive between calls.
#include <memory>
#include <string>

namespace qmeter::client {

struct HttpReply {
  long status = 0;     // HTTP status; 0 when no reply came (then `error` says why)
  std::string body;
  std::string error;   // transport failure (connect refused, timeout, ...)
  bool ok() const { return error.empty() && status >= 200 && status < 300; }
};

class HttpCaller {
 public:
  explicit HttpCaller(std::string api_key = "", double timeout_s = 300);
  ~HttpCaller();
  HttpCaller(const HttpCaller&) = delete;
  HttpCaller& operator=(const HttpCaller&) = delete;

  HttpReply post_json(const std::string& url, const std::string& json_body);
  HttpReply get(const std::string& url);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qmeter::client
