// The file-backed dataset readers of src/workload (ShareGPT, JSONL, Azure, GSM8K, and the trace
// formats: every kind in the dataset table that takes a path), as `--dataset KIND:PATH` loads
// them. Input: "KIND\n" then the file; options come from the file's length so they vary too.
#include "fuzz_support.h"
#include "qmeter/workload/registry.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace qmeter;
  const auto input = fuzz::as_text(data, size);
  const auto eol = input.find('\n');
  if (eol == std::string_view::npos) return 0;
  const std::string kind(input.substr(0, eol));
  bool known = false;
  for (const auto& d : workload::dataset_table()) known = known || (d.needs_path && d.name == kind);
  if (!known) return 0;
  const std::string path = fuzz::write_scratch("dataset", input.substr(eol + 1));
  workload::DatasetOptions o;
  o.spec = kind + ":" + path;
  o.num_prompts = 1 + static_cast<int>(size % 4);
  o.fixed_output_len = size & 4;
  o.num_fewshot = (size & 8) ? 1 : 0;
  fuzz::expect_only_qmeter_errors([&] { (void)workload::load_dataset(o); });
  return 0;
}
