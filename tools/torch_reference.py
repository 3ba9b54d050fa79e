#!/usr/bin/python3
"""Golden files for ponder's training code, computed with PyTorch (Debian's python3-torch).

Writes tests/golden/train_<name>.json: a tiny Llama model (GGUF tensor names, torch.nn.Linear
layout (out, in)), a batch, the logits, the masked cross-entropy loss, every gradient, and the
losses of AdamW steps with gradient clipping. The C++ tests load the parameters and batch from the
file and compare what ponder computes. Run: /usr/bin/python3 tools/torch_reference.py
The model (the same one ponder trains):
  x = embed(tokens); per layer: h = x + Wo attn(rope(Wq n1), rope(Wk n1), Wv n1), n1 = rmsnorm(x);
  x = h + Wdown(silu(Wgate n2) * Wup n2), n2 = rmsnorm(h); logits = Wout rmsnorm(x)
  RoPE rotates adjacent pairs (2i, 2i+1) by t * base^(-2i/D) (GGUF 'llama' layout); attention is
  causal with grouped KV heads; rmsnorm(x) = x / sqrt(mean(x^2) + eps) * w.
  arch 'qwen2': Wq n1 + bq, Wk n1 + bk, Wv n1 + bv (Q/K/V biases), and RoPE rotates the pairs
  (i, i + D/2) (the Hugging Face / NeoX layout the GGUF 'qwen2' files keep).
  loss = -sum(logp[target] over positions with a target) / count.
  With "lora" (rank r, alpha): every matrix W (out, in) of the blocks gets W x + (alpha/r) B (A x),
  A (r, in) and B (out, r) named blk.N.<matrix>.weight.lora_a/lora_b; the base is frozen and only
  the adapters' gradients are written (train_qwen2_lora.json).
"""
import json
import math
import os
import sys

import torch

torch.set_default_dtype(torch.float64)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, base, neox):  # x (B, T, heads, D)
    B, T, Hn, D = x.shape
    i = torch.arange(D // 2, dtype=torch.float64)
    theta = torch.arange(T, dtype=torch.float64)[:, None] * base ** (-2.0 * i / D)[None, :]
    c, s = torch.cos(theta)[None, :, None, :], torch.sin(theta)[None, :, None, :]
    if neox:
        x0, x1 = x[..., : D // 2], x[..., D // 2:]
        return torch.cat([x0 * c - x1 * s, x0 * s + x1 * c], -1)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def forward(p, cfg, tokens):
    B, T = tokens.shape
    C, H, Hkv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    D = C // H
    x = p["token_embd.weight"][tokens]
    mask = torch.full((T, T), float("-inf")).triu(1)
    qwen2 = cfg.get("arch", "llama") == "qwen2"
    lora = cfg.get("lora")
    for l in range(cfg["n_layers"]):
        g = lambda s: p[f"blk.{l}.{s}"]

        def mat(n, w):  # n W^T (+ the adapter)
            y = n @ g(w + ".weight").T
            if lora:
                y = y + lora["alpha"] / lora["rank"] * (n @ g(w + ".weight.lora_a").T) @ g(w + ".weight.lora_b").T
            return y

        proj = lambda n, w: mat(n, w) + (g(w + ".bias") if qwen2 else 0)
        n1 = rmsnorm(x, g("attn_norm.weight"), cfg["rms_eps"])
        q = rope(proj(n1, "attn_q").view(B, T, H, D), cfg["rope_base"], qwen2)
        k = rope(proj(n1, "attn_k").view(B, T, Hkv, D), cfg["rope_base"], qwen2)
        v = proj(n1, "attn_v").view(B, T, Hkv, D)
        rep = H // Hkv
        k = k.repeat_interleave(rep, dim=2)
        v = v.repeat_interleave(rep, dim=2)
        att = (q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2)) / math.sqrt(D) + mask
        o = (torch.softmax(att, -1) @ v.transpose(1, 2)).transpose(1, 2).reshape(B, T, C)
        x = x + mat(o, "attn_output")
        n2 = rmsnorm(x, g("ffn_norm.weight"), cfg["rms_eps"])
        hdn = torch.nn.functional.silu(mat(n2, "ffn_gate")) * mat(n2, "ffn_up")
        x = x + mat(hdn, "ffn_down")
    xf = rmsnorm(x, p["output_norm.weight"], cfg["rms_eps"])
    w_out = p["token_embd.weight"] if cfg["tied"] else p["output.weight"]
    return xf @ w_out.T


def loss_of(logits, targets):
    logp = torch.log_softmax(logits, -1)
    valid = targets >= 0
    picked = logp.gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    return -(picked * valid).sum() / valid.sum()


def make(name, cfg, B, T, seed):
    g = torch.Generator().manual_seed(seed)
    C, F, V, H, Hkv = cfg["dim"], cfg["ffn"], cfg["vocab"], cfg["n_heads"], cfg["n_kv_heads"]
    D = C // H
    shapes = [("token_embd.weight", (V, C))]
    for l in range(cfg["n_layers"]):
        shapes += [(f"blk.{l}.attn_norm.weight", (C,)), (f"blk.{l}.attn_q.weight", (H * D, C)),
                   (f"blk.{l}.attn_k.weight", (Hkv * D, C)), (f"blk.{l}.attn_v.weight", (Hkv * D, C))]
        if cfg.get("arch", "llama") == "qwen2":
            shapes += [(f"blk.{l}.attn_q.bias", (H * D,)), (f"blk.{l}.attn_k.bias", (Hkv * D,)),
                       (f"blk.{l}.attn_v.bias", (Hkv * D,))]
        shapes += [(f"blk.{l}.attn_output.weight", (C, H * D)), (f"blk.{l}.ffn_norm.weight", (C,)),
                   (f"blk.{l}.ffn_gate.weight", (F, C)), (f"blk.{l}.ffn_up.weight", (F, C)),
                   (f"blk.{l}.ffn_down.weight", (C, F))]
    shapes.append(("output_norm.weight", (C,)))
    if not cfg["tied"]:
        shapes.append(("output.weight", (V, C)))
    lora = cfg.get("lora")
    base_names = [n for n, _ in shapes]
    if lora:
        r = lora["rank"]
        for l in range(cfg["n_layers"]):
            for w, (inp, outp) in [("attn_q", (C, H * D)), ("attn_k", (C, Hkv * D)), ("attn_v", (C, Hkv * D)),
                                   ("attn_output", (H * D, C)), ("ffn_gate", (C, F)), ("ffn_up", (C, F)),
                                   ("ffn_down", (F, C))]:
                shapes += [(f"blk.{l}.{w}.weight.lora_a", (r, inp)), (f"blk.{l}.{w}.weight.lora_b", (outp, r))]
    params = {}
    for n, s in shapes:
        if n.endswith(".bias"):
            t = 0.3 * torch.randn(s, generator=g)
        elif len(s) == 1:
            t = 1.0 + 0.1 * torch.randn(s, generator=g)
        else:
            t = 0.3 * torch.randn(s, generator=g)
        params[n] = t.float().double().requires_grad_(not lora or ".lora_" in n)  # exact in f32
    tokens = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    targets[0, T - 2:] = -1  # padding: no target
    targets[B - 1, T - 1] = -1

    logits = forward(params, cfg, tokens)
    loss = loss_of(logits, targets)
    loss.backward()
    out = {
        "generator": "tools/torch_reference.py (PyTorch %s, float64)" % torch.__version__,
        "config": cfg, "B": B, "T": T,
        "tokens": tokens.flatten().tolist(), "targets": targets.flatten().tolist(),
        "params": {n: params[n].detach().flatten().tolist() for n, _ in shapes},
        "shapes": {n: list(s) for n, s in shapes},
        "logits": logits.detach().flatten().tolist(),
        "loss": loss.item(),
        "grads": {n: params[n].grad.flatten().tolist() for n, _ in shapes if params[n].grad is not None},
    }
    if lora:  # the frozen base and the adapters' gradients; no AdamW run
        path = os.path.join(os.path.dirname(__file__), "..", "tests", "golden", f"train_{name}.json")
        with open(path, "w") as f:
            json.dump(out, f)
        print(f"wrote {path}: loss {out['loss']:.6f}")
        return
    # AdamW (decoupled weight decay on matrices only), global-norm clipping, 6 steps on the batch.
    adam = {"lr": 3e-3, "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "max_grad_norm": 0.5}
    for t in params.values():
        t.grad = None
    decay = [params[n] for n, s in shapes if len(s) == 2]
    no_decay = [params[n] for n, s in shapes if len(s) == 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": adam["weight_decay"]},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=adam["lr"], betas=(adam["beta1"], adam["beta2"]), eps=adam["eps"])
    losses, norms = [], []
    for _ in range(6):
        opt.zero_grad()
        l = loss_of(forward(params, cfg, tokens), targets)
        l.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(list(params.values()), adam["max_grad_norm"]).item())
        opt.step()
        losses.append(l.item())
    adam["losses"] = losses
    adam["grad_norms"] = norms
    adam["final_loss"] = loss_of(forward(params, cfg, tokens), targets).item()
    out["adamw"] = adam
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "golden", f"train_{name}.json")
    with open(path, "w") as f:
        json.dump(out, f)
    print(f"wrote {path}: loss {out['loss']:.6f}, AdamW losses {['%.5f' % x for x in losses]}")


if __name__ == "__main__":
    base = {"vocab": 19, "dim": 16, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "ffn": 40,
            "rope_base": 10000.0, "rms_eps": 1e-5}
    make("untied", dict(base, tied=False), B=3, T=8, seed=1234)
    make("tied", dict(base, tied=True), B=2, T=9, seed=99)
    # The R1-Distill-Qwen shape: qwen2 (biases, NeoX RoPE), tied output, 2 query heads per KV head.
    make("qwen2", dict(base, tied=True, arch="qwen2", rope_base=1e6, rms_eps=1e-6), B=2, T=9, seed=99)
    # LoRA on every block matrix of the qwen2 model (rank 2, alpha 3), B non-zero.
    make("qwen2_lora", dict(base, tied=True, arch="qwen2", rope_base=1e6, rms_eps=1e-6, lora={"rank": 2, "alpha": 3.0}),
         B=2, T=9, seed=5)
