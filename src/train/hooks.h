#pragma once
// What a training loop asks of the layers above it. train/ does not depend on eval/ (DESIGN.md's
// layers): a loop that wants a held-out score calls an Evaluator the caller (the CLI, the demo, a
// test) supplies; plots are drawn by the caller from the run's metrics.jsonl.
#include <functional>

#include "decode/item_format.h"
#include "model/model.h"

namespace ponder {

// A model's score on held-out data: greedy accuracy and strict-format rate (-1: not measured).
struct HeldOutScore {
  double accuracy = -1;
  double format_rate = -1;
  double mean_tokens = -1;  // tokens of the chosen path per item
};

// Scores an engine model (the current weights, loaded for inference), prompting it in the format the
// run trains it in (decode/item_format.h); empty: no evaluation.
using Evaluator = std::function<HeldOutScore(const Model& model, const ItemFormat& format)>;

}  // namespace ponder
