#pragma once
// A quantized model on disk: `qmeter quantize` writes the in-memory result of quantize_model()
// as a Hugging Face-style folder that engine::load_model() (and so `qmeter serve` / `generate`)
// loads back to the identical model:
//   config.json        the HF config plus "quantization_config": {"quant_method": "qmeter",
//                      "method", "options", "description"}
//   model.safetensors  dense tensors (embedding, norms, biases, unquantized linears) under their
//                      HF names and layout; each packed linear as one U8 tensor
//                      "<HF name without .weight>.qmeter_packed" holding its packed blob
//                      (packed_formats.h: self-describing header, rows in the engine's order);
//                      "__metadata__" carries the method and its options
//   tokenizer files    copied from the source (HF: tokenizer.json / tokenizer.model /
//                      tokenizer_config.json; llama2.c: tok<vocab>.bin or tokenizer.bin as
//                      tokenizer.bin); GGUF sources embed theirs, so none is written
// The GGUF methods (q8_0, q4_0, q4_k, the llama.cpp presets) write one GGUF v3 file instead
// (engine/gguf_writer.h) with the source's tokenizer in its metadata: --out itself when it ends
// in .gguf, else <out>/model.gguf; load it by that file's path.
#include <map>
#include <string>
#include <vector>

#include "qmeter/engine/model.h"

namespace qmeter::quant {

struct WrittenModel {
  std::vector<std::string> files;  // written, relative to the folder
  bool tokenizer = false;          // whether a tokenizer file was copied (GGUF: embedded)
  std::string tokenizer_note;      // GGUF without a tokenizer: why (none found, or one GGUF cannot state)
};

// Throws qmeter::Error (naming the folder or file) when a file cannot be written, and for models
// whose q/k rows use the rotate-half order (GGUF qwen2, synthetic), which the folder cannot state.
WrittenModel write_quantized_model(const engine::Model& model, const std::string& source_spec, const std::string& dir,
                                   const std::string& method, const std::map<std::string, std::string>& options);

}  // namespace qmeter::quant
