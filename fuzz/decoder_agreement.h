#pragma once
// The rule of the client's hot path (chunk_scan.h): whatever the allocation-free scanner accepts,
// it decodes exactly as the general nlohmann/json path does. Both fuzz targets of the client feed
// the same events to two StreamDecoders, one on each path, and abort on any difference.
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "qmeter/client/stream_decoder.h"

namespace qmeter::fuzz {

struct DecoderPair {
  client::RequestRecord fast_rec, general_rec;
  client::StreamDecoder fast{fast_rec}, general{general_rec};
  DecoderPair() { general.set_fast_path(false); }

  void on_event(std::string_view type, std::string_view data, Nanos t) {
    const auto a = fast.on_event(type, data, t);
    const auto b = general.on_event(type, data, t);
    if (a != b) fail("step", data);
    check(data);
  }

  void check(std::string_view data) const {
    const auto& f = fast_rec;
    const auto& g = general_rec;
    if (f.error != g.error) fail("error kind", data);
    if (f.generated_text != g.generated_text) fail("generated text", data);
    if (f.response_id != g.response_id) fail("response id", data);
    if (f.first_token_ns != g.first_token_ns) fail("first token time", data);
    if (f.client_tokens != g.client_tokens) fail("client tokens", data);
    if (f.server_prompt_tokens != g.server_prompt_tokens) fail("usage.prompt_tokens", data);
    if (f.server_completion_tokens != g.server_completion_tokens) fail("usage.completion_tokens", data);
    if (f.chunks.size() != g.chunks.size()) fail("token chunk count", data);
    for (std::size_t i = 0; i < f.chunks.size(); ++i)
      if (f.chunks[i].t_ns != g.chunks[i].t_ns || f.chunks[i].tokens != g.chunks[i].tokens) fail("token chunk", data);
    if (fast.saw_done() != general.saw_done()) fail("[DONE]", data);
    if (fast.saw_finish_reason() != general.saw_finish_reason()) fail("finish_reason", data);
    if (fast.continuous_usage() != general.continuous_usage()) fail("usage mode", data);
  }

  [[noreturn]] static void fail(const char* what, std::string_view data) {
    std::fprintf(stderr, "fuzz: fast and general stream decoders disagree on %s after chunk: %.*s\n", what,
                 static_cast<int>(data.size() > 400 ? 400 : data.size()), data.data());
    std::abort();
  }
};

}  // namespace qmeter::fuzz
