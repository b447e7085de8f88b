// GGUF v3 (loader_gguf.cpp): header, metadata key/values, tensor table, data offsets, and the
// tokenizer built from the tokenizer.ggml.* metadata (tokenizer_gguf.cpp).
#include "model_files.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qmeter;
  const std::string path = fuzz::write_scratch("model.gguf", fuzz::as_text(data, size));
  fuzz::expect_only_qmeter_errors([&] { fuzz::touch_model(*engine::load_gguf_model(path, fuzz::fuzz_load_options())); });
  return 0;
}
