// llama2.c checkpoint header and tensor walk (loader_llama2c.cpp), plus the llama2.c tokenizer
// file beside it (tokenizer_llama2c.cpp). Input: model.bin [SEPARATOR tokenizer.bin].
#include "model_files.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qmeter;
  const auto parts = fuzz::split_files(fuzz::as_text(data, size), 2);
  const std::string model = fuzz::write_scratch("model.bin", parts[0]);
  if (parts.size() > 1) fuzz::write_scratch("tokenizer.bin", parts[1]);
  else fuzz::remove_scratch("tokenizer.bin");
  fuzz::expect_only_qmeter_errors([&] { fuzz::touch_model(*engine::load_llama2c_model(model, fuzz::fuzz_load_options())); });
  return 0;
}
