#pragma once
// Private: the linears of a decoder layer by name, and owned f32 copies of their weights that
// the methods may modify before packing.
#include <memory>
#include <string>
#include <vector>

#include "qmeter/engine/model.h"

namespace qmeter::quant {

struct LinearRef {
  const char* name;
  engine::Matrix* matrix;
};
std::vector<LinearRef> layer_linears(engine::LayerWeights& lw);

// Replaces m with an owned f32 copy (kept alive by model.storage); returns its mutable data.
float* make_owned_f32(engine::Model& model, engine::Matrix& m);
// Replaces m with the packed blob (kept alive by model.storage).
void install_packed(engine::Model& model, engine::Matrix& m, engine::DType dtype, std::vector<std::byte> blob);

// The group size used for a layer of `cols` inputs: group_size, or one group per row (rounded up
// to a multiple of 32) when the layer is narrower (only for the default; explicit sizes are checked).
int effective_group_size(int group_size, int cols);

}  // namespace qmeter::quant
