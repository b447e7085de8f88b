// The chat template text of the served model, for GET /props (llama-server's endpoint, which
// clients such as `qmeter eval --apply-chat-template` read to render prompts as the model expects).
// The server does not render it (it has its own built-in chat formats); it only reports it.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "openai_api.h"
#include "qmeter/engine/gguf_writer.h"

namespace qmeter::server {

namespace {

namespace fs = std::filesystem;

// tokenizer_config.json's "chat_template": a string, or a list of {"name", "template"} whose
// "default" entry is the one transformers applies.
std::string from_tokenizer_config(const fs::path& path) {
  std::ifstream in(path);
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("chat_template")) return "";
  const auto& t = j["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array())
    for (const auto& e : t)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
        return e["template"].get<std::string>();
  return "";
}

}  // namespace

std::string model_chat_template_text(const std::string& model_spec) {
  std::error_code ec;
  const fs::path p(model_spec);
  if (fs::is_directory(p, ec)) return fs::is_regular_file(p / "tokenizer_config.json", ec) ? from_tokenizer_config(p / "tokenizer_config.json") : "";
  if (!fs::is_regular_file(p, ec)) return "";  // synthetic:SHAPE and the like
  {
    std::ifstream in(p, std::ios::binary);
    char magic[4] = {};
    if (in.read(magic, 4) && std::string(magic, 4) == "GGUF") {
      try {
        return engine::read_gguf_string(model_spec, "tokenizer.chat_template");
      } catch (const std::exception&) {
        return "";  // a template we cannot read is one we do not report; serving goes on
      }
    }
  }
  // A single weights file (model.safetensors, llama2.c .bin): the tokenizer_config.json beside it.
  const fs::path beside = p.parent_path() / "tokenizer_config.json";
  return fs::is_regular_file(beside, ec) ? from_tokenizer_config(beside) : "";
}

}  // namespace qmeter::server
