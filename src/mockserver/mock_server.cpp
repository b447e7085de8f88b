// The mock server: routes requests, plans each reply (response_plan.cpp) and plays the plan out
// with timers on the connection's io thread, logging when every chunk was handed to the socket.
//
// Conventions that clients and tests rely on:
//  - prompt tokens = whitespace-separated words of the prompt (chat: of every message's content);
//  - output token i is the word " tok<i>"; the text of a reply is reproducible from its length;
//  - --ttft-ms is arrival -> first token chunk; --itl-ms is the mean gap between token chunks
//    (with --tokens-per-chunk K each chunk carries K tokens, the last one possibly fewer);
//  - stream headers go out on arrival; a role-only first chunk (fault) is sent then too;
//  - finish_reason is "length" when max_tokens was reached, else "stop" (--tokens-before-eos cut it);
//  - every generation reply carries X-Request-Id, the `id` of its chunks and of its log record;
//  - --max-concurrent-streams N: a generation reply (streamed or not) holds one of N slots from the
//    start of its schedule to its end; later requests wait in arrival order (SlotGate below) and
//    their schedule (TTFT, gaps) starts when a slot is handed to them. See mock_server.h.
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <utility>

#include "openai_format.h"
#include "qmeter/core/error.h"
#include "qmeter/mockserver/mock_server.h"
#include "qmeter/mockserver/response_plan.h"
#include "qmeter/net/http_server.h"
#include "request_log.h"

namespace qmeter::mockserver {

namespace {

// The slots of --max-concurrent-streams, shared by every io thread (one mutex; the work under it
// is a counter and a map operation). With limit 0 every acquire succeeds (only counted).
class SlotGate {
 public:
  // Called with the time the granted reply's schedule starts; runs on the thread that freed the
  // slot, outside the lock, so it must only hand the grant over (post to the reply's io thread).
  using Grant = std::function<void(Nanos start_ns)>;

  void set_limit(int limit) { limit_ = limit; }

  // True: a slot is taken now. False: the request waits, ordered by (arrival, index), and `grant`
  // runs once a slot is handed to it (unless cancel() removes it first).
  bool acquire(Nanos arrival_ns, std::uint64_t index, Grant grant) {
    std::lock_guard lock(mu_);
    if (limit_ == 0 || (busy_ < limit_ && queue_.empty())) {
      ++busy_;
      return true;
    }
    queue_.emplace(Key{arrival_ns, index}, std::move(grant));
    return false;
  }

  // Removes a waiting request. True: it was still waiting (it never gets a slot). False: a slot was
  // already granted to it (the grant is on its way; the reply must release that slot).
  bool cancel(Nanos arrival_ns, std::uint64_t index) {
    std::lock_guard lock(mu_);
    return queue_.erase(Key{arrival_ns, index}) > 0;
  }

  // Frees a slot at `free_ns`: the first waiter, if any, takes it over and starts at
  // max(free_ns, its arrival).
  void release(Nanos free_ns) {
    Grant grant;
    Nanos start = 0;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) {
        --busy_;
        return;
      }
      auto first = queue_.begin();
      start = std::max(free_ns, first->first.first);
      grant = std::move(first->second);
      queue_.erase(first);
    }
    grant(start);
  }

  int busy() const {
    std::lock_guard lock(mu_);
    return busy_;
  }
  std::size_t queued() const {
    std::lock_guard lock(mu_);
    return queue_.size();
  }
  // Drops the waiters' grants (after the server stopped: they hold replies alive).
  void clear() {
    std::map<Key, Grant> dropped;
    std::lock_guard lock(mu_);
    dropped.swap(queue_);
  }

 private:
  using Key = std::pair<Nanos, std::uint64_t>;
  int limit_ = 0;
  mutable std::mutex mu_;
  int busy_ = 0;  // slots held (granted grants included)
  std::map<Key, Grant> queue_;
};

}  // namespace

struct MockServer::Impl {
  MockServerConfig config;
  std::unique_ptr<net::HttpServer> server;
  std::unique_ptr<RequestLog> log;
  std::atomic<std::uint64_t> next_index{0};
  std::atomic<bool> stopping{false};
  std::mutex lifecycle_mu;
  bool started = false;
  bool stopped = false;
  std::int64_t created_s = 0;
  SlotGate slots;

  void handle(const net::HttpRequest& req, const net::ResponseWriterPtr& w);
  void handle_generation(const net::HttpRequest& req, const net::ResponseWriterPtr& w, bool chat);
  void record(RequestLogRecord&& r) {
    if (log) log->append(std::move(r));
  }
};

namespace {

std::int64_t unix_seconds() { return wall_now_ns() / 1000000000; }

// One generation request being played out. Lives on its connection's io thread only.
class Generation : public std::enable_shared_from_this<Generation> {
 public:
  Generation(MockServer::Impl& mock, net::ResponseWriterPtr writer, ResponsePlan plan, ReplyFormatter format,
             RequestLogRecord record, bool stream, bool continuous_usage)
      : mock_(mock),
        w_(std::move(writer)),
        plan_(std::move(plan)),
        format_(std::move(format)),
        rec_(std::move(record)),
        stream_(stream),
        continuous_(continuous_usage) {
    rec_.chunks.reserve(plan_.events.size());
  }

  void start() {
    auto self = shared_from_this();
    // Whatever cuts the reply short (client gone, server stopping) still gets its record.
    w_->on_close([self] { self->on_disconnect(); });
    if (stream_) {
      rec_.headers_ns = steady_now_ns();
      w_->start_stream(200, "text/event-stream", {{"X-Request-Id", format_.id()}});
    }
    if (finished_) return;  // the client was already gone
    waiting_ = true;
    // A grant comes from whichever thread freed the slot: it is handed to this reply's io thread.
    if (mock_.slots.acquire(rec_.arrival_ns, rec_.index,
                            [self](Nanos start_ns) { self->w_->post([self, start_ns] { self->begin(start_ns); }); })) {
      begin(rec_.arrival_ns);
    }
  }

 private:
  // The reply holds a slot from here on; its schedule (plan offsets) counts from `start_ns`.
  void begin(Nanos start_ns) {
    waiting_ = false;
    if (finished_) {  // the client left after the slot was granted, before it got here
      mock_.slots.release(steady_now_ns());
      return;
    }
    holds_slot_ = true;
    start_ns_ = start_ns;
    rec_.started_ns = start_ns;
    rec_.queue_wait_ns = start_ns - rec_.arrival_ns;
    step();
  }

  // Sends every event that is due, then sleeps (a timer on the io thread) until the next one.
  void step() {
    while (!finished_ && next_ < plan_.events.size()) {
      const PlannedEvent& e = plan_.events[next_];
      const Nanos due = start_ns_ + e.offset_ns;
      if (steady_now_ns() < due) {
        w_->run_at(due, [self = shared_from_this()] { self->step(); });
        return;
      }
      ++next_;
      due_ = due;
      send(e);
    }
  }

  int usage_now(int tokens) const { return continuous_ ? tokens : -1; }

  void send_chunk(std::string payload, const char* kind, int tokens) {
    const Nanos t = steady_now_ns();
    w_->write_chunk(sse_event(payload));
    rec_.chunks.push_back({t, kind, tokens});
  }

  void send(const PlannedEvent& e) {
    if (!stream_) {
      send_whole(e);
      return;
    }
    switch (e.kind) {
      case EventKind::kRole:
        send_chunk(format_.role_chunk(usage_now(tokens_sent_)), "role", 0);
        role_sent_ = true;
        break;
      case EventKind::kEmpty:
        send_chunk(format_.empty_chunk(usage_now(tokens_sent_)), "empty", 0);
        break;
      case EventKind::kMalformed:
        send_chunk(format_.malformed_chunk(), "malformed", 0);
        break;
      case EventKind::kTokens: {
        const bool last = e.first_token + e.tokens == plan_.completion_tokens;
        const bool with_role = rec_.endpoint == "/v1/chat/completions" && !role_sent_;
        role_sent_ = true;
        tokens_sent_ += e.tokens;
        send_chunk(format_.token_chunk(token_text(e.first_token, e.tokens), with_role, last ? finish_reason() : "",
                                       usage_now(tokens_sent_)),
                   "tokens", e.tokens);
        break;
      }
      case EventKind::kUsage:
        send_chunk(format_.usage_chunk(plan_.reported_completion_tokens), "usage", 0);
        break;
      case EventKind::kDone:
        send_chunk("[DONE]", "done", 0);
        w_->end();
        finish("completed");
        break;
      case EventKind::kDrop:
        finish("dropped");
        w_->abort();
        break;
      case EventKind::kStall:
        rec_.stalled_ns = steady_now_ns();  // the record is written when the connection closes
        break;
    }
  }

  void send_whole(const PlannedEvent& e) {
    const Nanos t = steady_now_ns();
    switch (e.kind) {
      case EventKind::kTokens: {
        std::string body = format_.full_body(token_text(0, plan_.completion_tokens), finish_reason(),
                                             plan_.reported_completion_tokens);
        w_->respond(net::HttpResponse{200, "application/json", std::move(body), {{"X-Request-Id", format_.id()}}});
        rec_.chunks.push_back({t, "body", plan_.completion_tokens});
        finish("completed");
        break;
      }
      case EventKind::kMalformed: {
        std::string body = format_.full_body(token_text(0, plan_.completion_tokens), finish_reason(),
                                             plan_.reported_completion_tokens);
        body.resize(body.size() / 2);
        w_->respond(net::HttpResponse{200, "application/json", std::move(body), {{"X-Request-Id", format_.id()}}});
        rec_.chunks.push_back({t, "malformed", 0});
        finish("completed");
        break;
      }
      case EventKind::kDrop:
        finish("dropped");
        w_->abort();
        break;
      default:  // kStall: never answer
        rec_.stalled_ns = t;
        break;
    }
  }

  std::string_view finish_reason() const { return plan_.hit_max_tokens ? "length" : "stop"; }

  // The reply's end. A slot it holds is handed on at `free_ns`: the due time of its last event
  // when it ran to its end (so the next reply's schedule does not inherit this one's wake-up
  // lateness), the present when it was cut short.
  void finish(const char* outcome, Nanos free_ns) {
    finished_ = true;
    rec_.outcome = outcome;
    rec_.end_ns = steady_now_ns();
    if (waiting_) rec_.queue_wait_ns = rec_.end_ns - rec_.arrival_ns;  // left while queued
    mock_.record(std::move(rec_));
    if (holds_slot_) {
      holds_slot_ = false;
      mock_.slots.release(std::min(free_ns, steady_now_ns()));
    }
  }
  void finish(const char* outcome) { finish(outcome, due_); }

  void on_disconnect() {
    if (finished_) return;
    // Still waiting: leave the queue. If a slot was granted meanwhile, begin() gives it back.
    if (waiting_) mock_.slots.cancel(rec_.arrival_ns, rec_.index);
    finish(mock_.stopping.load() ? "server_stopped" : "client_closed", steady_now_ns());
  }

  MockServer::Impl& mock_;
  net::ResponseWriterPtr w_;
  ResponsePlan plan_;
  ReplyFormatter format_;
  RequestLogRecord rec_;
  bool stream_;
  bool continuous_;
  std::size_t next_ = 0;
  Nanos start_ns_ = 0;  // origin of the plan's offsets: arrival, or when a queued reply got its slot
  Nanos due_ = 0;       // due time of the event being sent
  bool waiting_ = false;     // queued for a slot (or its grant is on the way)
  bool holds_slot_ = false;
  bool finished_ = false;
  bool role_sent_ = false;
  int tokens_sent_ = 0;
};

net::HttpResponse json_response(int status, std::string body) {
  return net::HttpResponse{status, "application/json", std::move(body), {}};
}

}  // namespace

void MockServer::Impl::handle(const net::HttpRequest& req, const net::ResponseWriterPtr& w) {
  const std::string& path = req.path;
  const bool post = req.method == "POST";
  const bool get = req.method == "GET" || req.method == "HEAD";
  if (path == "/v1/completions" || path == "/v1/chat/completions") {
    if (!post) {
      w->respond(json_response(405, openai_error_body(405, "use POST for " + path, "MethodNotAllowed")));
      return;
    }
    handle_generation(req, w, path == "/v1/chat/completions");
  } else if (path == "/health") {
    w->respond(net::HttpResponse{200, "", "", {}});
  } else if (path == "/v1/models" && get) {
    w->respond(json_response(200, models_body(config.model_name, created_s)));
  } else {
    w->respond(json_response(404, openai_error_body(404, fmt::format("no route for {} {}", req.method, path),
                                                    "NotFoundError")));
  }
}

void MockServer::Impl::handle_generation(const net::HttpRequest& req, const net::ResponseWriterPtr& w, bool chat) {
  const std::uint64_t index = next_index.fetch_add(1);
  RequestLogRecord rec;
  rec.index = index;
  rec.id = fmt::format("{}-mock-{}", chat ? "chatcmpl" : "cmpl", index);
  rec.endpoint = req.path;
  rec.arrival_ns = req.arrival_ns;

  GenerationRequest g;
  std::string error = parse_generation_request(req.body, chat, config.model_name, g);
  int status = 400;
  if (error.empty() && g.echo && config.no_echo_status != 0) {
    status = config.no_echo_status;
    error = "Unsupported param: echo";
  }
  if (!error.empty()) {
    net::HttpResponse r = json_response(status, openai_error_body(status, error, status < 500 ? "BadRequestError" : "InternalServerError"));
    r.headers.push_back({"X-Request-Id", rec.id});
    w->respond(std::move(r));
    rec.status = status;
    rec.error = error;
    rec.outcome = "error_status";
    rec.end_ns = steady_now_ns();
    record(std::move(rec));
    return;
  }
  ResponsePlan plan = plan_response(config, index, g.plan, g.include_usage);
  rec.model = g.model;
  rec.stream = g.plan.stream;
  rec.fault = std::string(fault_name(plan.fault));
  rec.prompt_tokens = g.prompt_tokens;
  rec.max_tokens = g.plan.max_tokens.value_or(-1);
  rec.completion_tokens = plan.completion_tokens;
  rec.reported_completion_tokens = plan.reported_completion_tokens;

  if (plan.fault == FaultKind::kHttp500 || plan.fault == FaultKind::kHttp429) {
    const bool is500 = plan.fault == FaultKind::kHttp500;
    rec.status = is500 ? 500 : 429;
    net::HttpResponse r = json_response(
        rec.status, openai_error_body(rec.status, is500 ? "mock fault: internal server error" : "mock fault: rate limited",
                                      is500 ? "InternalServerError" : "RateLimitError"));
    r.headers.push_back({"X-Request-Id", rec.id});
    if (!is500) r.headers.push_back({"Retry-After", "1"});
    w->respond(std::move(r));
    rec.completion_tokens = 0;
    rec.reported_completion_tokens = 0;
    rec.outcome = "error_status";
    rec.end_ns = steady_now_ns();
    record(std::move(rec));
    return;
  }
  rec.status = 200;
  ReplyFormatter format(chat, rec.id, g.model, unix_seconds(), g.prompt_tokens);
  const bool stream = g.plan.stream;
  auto generation = std::make_shared<Generation>(*this, w, std::move(plan), std::move(format), std::move(rec), stream,
                                                 g.continuous_usage);
  generation->start();
}

// ---------------------------------------------------------------------------------------------

MockServer::MockServer(MockServerConfig config) : impl_(std::make_unique<Impl>()) {
  config.validate();
  impl_->slots.set_limit(config.max_concurrent_streams);
  impl_->config = std::move(config);
}

MockServer::~MockServer() {
  try {
    stop();
  } catch (...) {
  }
}

void MockServer::start() {
  std::lock_guard lock(impl_->lifecycle_mu);
  if (impl_->started) return;
  Impl& m = *impl_;
  if (!m.config.request_log_path.empty()) m.log = std::make_unique<RequestLog>(m.config.request_log_path);
  m.created_s = unix_seconds();
  net::HttpServerOptions opts;
  opts.host = m.config.host;
  opts.port = m.config.port;
  opts.io_threads = m.config.io_threads;
  opts.limits = m.config.connection_limits;
  m.server = std::make_unique<net::HttpServer>(opts, [&m](const net::HttpRequest& req, const net::ResponseWriterPtr& w) {
    m.handle(req, w);
  });
  m.server->start();
  m.started = true;
}

int MockServer::port() const { return impl_->server ? impl_->server->port() : 0; }

std::string MockServer::base_url() const {
  const std::string& h = impl_->config.host;
  const bool v6 = h.find(':') != std::string::npos;
  return fmt::format("http://{}{}{}:{}", v6 ? "[" : "", h, v6 ? "]" : "", port());
}

void MockServer::stop() {
  std::lock_guard lock(impl_->lifecycle_mu);
  Impl& m = *impl_;
  if (!m.started || m.stopped) return;
  m.stopping.store(true);
  m.server->stop(0);  // every unfinished reply's on_close writes its record
  m.slots.clear();
  if (m.log) m.log->close();
  m.stopped = true;
}

std::uint64_t MockServer::requests_received() const { return impl_->next_index.load(); }
int MockServer::streams_generating() const { return impl_->slots.busy(); }
std::size_t MockServer::streams_queued() const { return impl_->slots.queued(); }

}  // namespace qmeter::mockserver
