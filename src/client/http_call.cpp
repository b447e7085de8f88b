#include "qmeter/client/http_call.h"

#include <curl/curl.h>

#include <mutex>

#include "curl_global.h"
#include "qmeter/core/error.h"

namespace qmeter::client {

namespace {
std::size_t append_body(char* data, std::size_t size, std::size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}
}  // namespace

void ensure_curl_global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct HttpCaller::Impl {
  CURL* curl = nullptr;
  curl_slist* json_headers = nullptr;
  curl_slist* plain_headers = nullptr;
  double timeout_s = 300;

  HttpReply perform(const std::string& url, const std::string* body) {
    HttpReply reply;
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, body ? json_headers : plain_headers);
    if (body) {
      curl_easy_setopt(curl, CURLOPT_POST, 1L);
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
    } else {
      curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
    const CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
      reply.error = curl_easy_strerror(rc);
      return reply;
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
    return reply;
  }
};

HttpCaller::HttpCaller(std::string api_key, double timeout_s) : impl_(std::make_unique<Impl>()) {
  ensure_curl_global_init();
  impl_->curl = curl_easy_init();
  if (impl_->curl == nullptr) throw Error("curl_easy_init failed");
  impl_->timeout_s = timeout_s;
  impl_->json_headers = curl_slist_append(nullptr, "Content-Type: application/json");
  if (!api_key.empty()) {
    const std::string auth = "Authorization: Bearer " + api_key;
    impl_->json_headers = curl_slist_append(impl_->json_headers, auth.c_str());
    impl_->plain_headers = curl_slist_append(impl_->plain_headers, auth.c_str());
  }
  CURL* c = impl_->curl;
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, append_body);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_s * 1000));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, "");  // gzip/deflate as the server offers (metrics pages)
}

HttpCaller::~HttpCaller() {
  if (impl_->curl) curl_easy_cleanup(impl_->curl);
  curl_slist_free_all(impl_->json_headers);
  curl_slist_free_all(impl_->plain_headers);
}

HttpReply HttpCaller::post_json(const std::string& url, const std::string& json_body) {
  return impl_->perform(url, &json_body);
}

HttpReply HttpCaller::get(const std::string& url) { return impl_->perform(url, nullptr); }

}  // namespace qmeter::client
