#pragma once
// Private: the forward pass of calibration, one decoder layer at a time over all calibration
// sequences at once (each sequence causal from position 0), with the engine's own kernels
// (matmul, vector_ops) and the model's current weights. Layer-wise methods quantize layer l,
// then compute layer l's output from the already-quantized weights as layer l+1's input.
#include <vector>

#include "qmeter/engine/model.h"
#include "qmeter/engine/thread_pool.h"

namespace qmeter::quant {

// Where in a layer the inputs of a set of linears are taken.
enum class Stage { kAttnIn, kAttnOut, kFfnIn, kDownIn, kOutput };

struct CalibState {
  int n_seq = 0, seq_len = 0;
  std::vector<float> hidden;  // [n_seq * seq_len][dim]: the current layer's input
};

// Embeds the tokens (all sequences have the same length) into state.hidden.
CalibState calibration_start(const engine::Model& model, const std::vector<std::vector<int>>& seqs);
// The input of `stage`'s linears in layer `layer` given the layer input state.hidden, or the
// layer's output for kOutput ([tokens][width]).
std::vector<float> layer_forward(const engine::Model& model, int layer, const CalibState& state, Stage stage,
                                 engine::ThreadPool* pool);
// Logits of the final norm + classifier ([tokens][vocab]) from state.hidden after the last layer.
std::vector<float> final_logits(const engine::Model& model, const CalibState& state, engine::ThreadPool* pool);

}  // namespace qmeter::quant
