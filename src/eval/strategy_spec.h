#pragma once
// The strategy list of `ponder eval` and the demo: "greedy,beam:4,sample:8,best-of:8,vote:8,
// verify:8,mcts:BUDGET". Each item is NAME or NAME:COUNT; mcts's BUDGET is generated tokens per
// problem, or the name of an item earlier in the list (mcts:vote:8) for that strategy's measured
// tokens on each problem (MCTS at equal cost).
#include <string>
#include <string_view>
#include <vector>

#include "decode/options.h"

namespace ponder {

struct StrategySpec {
  std::string name;         // the item as written, e.g. "vote:8"
  Strategy strategy;
  std::string budget_from;  // mcts only: the item whose tokens per problem are the budget ("" for a number)
};

// The sampling and seed of every sampled strategy, and MCTS's options but the budget.
struct SpecDefaults {
  SamplingOptions sampling;
  uint64_t seed = 0;
  MctsOptions mcts;
};

// InvalidArgument naming the item and what was expected: an unknown name, a missing or bad count,
// a count where none is taken, a repeated item, an mcts budget naming no earlier item.
std::vector<StrategySpec> parse_strategy_specs(std::string_view text, const SpecDefaults& defaults);

}  // namespace ponder
