#!/usr/bin/env python3
"""Writes seed request bodies for fuzz/request_fuzz.cpp: one JSON file per shape the HTTP API reads."""
import json
import os
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
seeds = [
    {"messages": msgs},
    {"messages": msgs, "max_tokens": 16, "temperature": 0, "stream": True, "stream_options": {"include_usage": True}},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "n": 3, "seed": 7, "top_p": 0.9,
     "top_k": 40, "min_p": 0.05, "logprobs": True, "top_logprobs": 2, "stop": ["\n", "</answer>"]},
    {"messages": msgs, "presence_penalty": 0.5, "frequency_penalty": -0.5, "repetition_penalty": 1.1,
     "logit_bias": {"13": -100, "42": 5}, "max_completion_tokens": 8, "thinking_token_budget": 4},
    {"messages": msgs, "ponder": {"strategy": "vote", "samples": 8, "weighted": True}, "n": 2},
    {"messages": msgs, "ponder": {"strategy": "best-of", "samples": 4, "answer_only": True}},
    {"messages": msgs, "ponder": {"strategy": "beam", "beams": 4, "length_penalty": 0.5, "early_stopping": "never"}},
    {"messages": msgs, "ponder": {"strategy": "verify", "samples": 4, "answer": "42"}, "n": 2},
    {"messages": msgs, "ponder": {"strategy": "mcts", "budget_tokens": 64, "expand": 3, "simulations": 2, "c_puct": 1.5,
                                  "rollout_temperature": 0.7, "step_delim": " ", "numbers": [3, 12, 7], "target": 57}},
    {"prompt": "Once upon a time", "max_tokens": 12, "best_of": 4, "n": 2, "logprobs": 3},
    {"prompt": [1, 400, 30, 77], "use_beam_search": True, "n": 2, "early_stopping": True},
    {"prompt": ["One prompt"], "echo": False, "stream": True},
]
for i, s in enumerate(seeds):
    with open(os.path.join(out, f"seed{i}.json"), "w") as f:
        json.dump(s, f)
# The text splitter's inputs: reasoning, the end tag split across pieces, a stop string, UTF-8.
# (the target splits the body itself into pieces, so the text is in a field the parser ignores)
seeds.append({"messages": [{"role": "user", "content": "x"}], "stop": ["STOP"],
              "text": "think </think>\n\n answer \u00e9 STOP more"})
with open(os.path.join(out, "text.json"), "w") as f:
    json.dump(seeds[-1], f, ensure_ascii=False)
