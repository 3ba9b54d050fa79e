#pragma once
// Greedy decoding of one path: argmax over the raw logits (ties to the lowest id), stopping at an
// end-of-generation token or after n_predict tokens.
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/model.h"

namespace ponder {

struct GreedyResult {
  std::vector<int32_t> tokens;  // generated ids, the end-of-generation token included when hit
  bool stopped_on_eog = false;
  double prompt_seconds = 0, generate_seconds = 0;
};

// on_token is called with each generated id as soon as it is chosen (for streaming).
GreedyResult generate_greedy(const Model& model, std::span<const int32_t> prompt, int n_predict,
                             const std::function<void(int32_t)>& on_token = {});

// Index of the largest value, the lowest index on ties. (n)
int32_t argmax(std::span<const float> x);

}  // namespace ponder
