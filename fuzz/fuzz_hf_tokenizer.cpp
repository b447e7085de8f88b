// tokenizer.json (tokenizer_hf.cpp, tokenizer_bpe.cpp) with an optional tokenizer_config.json
// beside it; a loaded tokenizer then encodes and decodes a fixed mixed-script text.
// Input: tokenizer.json [SEPARATOR tokenizer_config.json].
#include "model_files.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qmeter;
  const auto parts = fuzz::split_files(fuzz::as_text(data, size), 2);
  const std::string path = fuzz::write_scratch("tokenizer.json", parts[0]);
  if (parts.size() > 1) fuzz::write_scratch("tokenizer_config.json", parts[1]);
  else fuzz::remove_scratch("tokenizer_config.json");
  fuzz::expect_only_qmeter_errors([&] {
    auto tok = engine::load_hf_tokenizer(path);
    for (bool special : {false, true}) {
      const auto ids = tok->encode("Hi <s> there\n\n  caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD 1234 \xF0\x9F\x99\x82", true, special);
      for (int id : ids)
        if (id < 0 || id >= tok->vocab_size()) {
          std::fprintf(stderr, "fuzz: encode returned id %d outside the vocabulary (%d)\n", id, tok->vocab_size());
          std::abort();
        }
      (void)tok->decode(ids);
    }
  });
  return 0;
}
