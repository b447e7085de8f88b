// Chat template families, recognized by their markers and rendered by their rule (see the header).
#include "qmeter/quality/chat_template.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "task_common.h"

namespace qmeter::quality {

ChatTemplate ChatTemplate::from_text(const std::string& jinja, const std::string& where) {
  ChatTemplate t;
  if (jinja.find("<|im_start|>") != std::string::npos) t.family_ = "chatml";
  else if (jinja.find("<|start_header_id|>") != std::string::npos) t.family_ = "llama3";
  else if (jinja.find("<start_of_turn>") != std::string::npos) t.family_ = "gemma";
  else if (jinja.find("[INST]") != std::string::npos) t.family_ = jinja.find("<<SYS>>") != std::string::npos ? "llama2" : "mistral";
  else
    throw UsageError(fmt::format("{}: chat template not recognized (known families: ChatML <|im_start|>, Llama-3 "
                                 "<|start_header_id|>, Gemma <start_of_turn>, Llama-2 / Mistral [INST])",
                                 where));
  return t;
}

ChatTemplate ChatTemplate::load(const std::string& path) {
  const std::string text = detail::read_text_file(path, "chat template");
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return from_text(text, path);  // the template text itself
  if (!j.contains("chat_template")) throw UsageError(fmt::format("{}: no 'chat_template' field", path));
  const auto& ct = j["chat_template"];
  if (ct.is_string()) return from_text(ct.get<std::string>(), path + ": chat_template");
  if (ct.is_array())
    for (const auto& e : ct)
      if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
        return from_text(e["template"].get<std::string>(), path + ": chat_template (default)");
  throw UsageError(fmt::format("{}: 'chat_template' must be a string or a list with a \"default\" entry", path));
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  std::string out;
  if (family_ == "chatml") {
    for (const auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
  } else if (family_ == "llama3") {
    for (const auto& m : messages) out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + detail::py_strip(m.content) + "<|eot_id|>";
    if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  } else if (family_ == "gemma") {
    // Gemma has no system role: a system message is prefixed to the first user turn.
    std::string system;
    for (const auto& m : messages) {
      if (m.role == "system") {
        system = m.content + "\n\n";
        continue;
      }
      const std::string role = m.role == "assistant" ? "model" : m.role;
      out += "<start_of_turn>" + role + "\n" + system + detail::py_strip(m.content) + "<end_of_turn>\n";
      system.clear();
    }
    if (add_generation_prompt) out += "<start_of_turn>model\n";
  } else {  // llama2 / mistral: user turns in [INST] ... [/INST], assistant turns after, closed by </s>
    std::string system;
    for (const auto& m : messages) {
      if (m.role == "system") {
        system = family_ == "llama2" ? "<<SYS>>\n" + m.content + "\n<</SYS>>\n\n" : m.content + "\n\n";
      } else if (m.role == "user") {
        out += "[INST] " + system + detail::py_strip(m.content) + " [/INST]";
        system.clear();
      } else {
        out += " " + detail::py_strip(m.content) + " </s>";
      }
    }
  }
  return out;
}

std::vector<ChatMessage> fewshot_messages(const std::vector<std::pair<std::string, std::string>>& shots,
                                          const std::string& question) {
  std::vector<ChatMessage> out;
  for (const auto& [q, a] : shots) {
    out.push_back({"user", q});
    out.push_back({"assistant", a});
  }
  out.push_back({"user", question});
  return out;
}

}  // namespace qmeter::quality
