#include "hf_export.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "qmeter/core/error.h"
#include "safetensors.h"

namespace qmeter::train {

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot write " + tmp);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    if (!out.flush()) throw Error("cannot write " + tmp + " (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

void export_hf_folder(const std::string& dir, const ModelConfig& c, const ParamLayout& layout,
                      const std::vector<float>& params, const std::string& tokenizer_model) {
  nlohmann::ordered_json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", c.dim},
      {"intermediate_size", c.ffn_dim},
      {"num_hidden_layers", c.n_layers},
      {"num_attention_heads", c.n_heads},
      {"num_key_value_heads", c.n_kv_heads},
      {"head_dim", c.head_dim()},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_seq_len},
      {"rms_norm_eps", c.norm_eps},
      {"rope_theta", c.rope_theta},
      {"hidden_act", "silu"},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"tie_word_embeddings", true},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"torch_dtype", "float32"},
      {"initializer_range", 0.02},
  };
  write_text_file(dir + "/config.json", config.dump(2) + "\n");
  nlohmann::ordered_json tok_config = {
      {"tokenizer_class", "LlamaTokenizer"},
      {"add_bos_token", true},
      {"add_eos_token", false},
      {"bos_token", "<s>"},
      {"eos_token", "</s>"},
      {"unk_token", "<unk>"},
      {"model_max_length", c.max_seq_len},
      {"clean_up_tokenization_spaces", false},
      {"legacy", true},
  };
  write_text_file(dir + "/tokenizer_config.json", tok_config.dump(2) + "\n");
  write_text_file(dir + "/tokenizer.model", tokenizer_model);
  std::vector<SafetensorsEntry> entries;
  for (const auto& t : layout.tensors()) entries.push_back({t.name, t.shape, params.data() + t.offset});
  write_safetensors(dir + "/model.safetensors", entries, {{"format", "pt"}, {"producer", "qmeter train"}});
}

}  // namespace qmeter::train
