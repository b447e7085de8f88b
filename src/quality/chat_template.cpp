// Chat templates: found in tokenizer_config.json / a model folder / a GGUF file / a template file,
// rendered by the Jinja subset (jinja.h) as transformers renders them.
#include "qmeter/quality/chat_template.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "jinja.h"
#include "qmeter/core/error.h"
#include "qmeter/engine/gguf_writer.h"
#include "task_common.h"

namespace qmeter::quality {

namespace {

namespace fs = std::filesystem;

bool is_gguf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string(magic, 4) == "GGUF";
}

// A special token of tokenizer_config.json: a string, or an AddedToken object {"content": ...}.
std::string special_token(const nlohmann::json& cfg, const char* key) {
  if (!cfg.contains(key)) return "";
  const auto& v = cfg[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

ChatTemplate from_gguf(const std::string& path) {
  std::string text;
  engine::TokenizerVocab vocab;
  try {
    text = engine::read_gguf_string(path, "tokenizer.chat_template");
    if (text.empty()) throw UsageError(fmt::format("{}: the GGUF file has no tokenizer.chat_template", path));
    vocab = engine::read_gguf_vocab(path);
  } catch (const UsageError&) {
    throw;
  } catch (const Error& e) {
    throw UsageError(fmt::format("{}: cannot read the chat template: {}", path, e.what()));
  }
  auto piece = [&](int id) { return id >= 0 && id < static_cast<int>(vocab.tokens.size()) ? vocab.tokens[static_cast<std::size_t>(id)] : ""; };
  return ChatTemplate::from_text(text, path + ": tokenizer.chat_template", piece(vocab.bos_id), piece(vocab.eos_id));
}

}  // namespace

ChatTemplate ChatTemplate::from_text(const std::string& jinja, const std::string& where, const std::string& bos_token,
                                     const std::string& eos_token) {
  ChatTemplate t;
  t.template_ = std::make_shared<const jinja::Template>(jinja, where);
  t.bos_ = bos_token;
  t.eos_ = eos_token;
  return t;
}

const std::string& ChatTemplate::where() const { return template_->where(); }

ChatTemplate ChatTemplate::load(const std::string& path) {
  if (fs::is_directory(path)) {
    const auto cfg = (fs::path(path) / "tokenizer_config.json").string();
    if (!fs::is_regular_file(cfg)) throw UsageError(fmt::format("{}: the folder has no tokenizer_config.json with a chat template", path));
    return load(cfg);
  }
  if (is_gguf_file(path)) return from_gguf(path);
  const std::string text = detail::read_text_file(path, "chat template");
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {  // the template text itself (not a binary model file)
    if (text.find('\0') != std::string::npos)
      throw UsageError(fmt::format("{}: no chat template here (expected tokenizer_config.json, a model folder, a .gguf "
                                   "or a file with the template text)",
                                   path));
    return from_text(text, path);
  }
  if (!j.contains("chat_template")) throw UsageError(fmt::format("{}: no 'chat_template' field", path));
  const auto& ct = j["chat_template"];
  std::string body, where;
  if (ct.is_string()) {
    body = ct.get<std::string>();
    where = path + ": chat_template";
  } else if (ct.is_array()) {
    for (const auto& e : ct)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string()) {
        body = e["template"].get<std::string>();
        where = path + ": chat_template (default)";
      }
  }
  if (where.empty()) throw UsageError(fmt::format("{}: 'chat_template' must be a string or a list with a \"default\" entry", path));
  ChatTemplate t = from_text(body, where, special_token(j, "bos_token"), special_token(j, "eos_token"));
  t.unk_ = special_token(j, "unk_token");
  t.pad_ = special_token(j, "pad_token");
  return t;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  jinja::Json vars = jinja::Json::object();
  vars["messages"] = jinja::Json::array();
  for (const auto& m : messages) vars["messages"].push_back({{"role", m.role}, {"content", m.content}});
  vars["add_generation_prompt"] = add_generation_prompt;
  // transformers passes the tokenizer's special tokens. bos_token and eos_token are always set
  // ("" where unknown: a template file alone) so that `bos_token + ...` renders.
  vars["bos_token"] = bos_;
  vars["eos_token"] = eos_;
  if (!unk_.empty()) vars["unk_token"] = unk_;
  if (!pad_.empty()) vars["pad_token"] = pad_;
  return template_->render(vars);
}

std::string ChatTemplate::prompt(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  std::string out;
  try {
    out = render(messages, add_generation_prompt);
  } catch (const UsageError&) {
    std::vector<ChatMessage> without_system;
    for (const auto& m : messages)
      if (m.role != "system") without_system.push_back(m);
    if (without_system.size() == messages.size()) throw;
    out = render(without_system, add_generation_prompt);
  }
  if (!bos_.empty() && out.compare(0, bos_.size(), bos_) == 0) out.erase(0, bos_.size());
  return out;
}

std::vector<ChatMessage> lm_eval_chat_messages(const std::string& system,
                                               const std::vector<std::pair<std::string, std::string>>& shots,
                                               const std::string& fewshot_block, const std::string& question,
                                               bool multiturn) {
  std::vector<ChatMessage> out;
  if (!system.empty()) out.push_back({"system", system});
  if (multiturn) {
    for (const auto& [q, a] : shots) {
      out.push_back({"user", q});
      out.push_back({"assistant", a});
    }
  } else if (!shots.empty() || !fewshot_block.empty()) {
    out.push_back({"user", fewshot_block});
  }
  if (!multiturn && !out.empty() && out.back().role == "user") out.back().content += question;
  else out.push_back({"user", question});
  return out;
}

}  // namespace qmeter::quality
