#include "qmeter/client/streaming_client.h"

#include "curl_global.h"
#include "session_chain.h"

#include <curl/curl.h>
#include <fmt/core.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>

#include "qmeter/client/sse_parser.h"
#include "qmeter/client/stream_decoder.h"
#include "qmeter/core/error.h"
#include "qmeter/core/open_file_limit.h"
#include "qmeter/core/text.h"

namespace qmeter::client {

namespace {

constexpr Nanos kNever = std::numeric_limits<Nanos>::max();
constexpr std::size_t kMaxErrorBody = 4096;
constexpr std::size_t kMaxJsonBody = 64u << 20;

bool is_chat_endpoint(const std::string& endpoint) { return endpoint.find("chat") != std::string::npos; }

std::string excerpt(const std::string& s, std::size_t max = 300) {
  std::string out = s.substr(0, max);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return s.size() > max ? out + "..." : out;
}

ErrorKind classify_curl_error(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return ErrorKind::kConnectFailed;
    case CURLE_OPERATION_TIMEDOUT:
      return ErrorKind::kTimeout;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
      return ErrorKind::kMalformedResponse;
    default:  // PARTIAL_FILE, RECV_ERROR, GOT_NOTHING, SEND_ERROR, ...: the connection went away
      return ErrorKind::kConnectionDropped;
  }
}

// One request in flight.
struct Transfer {
  CURL* easy = nullptr;
  RequestRecord* rec = nullptr;
  const std::string* body = nullptr;
  SseParser parser;
  StreamDecoder decoder;
  std::string other_body;  // error body (non-2xx) or a non-streaming JSON reply
  char curl_error[CURL_ERROR_SIZE] = {0};
  Nanos add_ns = 0;
  Nanos now_ns = 0;  // arrival time of the bytes being parsed
  bool headers_checked = false;
  bool http_ok = false;
  bool is_sse = true;
  bool failed = false;  // the decoder failed: abort the transfer

  Transfer(RequestRecord& r, bool keep_text)
      : rec(&r), parser([this](const SseEvent& ev) { on_event(ev); }), decoder(r, keep_text) {}

  void on_event(const SseEvent& ev) {
    if (failed) return;
    if (decoder.on_event(ev.type, ev.data, now_ns) == StreamDecoder::Step::kFailed) failed = true;
  }
};

}  // namespace

struct StreamingClient::Impl {
  ClientOptions opt;
  std::string url;
  curl_slist* headers = nullptr;

  // Run state (one run at a time).
  CURLM* multi = nullptr;
  int epfd = -1;
  Nanos curl_deadline = kNever;
  std::vector<CURL*> idle_easies;

  explicit Impl(ClientOptions o) : opt(std::move(o)) {
    ensure_curl_global_init();
    url = join_url(opt.base_url, opt.endpoint);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: text/event-stream");
    headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip for large prompts
    if (!opt.api_key.empty()) headers = curl_slist_append(headers, ("Authorization: Bearer " + opt.api_key).c_str());
    for (const auto& h : opt.headers) headers = curl_slist_append(headers, h.c_str());
  }
  ~Impl() {
    for (CURL* e : idle_easies) curl_easy_cleanup(e);
    curl_slist_free_all(headers);
  }

  long timeout_ms() const { return std::max<long>(1, static_cast<long>(opt.timeout_s * 1000.0)); }
  long connect_timeout_ms() const {
    return std::max<long>(1, static_cast<long>(std::min(opt.timeout_s, opt.connect_timeout_s) * 1000.0));
  }

  void common_options(CURL* e) const {
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms());
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, opt.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, opt.verify_tls ? 2L : 0L);
  }

  std::string body_for(const StreamRequest& r) const {
    nlohmann::json b = nlohmann::json::object();
    b["model"] = opt.model;
    if (is_chat_endpoint(opt.endpoint)) {
      auto msgs = nlohmann::json::array();
      if (r.messages.empty()) {
        msgs.push_back({{"role", "user"}, {"content", r.prompt}});
      } else {
        for (const auto& m : r.messages) msgs.push_back({{"role", m.role}, {"content", m.content}});
      }
      b["messages"] = std::move(msgs);
    } else {
      b["prompt"] = r.prompt;
    }
    if (r.max_tokens > 0) b["max_tokens"] = r.max_tokens;
    if (opt.temperature >= 0) b["temperature"] = opt.temperature;
    b["stream"] = true;
    if (opt.include_usage) {
      b["stream_options"] = {{"include_usage", true}};
      if (opt.continuous_usage) b["stream_options"]["continuous_usage_stats"] = true;
    }
    if (!opt.extra_body_json.empty()) {
      auto extra = nlohmann::json::parse(opt.extra_body_json, nullptr, false);
      if (extra.is_discarded() || !extra.is_object())
        throw UsageError("extra request body is not a JSON object: " + opt.extra_body_json);
      b.update(extra);
    }
    return b.dump();
  }

  // ---- curl callbacks -------------------------------------------------------------------------

  static size_t on_write(char* ptr, size_t size, size_t nmemb, void* userdata) {
    auto* t = static_cast<Transfer*>(userdata);
    const size_t len = size * nmemb;
    t->now_ns = steady_now_ns();
    if (!t->headers_checked) {
      t->headers_checked = true;
      long status = 0;
      curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
      t->rec->http_status = static_cast<int>(status);
      t->http_ok = status >= 200 && status < 300;
      const char* ct = nullptr;
      curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &ct);
      // SSE unless the server says JSON (a server that ignored "stream": true).
      t->is_sse = !(ct && std::strstr(ct, "json") && !std::strstr(ct, "event-stream"));
    }
    if (!t->http_ok) {
      if (t->other_body.size() < kMaxErrorBody) t->other_body.append(ptr, std::min(len, kMaxErrorBody - t->other_body.size()));
      return len;
    }
    if (!t->is_sse) {
      if (t->other_body.size() + len > kMaxJsonBody) return 0;
      t->other_body.append(ptr, len);
      return len;
    }
    t->parser.feed(std::string_view(ptr, len));
    if (!t->failed && t->parser.unknown_field_lines() > 0) {
      t->rec->error = ErrorKind::kMalformedResponse;
      t->rec->error_message = "malformed SSE line (not data/event/id/retry or a comment)";
      t->failed = true;
    }
    return t->failed ? 0 : len;  // 0 aborts the transfer
  }

  // Called once the connection is established or reused, right before the request goes out: the
  // actual send time (a failed connect never gets here, so its sent_ns stays 0).
  static int on_prereq(void* userdata, char*, char*, int, int) {
    static_cast<Transfer*>(userdata)->rec->sent_ns = steady_now_ns();
    return CURL_PREREQFUNC_OK;
  }

  static int on_socket(CURL*, curl_socket_t s, int what, void* userp, void* socketp) {
    auto* self = static_cast<Impl*>(userp);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->epfd, EPOLL_CTL_DEL, s, nullptr);
      return 0;
    }
    epoll_event ev{};
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    ev.data.fd = s;
    // A closed socket's number can come back for a new one: ADD and MOD fall back on each other.
    const int first = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(self->epfd, first, s, &ev) != 0) {
      epoll_ctl(self->epfd, first == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev);
    }
    if (!socketp) curl_multi_assign(self->multi, s, reinterpret_cast<void*>(1));
    return 0;
  }

  static int on_timer(CURLM*, long timeout_ms, void* userp) {
    auto* self = static_cast<Impl*>(userp);
    self->curl_deadline = timeout_ms < 0 ? kNever : steady_now_ns() + static_cast<Nanos>(timeout_ms) * 1'000'000;
    return 0;
  }

  // ---- one transfer -----------------------------------------------------------------------

  CURL* take_easy() {
    if (!idle_easies.empty()) {
      CURL* e = idle_easies.back();
      idle_easies.pop_back();
      curl_easy_reset(e);
      return e;
    }
    return curl_easy_init();
  }

  void start(Transfer& t) {
    CURL* e = take_easy();
    t.easy = e;
    common_options(e);
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.body->data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t.body->size()));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, &Impl::on_prereq);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, &t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.curl_error);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms());
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 8192L);  // streams are small chunks; 10k streams x 8 KiB
    t.add_ns = steady_now_ns();
    curl_multi_add_handle(multi, e);
  }

  void finish(Transfer& t, CURLcode rc) {
    RequestRecord& rec = *t.rec;
    const Nanos now = steady_now_ns();
    rec.end_ns = now;
    if (rec.http_status == 0) {
      long status = 0;
      curl_easy_getinfo(t.easy, CURLINFO_RESPONSE_CODE, &status);
      rec.http_status = static_cast<int>(status);
    }
    const bool http_ok = rec.http_status >= 200 && rec.http_status < 300;

    if (rec.error != ErrorKind::kNone) {
      // the decoder or the SSE check already classified it (the abort shows up as a write error)
    } else if (rc != CURLE_OK) {
      ErrorKind kind = classify_curl_error(rc);
      if (kind == ErrorKind::kTimeout && rec.http_status == 0) {
        curl_off_t connect_us = 0;
        curl_easy_getinfo(t.easy, CURLINFO_CONNECT_TIME_T, &connect_us);
        if (connect_us == 0) kind = ErrorKind::kConnectFailed;  // the connect itself timed out
      }
      if (kind == ErrorKind::kConnectionDropped && rec.http_status != 0 && !http_ok) kind = ErrorKind::kHttpStatus;
      rec.error = kind;
      rec.error_message = fmt::format("{}: {}", curl_easy_strerror(rc), t.curl_error[0] ? t.curl_error : "");
      if (kind == ErrorKind::kTimeout)
        rec.error_message = fmt::format("no complete response within {} s ({} tokens received)", opt.timeout_s,
                                        rec.client_tokens);
    } else if (!http_ok) {
      rec.error = ErrorKind::kHttpStatus;
      rec.error_message = fmt::format("HTTP {}: {}", rec.http_status, excerpt(t.other_body));
    } else if (!t.is_sse) {
      t.decoder.on_json_body(t.other_body, now);
    } else if (!t.decoder.saw_done() && !t.decoder.saw_finish_reason()) {
      rec.error = ErrorKind::kConnectionDropped;
      rec.error_message = fmt::format("stream ended before [DONE] or a finish_reason ({} tokens received)",
                                      rec.client_tokens);
    }
    curl_multi_remove_handle(multi, t.easy);
    idle_easies.push_back(t.easy);
    t.easy = nullptr;
  }
};

StreamingClient::StreamingClient(ClientOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
StreamingClient::~StreamingClient() = default;

const ClientOptions& StreamingClient::options() const { return impl_->opt; }
std::string StreamingClient::request_url() const { return impl_->url; }
std::string StreamingClient::request_body(const StreamRequest& r) const { return impl_->body_for(r); }

void StreamingClient::check_reachable(double timeout_s) const {
  const auto& opt = impl_->opt;
  auto probe = [&](const std::string& path, long* status, std::string* err) {
    CURL* e = curl_easy_init();
    char errbuf[CURL_ERROR_SIZE] = {0};
    impl_->common_options(e);
    const std::string url = join_url(opt.base_url, path);
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, impl_->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, std::max<long>(1, static_cast<long>(timeout_s * 1000)));
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, +[](char*, size_t s, size_t n, void*) { return s * n; });
    const CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(e);
    if (rc != CURLE_OK) *err = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    return rc == CURLE_OK;
  };
  long status = 0;
  std::string err;
  if (!probe("/v1/models", &status, &err))
    throw Error(fmt::format("cannot reach the server at {}: {}", opt.base_url, err));
  if (status == 401 || status == 403)
    throw Error(fmt::format("the server at {} rejected the request (HTTP {}): check --api-key", opt.base_url, status));
  if (status >= 200 && status < 300) return;
  // Some servers have no /v1/models: any HTTP answer from /health shows the server is there.
  long health = 0;
  if (!probe("/health", &health, &err))
    throw Error(fmt::format("cannot reach the server at {}: {}", opt.base_url, err));
}

std::vector<RequestRecord> StreamingClient::run(const std::vector<StreamRequest>& requests, const RunControl& control) {
  Impl& im = *impl_;
  const std::size_t n = requests.size();
  std::vector<RequestRecord> records(n);
  std::vector<std::string> bodies(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& r = requests[i];
    auto& rec = records[i];
    rec.index = r.index;
    rec.warmup = r.warmup;
    rec.session = r.session;
    rec.turn = r.turn;
    rec.scheduled_ns = rec.planned_ns = r.scheduled_ns;
    rec.max_tokens = r.max_tokens;
    // A later turn's length is the whole history's: known only to the server.
    rec.expected_prompt_tokens = r.follows < 0 ? r.expected_prompt_tokens : -1;
    if (r.follows < 0) bodies[i] = im.body_for(r);  // built before the clock matters
  }
  // Send order: by scheduled time (records' planned_ns), ties by position. Later turns of
  // conversations join it when the previous turn ends (session_chain.h).
  detail::SessionChain sessions(requests);
  std::vector<std::size_t> order;
  order.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    if (!sessions.waits_for_previous(i)) order.push_back(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return records[a].planned_ns < records[b].planned_ns; });

  raise_open_file_limit();  // every open stream is one socket
  im.multi = curl_multi_init();
  im.epfd = epoll_create1(EPOLL_CLOEXEC);
  im.curl_deadline = kNever;
  curl_multi_setopt(im.multi, CURLMOPT_SOCKETFUNCTION, &Impl::on_socket);
  curl_multi_setopt(im.multi, CURLMOPT_SOCKETDATA, &im);
  curl_multi_setopt(im.multi, CURLMOPT_TIMERFUNCTION, &Impl::on_timer);
  curl_multi_setopt(im.multi, CURLMOPT_TIMERDATA, &im);
  const int max_connections = control.max_connections > 0 ? control.max_connections : RunControl::kDefaultMaxConnections;
  // curl's own limits equal ours (so it never queues a transfer itself) and it keeps that many
  // idle connections for reuse (the default cache would close and reopen them).
  curl_multi_setopt(im.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, static_cast<long>(max_connections));
  curl_multi_setopt(im.multi, CURLMOPT_MAXCONNECTS, static_cast<long>(max_connections));
  // Precise wake-ups: the default 50 us timer slack would show up as send lag.
  const int old_slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
  prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

  std::vector<std::unique_ptr<Transfer>> live(n);
  std::size_t next = 0, done = 0;
  int in_flight = 0;
  const int cap = control.max_concurrency > 0 ? std::min(control.max_concurrency, max_connections) : max_connections;
  int running = 0;
  Nanos last_slot_free_ns = 0;  // when the latest request ended and freed its slot (connection)
  std::vector<char> blocked(n, 0);  // was due while every slot was taken
  std::size_t marked = 0;           // order[next, marked) are marked blocked
  auto mark_blocked = [&](Nanos due_by) {
    for (marked = std::max(marked, next); marked < order.size() && records[order[marked]].planned_ns <= due_by; ++marked) {
      blocked[order[marked]] = 1;
    }
  };

  std::function<void(std::size_t)> end_request = [&](std::size_t i) {
    ++done;
    if (control.on_complete) control.on_complete(records[i]);
    const auto j = sessions.follower(i);
    if (!j) return;
    auto& next_rec = records[*j];
    if (!records[i].ok() || (control.cancel && control.cancel->load(std::memory_order_relaxed))) {
      // Its history does not exist: the rest of the conversation is not sent.
      next_rec.error = ErrorKind::kCancelled;
      next_rec.error_message = fmt::format("not sent: turn {} of its conversation did not complete", records[i].turn);
      next_rec.end_ns = records[i].end_ns;
      next_rec.scheduled_ns = next_rec.planned_ns = records[i].end_ns + requests[*j].think_ns;
      end_request(*j);
      return;
    }
    const StreamRequest sent = sessions.next_turn(i, records[i].generated_text);
    bodies[*j] = im.body_for(sent);
    next_rec.scheduled_ns = next_rec.planned_ns = records[i].end_ns + requests[*j].think_ns;
    // Into the send order by time (after what was already sent).
    auto pos = std::upper_bound(order.begin() + static_cast<std::ptrdiff_t>(next), order.end(), next_rec.planned_ns,
                                [&](Nanos t, std::size_t k) { return t < records[k].planned_ns; });
    const auto at = static_cast<std::size_t>(pos - order.begin());
    order.insert(pos, *j);
    if (at < marked) {  // due before the horizon already marked as waiting for a slot
      ++marked;
      blocked[*j] = 1;
    }
  };
  auto drain_done = [&] {
    int left = 0;
    while (CURLMsg* m = curl_multi_info_read(im.multi, &left)) {
      if (m->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
      const CURLcode rc = m->data.result;
      im.finish(*t, rc);
      const std::size_t i = static_cast<std::size_t>(t->rec - records.data());
      live[i].reset();
      // The pool was full until now: whatever became due meanwhile waited for this slot.
      if (in_flight == cap) mark_blocked(records[i].end_ns);
      --in_flight;
      last_slot_free_ns = records[i].end_ns;
      end_request(i);
    }
  };
  auto on_timeout = [&] {
    curl_multi_socket_action(im.multi, CURL_SOCKET_TIMEOUT, 0, &running);
    // curl may find its timer not yet expired by its own clock (ms rounding) and then leave it
    // unchanged without calling the timer callback: ask for the current timeout explicitly.
    long ms = -1;
    curl_multi_timeout(im.multi, &ms);
    im.curl_deadline = ms < 0 ? kNever : steady_now_ns() + static_cast<Nanos>(ms) * 1'000'000;
    drain_done();
  };

  constexpr int kMaxEvents = 512;
  epoll_event events[kMaxEvents];
  bool pwait2 = true;
  while (done < n) {
    if (control.cancel && control.cancel->load(std::memory_order_relaxed)) break;
    Nanos now = steady_now_ns();
    if (control.debug_loop_stall_ns > 0) {
      const Nanos until = now + control.debug_loop_stall_ns;
      while (steady_now_ns() < until) {
      }
      now = steady_now_ns();
    }
    // Release every due request while a slot (connection) is free.
    bool released = false;
    while (next < order.size() && in_flight < cap && records[order[next]].planned_ns <= now) {
      const std::size_t i = order[next++];
      auto& rec = records[i];
      if (blocked[i] && control.max_concurrency > 0) {
        // Closed loop: it was due earlier but had to wait for a slot; latency counts from release.
        rec.scheduled_ns = std::max(rec.planned_ns, last_slot_free_ns);
      } else if (blocked[i]) {
        // Open loop: latency still counts from the schedule; the wait is the connection limit's.
        rec.connection_wait_ns = std::max<Nanos>(0, last_slot_free_ns - rec.scheduled_ns);
      }
      rec.dispatched_ns = now;
      live[i] = std::make_unique<Transfer>(rec, im.opt.keep_text);
      live[i]->body = &bodies[i];
      im.start(*live[i]);
      ++in_flight;
      released = true;
    }
    if (released || im.curl_deadline <= now) on_timeout();
    if (done >= n) break;
    // Every due request still waiting is waiting for a slot.
    mark_blocked(now);

    now = steady_now_ns();
    const Nanos next_send = (next < order.size() && in_flight < cap) ? records[order[next]].planned_ns : kNever;
    Nanos wake = std::min(im.curl_deadline, next_send == kNever ? kNever : next_send - control.spin_ns);
    if (control.cancel) wake = std::min(wake, now + 50'000'000);  // poll the cancel flag
    Nanos wait_ns = wake == kNever ? -1 : std::max<Nanos>(0, wake - now);
    int nev;
    if (pwait2) {
      timespec ts{static_cast<time_t>(wait_ns / 1'000'000'000), static_cast<long>(wait_ns % 1'000'000'000)};
      nev = epoll_pwait2(im.epfd, events, kMaxEvents, wait_ns < 0 ? nullptr : &ts, nullptr);
      if (nev < 0 && errno == ENOSYS) {
        pwait2 = false;
        continue;
      }
    } else {
      const int ms = wait_ns < 0 ? -1 : static_cast<int>((wait_ns + 999'999) / 1'000'000);
      nev = epoll_wait(im.epfd, events, kMaxEvents, ms);
    }
    for (int k = 0; k < nev; ++k) {
      int mask = 0;
      if (events[k].events & EPOLLIN) mask |= CURL_CSELECT_IN;
      if (events[k].events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
      if (events[k].events & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
      curl_multi_socket_action(im.multi, events[k].data.fd, mask, &running);
    }
    if (nev > 0) drain_done();
    // Spin the last stretch before a due send (nothing else is due in that window).
    if (next_send != kNever && next_send - steady_now_ns() <= control.spin_ns) {
      while (steady_now_ns() < next_send) {
      }
    }
  }

  // Cancelled: end everything still running or not yet sent.
  for (std::size_t i = 0; i < n; ++i) {
    if (live[i]) {
      curl_multi_remove_handle(im.multi, live[i]->easy);
      im.idle_easies.push_back(live[i]->easy);
      live[i].reset();
    }
  }
  for (std::size_t k = 0; k < order.size(); ++k) {
    auto& rec = records[order[k]];
    if (rec.end_ns == 0) {
      rec.error = ErrorKind::kCancelled;
      rec.error_message = "the run was stopped before this request finished";
      rec.end_ns = steady_now_ns();
      end_request(order[k]);  // and the turns after it, not sent
    }
  }
  prctl(PR_SET_TIMERSLACK, static_cast<unsigned long>(old_slack > 0 ? old_slack : 50'000), 0, 0, 0);
  for (CURL* e : im.idle_easies) curl_easy_cleanup(e);
  im.idle_easies.clear();
  curl_multi_cleanup(im.multi);
  im.multi = nullptr;
  close(im.epfd);
  im.epfd = -1;
  return records;
}

}  // namespace qmeter::client
