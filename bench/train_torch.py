#!/usr/bin/python3
"""The training step of `ponder bench --train`, in PyTorch: the same model, batch and optimizer.

Models: ponder's small family (the `5m` preset by default: Llama, dim 256, 6 layers, 8 heads,
4 KV heads, FFN 768, vocab 262, ponder's character vocabulary, tied embeddings, adjacent-pair
RoPE), or with --preset qwen2-0.5b the Qwen2-0.5B shape as `ponder init --preset qwen2-0.5b`
writes it (dim 896, 24 layers, 14 heads, 2 KV heads, FFN 4864, vocab 151936, Q/K/V biases, NeoX
RoPE with base 1e6, tied embeddings); float32.
Step: forward, mean cross-entropy on next-token targets, backward, clip_grad_norm_(1.0), AdamW.
--lora-rank R: PEFT-style LoRA (alpha 2R) on q, k, v, o, gate, up, down of every block, the base
frozen (no gradient, no optimizer state), as `ponder bench --train --lora-rank R`.
Random tokens, one warm-up step, then the median of the timed steps.

Run side by side with ponder on the same threads:
  OMP_NUM_THREADS=2 /usr/bin/python3 bench/train_torch.py --threads 2
  build/ponder bench --train --preset 5m --batch 16 --ctx 256 -t 2 -r 5
  /usr/bin/python3 bench/train_torch.py --preset qwen2-0.5b --batch 4 --ctx 128 [--lora-rank 16]
  build/ponder init --preset qwen2-0.5b --vocab ../shared/models/tiny-r1distill-random.gguf -o q05.gguf
  build/ponder bench --train -m q05.gguf --batch 4 --ctx 128 -t 2 -r 3 [--lora-rank 16]

OpenBLAS picks its kernels by CPU detection; on CPUs it does not know (e.g. recent Xeons) Debian's
OpenBLAS falls back to slow generic kernels. --coretype (default SkylakeX) sets OPENBLAS_CORETYPE
before torch loads, which is PyTorch's best case on an AVX-512 machine; --coretype "" keeps the
library's own choice.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

PRESETS = {
    "tiny": dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn=192),
    "small": dict(dim=128, n_layers=4, n_heads=4, n_kv_heads=2, ffn=384),
    "5m": dict(dim=256, n_layers=6, n_heads=8, n_kv_heads=4, ffn=768),
    "qwen2-0.5b": dict(dim=896, n_layers=24, n_heads=14, n_kv_heads=2, ffn=4864, vocab=151936, qkv_bias=True,
                       neox=True, rope_base=1e6, rms_eps=1e-6),
}


def blas_of(torch):
    """The BLAS library torch's matrix products run on: Debian's python3-torch links libblas.so.3,
    which is the reference BLAS unless an OpenBLAS is installed (libopenblas0-openmp), so read the
    libraries mapped into this process after a product."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    libs = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "blas" in os.path.basename(path).lower():
                libs.add(os.path.realpath(path))
    return ", ".join(sorted(libs)) or "none found (torch's own kernels)"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="5m", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=0, help="vocabulary (default: the preset's, 262 for ponder's)")
    ap.add_argument("--lora-rank", type=int, default=0)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--coretype", default="SkylakeX")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.coretype:
        os.environ["OPENBLAS_CORETYPE"] = a.coretype
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    import torch  # after the environment is set: OpenBLAS reads it when it loads
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = PRESETS[a.preset]
    C, L, H, Hkv, FF, T, B = cfg["dim"], cfg["n_layers"], cfg["n_heads"], cfg["n_kv_heads"], cfg["ffn"], a.ctx, a.batch
    V = a.vocab or cfg.get("vocab", 262)
    D = C // H
    bias, neox, eps, R = cfg.get("qkv_bias", False), cfg.get("neox", False), cfg.get("rms_eps", 1e-5), a.lora_rank

    class RMSNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(C))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * self.weight

    inv = cfg.get("rope_base", 10000.0) ** (-torch.arange(0, D, 2, dtype=torch.float32) / D)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]

    def rope(x):  # (B, T, heads, D): NeoX halves (qwen2) or adjacent pairs (GGUF's llama layout)
        if neox:
            x0, x1 = x[..., : D // 2], x[..., D // 2:]
            return torch.cat((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).flatten(-2)

    class Lora(torch.nn.Module):
        """x A^T B^T (alpha / r) for each of the outputs `outs` of one input (PEFT's init: B = 0)."""

        def __init__(self, n_in, outs):
            super().__init__()
            self.a = torch.nn.ParameterList(torch.nn.Parameter(torch.randn(R, n_in) / math.sqrt(n_in)) for _ in outs)
            self.b = torch.nn.ParameterList(torch.nn.Parameter(torch.zeros(o, R)) for o in outs)

        def forward(self, x):
            return torch.cat([(x @ a.T) @ (b.T * 2.0) for a, b in zip(self.a, self.b)], -1)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.n1, self.n2 = RMSNorm(), RMSNorm()
            self.wqkv = torch.nn.Linear(C, (H + 2 * Hkv) * D, bias=bias)
            self.wo = torch.nn.Linear(H * D, C, bias=False)
            self.w13 = torch.nn.Linear(C, 2 * FF, bias=False)
            self.w2 = torch.nn.Linear(FF, C, bias=False)
            if R:
                self.l_qkv, self.l_o = Lora(C, [H * D, Hkv * D, Hkv * D]), Lora(H * D, [C])
                self.l_13, self.l_2 = Lora(C, [FF, FF]), Lora(FF, [C])

        def lin(self, w, lora, x):
            return w(x) + lora(x) if R else w(x)

        def forward(self, x, mask):
            # Heads that share a KV head are stacked along the rows (no copies of K and V), and Q is
            # scaled before the product (not the B x H x T x T scores).
            q, k, v = self.lin(self.wqkv, R and self.l_qkv, self.n1(x)).split([H * D, Hkv * D, Hkv * D], -1)
            q = (rope(q.view(B, T, H, D)) * (1.0 / math.sqrt(D))).view(B, T, Hkv, H // Hkv, D)
            q = q.permute(0, 2, 3, 1, 4).reshape(B, Hkv, (H // Hkv) * T, D)
            k = rope(k.view(B, T, Hkv, D)).transpose(1, 2)
            v = v.view(B, T, Hkv, D).transpose(1, 2)
            att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) + mask, -1)
            o = torch.matmul(att, v).view(B, Hkv, H // Hkv, T, D).permute(0, 3, 1, 2, 4).reshape(B, T, C)
            x = x + self.lin(self.wo, R and self.l_o, o)
            g, u = self.lin(self.w13, R and self.l_13, self.n2(x)).chunk(2, -1)
            return x + self.lin(self.w2, R and self.l_2, F.silu(g) * u)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embd = torch.nn.Embedding(V, C)
            self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
            self.norm = RMSNorm()
            for n, p in self.named_parameters():
                if p.dim() == 2 and ".l_" not in n:
                    torch.nn.init.normal_(p, std=0.02)
                if R and ".l_" not in n:
                    p.requires_grad_(False)  # LoRA: the base is frozen

        def forward(self, tokens):
            mask = torch.full((T, T), float("-inf")).triu(1).repeat(H // Hkv, 1)  # rows: (head in group, t)
            x = self.embd(tokens)
            for blk in self.blocks:
                x = blk(x, mask)
            return self.norm(x) @ self.embd.weight.T  # tied LM head

    model = Model()
    n_params = sum(p.numel() for p in model.parameters())
    trained = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in trained if p.dim() == 2]
    no_decay = [p for p in trained if p.dim() == 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    tokens = torch.randint(0, V, (B, T))
    targets = torch.cat([tokens[:, 1:], torch.full((B, 1), -1)], 1)

    times, losses = [], []
    for s in range(a.steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(tokens).view(-1, V), targets.view(-1), ignore_index=-1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if s > 0:
            times.append(dt)
    step = statistics.median(times)
    out = {"framework": "pytorch " + torch.__version__, "blas": blas_of(torch), "preset": a.preset, "params": n_params,
           "trained_params": sum(p.numel() for p in trained), "lora_rank": R,
           "threads": torch.get_num_threads(), "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
           "batch": B, "ctx": T, "steps": a.steps, "step_ms": step * 1e3, "tok_s": B * T / step,
           "first_loss": losses[0], "last_loss": losses[-1]}
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"pytorch {torch.__version__} on {out['blas']}: preset {a.preset} ({n_params} parameters, "
              f"{out['trained_params']} trained), batch {B} x {T}, {out['threads']} threads, "
              f"OPENBLAS_CORETYPE={out['openblas_coretype'] or '(unset)'}")
        print(f"  step {step * 1e3:.1f} ms, {B * T / step:.0f} tokens/s, loss {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    sys.exit(main())
