// The file-backed dataset readers (src/workload: ShareGPT JSON, JSONL, Azure trace CSV, GSM8K
// JSONL) through the dataset table, as `--dataset KIND:PATH` loads them. The first byte picks
// the kind and the options; the rest is the file.
#include "fuzz_support.h"
#include "qmeter/workload/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qmeter;
  if (size == 0) return 0;
  static const char* const kKinds[] = {"sharegpt", "jsonl", "azure", "gsm8k"};
  const std::string kind = kKinds[data[0] % 4];
  const std::string path = fuzz::write_scratch("dataset." + kind, fuzz::as_text(data + 1, size - 1));
  workload::DatasetOptions o;
  o.spec = kind + ":" + path;
  o.num_prompts = 1 + (data[0] >> 2) % 8;
  o.fixed_output_len = data[0] & 0x20;
  o.num_fewshot = (data[0] & 0x40) ? 1 : 0;
  fuzz::expect_only_qmeter_errors([&] { (void)workload::load_dataset(o); });
  return 0;
}
