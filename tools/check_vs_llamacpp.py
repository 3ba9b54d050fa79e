#!/usr/bin/env python3
"""ponder against llama.cpp on one GGUF (optionally with a LoRA adapter): the prompt's tokens, the
logits at its last position (max |difference| / max |logit|) and N greedy tokens.

  tools/check_vs_llamacpp.py [--lora ADAPTER.gguf] [--ponder-model MERGED.gguf] MODEL.gguf PROMPT [N]

llama.cpp runs MODEL (+ ADAPTER); ponder runs MERGED when given (e.g. the merged model of a LoRA
run, to check that the adapter file means the same in llama.cpp), else MODEL (+ ADAPTER).
$LLAMA_CPP is llama.cpp's source tree with a build in $LLAMA_CPP/build (or $LLAMA_CPP_LIB, the
folder of libllama.so): tools/llamacpp_logits.cpp is compiled against it once, into build/.
"""
import argparse
import json
import os
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def llama_tool():
    exe = os.path.join(root, "build", "llamacpp_logits")
    if not os.path.exists(exe):
        if "LLAMA_CPP" not in os.environ:
            sys.exit("check_vs_llamacpp.py: set LLAMA_CPP to llama.cpp's source tree (with a build in build/bin, "
                     "or LLAMA_CPP_LIB to the folder of libllama.so)")
        src = os.environ["LLAMA_CPP"]
        lib = os.environ.get("LLAMA_CPP_LIB", os.path.join(src, "build", "bin"))
        subprocess.run(["g++", "-std=c++17", "-O2", "-I" + os.path.join(src, "include"),
                        "-I" + os.path.join(src, "ggml", "include"), os.path.join(root, "tools", "llamacpp_logits.cpp"),
                        "-L" + lib, "-lllama", "-lggml", "-lggml-base", "-Wl,-rpath," + lib, "-o", exe], check=True)
    return exe


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("prompt")
    ap.add_argument("n", type=int, nargs="?", default=16)
    ap.add_argument("--lora")
    ap.add_argument("--ponder-model")
    a = ap.parse_args()
    ref = json.loads(subprocess.run([llama_tool(), a.model, a.prompt, str(a.n)] + ([a.lora] if a.lora else []),
                                    check=True, capture_output=True, text=True).stdout)
    ponder = os.path.join(root, "build", "ponder")
    pm = a.ponder_model or a.model
    extra = ["--lora", a.lora] if a.lora and not a.ponder_model else []
    got = json.loads(subprocess.run([ponder, "logits", "-m", pm, "-p", a.prompt, "-t", "2"] + extra, check=True,
                                    capture_output=True, text=True).stdout)
    gen = json.loads(subprocess.run([ponder, "generate", "-m", pm, "-p", a.prompt, "-n", str(a.n), "--json", "-t", "2"]
                                    + extra, check=True, capture_output=True, text=True).stdout)
    scale = max(abs(x) for x in ref["logits"])
    diff = max(abs(x - y) for x, y in zip(ref["logits"], got["logits"]))
    same_prompt = ref["prompt_tokens"] == got.get("tokens", got.get("prompt_tokens"))
    same_greedy = ref["greedy"] == gen["paths"][0]["tokens"][:len(ref["greedy"])]
    print(json.dumps({"prompt_tokens_equal": same_prompt, "max_abs_logit_diff": diff, "max_abs_logit": scale,
                      "relative": diff / scale, "greedy_equal": same_greedy, "llama_greedy": ref["greedy"],
                      "ponder_greedy": gen["paths"][0]["tokens"]}, indent=1))
    return 0 if same_prompt and diff <= 1e-3 * scale and same_greedy else 1


if __name__ == "__main__":
    sys.exit(main())
