// A Hugging Face folder (loader_safetensors.cpp, loader_hf_quantized.cpp): config.json (with
// AutoGPTQ / AutoAWQ quantization_config), the safetensors header and tensor table, and an
// optional tokenizer.json. Input: config.json SEPARATOR model.safetensors [SEPARATOR tokenizer.json].
#include "model_files.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qmeter;
  const auto parts = fuzz::split_files(fuzz::as_text(data, size), 3);
  if (parts.size() < 2) return 0;  // keeps the fuzzer on inputs that reach the safetensors parser
  fuzz::write_scratch("config.json", parts[0]);
  fuzz::write_scratch("model.safetensors", parts[1]);
  if (parts.size() > 2) fuzz::write_scratch("tokenizer.json", parts[2]);
  else fuzz::remove_scratch("tokenizer.json");
  fuzz::expect_only_qmeter_errors(
      [&] { fuzz::touch_model(*engine::load_hf_model(fuzz::scratch_dir().string(), fuzz::fuzz_load_options())); });
  return 0;
}
