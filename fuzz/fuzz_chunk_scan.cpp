// The fast chunk scanner (chunk_scan.cpp) against nlohmann/json: every chunk the scanner accepts
// must be a JSON object, and the scanner's fields must be the ones nlohmann reads; the decoder's
// two paths must then produce identical records.
#include <nlohmann/json.hpp>

#include "chunk_scan.h"
#include "decoder_agreement.h"
#include "fuzz_support.h"

namespace {

using nlohmann::json;
using qmeter::client::detail::ScannedChunk;

[[noreturn]] void disagree(const char* what, std::string_view data) {
  std::fprintf(stderr, "fuzz: chunk scanner and nlohmann/json disagree on %s: %.*s\n", what,
               static_cast<int>(data.size() > 400 ? 400 : data.size()), data.data());
  std::abort();
}

const json* string_at(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it != obj.end() && it->is_string() ? &*it : nullptr;
}

void check_fields(const ScannedChunk& sc, const json& j, std::string_view data) {
  if (!sc.id.empty()) {
    const json* id = string_at(j, "id");
    if (!id || id->get<std::string>() != sc.id) disagree("id", data);
  }
  if (sc.has_usage != (j.contains("usage") && j["usage"].is_object())) disagree("usage", data);
  if (sc.has_usage) {
    const json& u = j["usage"];
    for (auto [key, value] : {std::pair{"prompt_tokens", sc.prompt_tokens}, std::pair{"completion_tokens", sc.completion_tokens}}) {
      auto it = u.find(key);
      const bool integer = it != u.end() && it->is_number_integer();
      if (value >= 0 && (!integer || it->get<long long>() != value)) disagree(key, data);
    }
  }
  const auto choices = j.find("choices");
  const bool nonempty = choices != j.end() && choices->is_array() && !choices->empty() && (*choices)[0].is_object();
  if (sc.choices_nonempty != nonempty) disagree("choices", data);
  if (!nonempty) return;
  const json& choice = (*choices)[0];
  const bool fr = choice.contains("finish_reason") && !choice["finish_reason"].is_null();
  if (sc.finish_reason != fr) disagree("finish_reason", data);
  const json* content = string_at(choice, "text");
  if (!content && choice.contains("delta") && choice["delta"].is_object()) content = string_at(choice["delta"], "content");
  else if (!content && choice.contains("message") && choice["message"].is_object()) content = string_at(choice["message"], "content");
  if (sc.has_content != (content != nullptr)) disagree("content presence", data);
  if (content) {
    std::string text;
    if (!sc.content_escaped) text = sc.content_raw;
    else if (!qmeter::client::detail::append_unescaped(sc.content_raw, text)) disagree("content escapes", data);
    if (text != content->get<std::string>()) disagree("content text", data);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = qmeter::fuzz::as_text(data, size);
  ScannedChunk sc;
  if (qmeter::client::detail::scan_chunk(text, sc)) {
    const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) disagree("validity (scanner accepted, nlohmann refused)", text);
    check_fields(sc, j, text);
  }
  // The same chunk through both decoder paths, twice (the second sees the first's usage mode).
  qmeter::fuzz::DecoderPair decoders;
  decoders.on_event("message", text, 1);
  decoders.on_event("message", text, 2);
  return 0;
}
