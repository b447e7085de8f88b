#pragma once
// Writes the model as a Hugging Face LlamaForCausalLM folder.
#include <string>
#include <vector>

#include "qmeter/train/model.h"

namespace qmeter::train {

// config.json, tokenizer_config.json, tokenizer.model (the serialized SentencePiece model) and
// model.safetensors (F32, HF tensor names; q/k already in rotate-half RoPE order).
void export_hf_folder(const std::string& dir, const ModelConfig& config, const ParamLayout& layout,
                      const std::vector<float>& params, const std::string& tokenizer_model);

// Writes text to dir/name atomically; throws Error naming the path.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace qmeter::train
