// `qmeter quantize`: quantize a model with a registry method and write it as a folder that
// `qmeter serve` / `generate` load (see qmeter/quant/quantized_model.h).
#include <fmt/format.h>

#include <chrono>

#include "qmeter/core/error.h"
#include "qmeter/quant/quantize.h"
#include "flag_names.h"
#include "qmeter/quant/quantized_model.h"
#include "verbs.h"

namespace qmeter::cli {

void add_quantize_verb(CLI::App& app) {
  struct Args {
    std::string model, method, out;
    std::map<std::string, std::string> options;
  };
  auto a = std::make_shared<Args>();
  auto* sub = app.add_subcommand("quantize", "Quantize a model with a registry method and write it to a folder");
  sub->add_option("--model", a->model, "model path (llama2.c .bin, HF folder, .gguf)")->required();
  sub->add_option(renamed("--quantization,-q", {"--method"}), a->method, "quantization method: " + quantization_methods())
      ->required();
  sub->add_option("--out", a->out, "output folder (config.json, model.safetensors, tokenizer); the GGUF methods (q4_k and "
                 "llama-quantize's presets q8_0 ... iq4_xs) write <out>/model.gguf with the tokenizer embedded, or "
                 "the file --out names when it ends in .gguf")->required();
  add_quant_option_flags(sub, &a->options);
  sub->callback([a] {
    std::map<std::string, std::string> opts = a->options;
    std::string calib;
    if (auto it = opts.find("calib"); it != opts.end()) {
      calib = it->second;
      opts.erase(it);
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto model = quant::load_quantized(a->model, a->method, opts, calib);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const quant::WrittenModel w = quant::write_quantized_model(*model, a->model, a->out, a->method, a->options);
    fmt::print("quantized {} with {} in {:.1f} s: {} ({:.2f} MiB of weights)\n", a->model, a->method, secs, model->description,
               static_cast<double>(model->weight_bytes()) / (1 << 20));
    fmt::print("wrote {}: {}{}\n", a->out, fmt::join(w.files, ", "),
               w.tokenizer ? "" : " (no tokenizer file: pass --tokenizer when loading it)");
    if (!w.tokenizer && !w.tokenizer_note.empty()) fmt::print("  tokenizer not embedded: {}\n", w.tokenizer_note);
  });
}

}  // namespace qmeter::cli
