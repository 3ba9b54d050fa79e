#!/usr/bin/python3
"""The training step of `ponder bench --train`, in PyTorch: the same model, batch and optimizer.

Model (ponder's small family, the `5m` preset by default): Llama, dim 256, 6 layers, 8 heads,
4 KV heads, FFN 768, vocab 262 (ponder's character vocabulary), tied embeddings, float32.
Step: forward, mean cross-entropy on next-token targets, backward, clip_grad_norm_(1.0), AdamW.
Random tokens, one warm-up step, then the median of the timed steps.

Run side by side with ponder on the same threads:
  OMP_NUM_THREADS=2 /usr/bin/python3 bench/train_torch.py --threads 2
  build/ponder bench --train --preset 5m --batch 16 --ctx 256 -t 2 -r 5

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
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="5m", choices=sorted(PRESETS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--vocab", type=int, default=262)
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
    C, L, H, Hkv, FF, V, T, B = (cfg["dim"], cfg["n_layers"], cfg["n_heads"], cfg["n_kv_heads"], cfg["ffn"],
                                 a.vocab, a.ctx, a.batch)
    D = C // H

    class RMSNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(C))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight

    inv = 10000.0 ** (-torch.arange(0, D, 2, dtype=torch.float32) / D)
    ang = torch.arange(T, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]

    def rope(x):  # (B, T, heads, D), adjacent pairs as GGUF's llama layout
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).flatten(-2)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.n1, self.n2 = RMSNorm(), RMSNorm()
            self.wqkv = torch.nn.Linear(C, (H + 2 * Hkv) * D, bias=False)
            self.wo = torch.nn.Linear(H * D, C, bias=False)
            self.w13 = torch.nn.Linear(C, 2 * FF, bias=False)
            self.w2 = torch.nn.Linear(FF, C, bias=False)

        def forward(self, x, mask):
            # Heads that share a KV head are stacked along the rows (no copies of K and V), and Q is
            # scaled before the product (not the B x H x T x T scores).
            q, k, v = self.wqkv(self.n1(x)).split([H * D, Hkv * D, Hkv * D], -1)
            q = (rope(q.view(B, T, H, D)) * (1.0 / math.sqrt(D))).view(B, T, Hkv, H // Hkv, D)
            q = q.permute(0, 2, 3, 1, 4).reshape(B, Hkv, (H // Hkv) * T, D)
            k = rope(k.view(B, T, Hkv, D)).transpose(1, 2)
            v = v.view(B, T, Hkv, D).transpose(1, 2)
            att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) + mask, -1)
            o = torch.matmul(att, v).view(B, Hkv, H // Hkv, T, D).permute(0, 3, 1, 2, 4).reshape(B, T, C)
            x = x + self.wo(o)
            g, u = self.w13(self.n2(x)).chunk(2, -1)
            return x + self.w2(F.silu(g) * u)

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embd = torch.nn.Embedding(V, C)
            self.blocks = torch.nn.ModuleList(Block() for _ in range(L))
            self.norm = RMSNorm()
            for p in self.parameters():
                if p.dim() == 2:
                    torch.nn.init.normal_(p, std=0.02)

        def forward(self, tokens):
            mask = torch.full((T, T), float("-inf")).triu(1).repeat(H // Hkv, 1)  # rows: (head in group, t)
            x = self.embd(tokens)
            for blk in self.blocks:
                x = blk(x, mask)
            return self.norm(x) @ self.embd.weight.T  # tied LM head

    model = Model()
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for p in model.parameters() if p.dim() == 2]
    no_decay = [p for p in model.parameters() if p.dim() == 1]
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
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if s > 0:
            times.append(dt)
    step = statistics.median(times)
    out = {"framework": "pytorch " + torch.__version__, "preset": a.preset, "params": n_params,
           "threads": torch.get_num_threads(), "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
           "batch": B, "ctx": T, "steps": a.steps, "step_ms": step * 1e3, "tok_s": B * T / step,
           "first_loss": losses[0], "last_loss": losses[-1]}
    if a.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"pytorch {torch.__version__}: preset {a.preset} ({n_params} parameters), batch {B} x {T}, "
              f"{out['threads']} threads, OPENBLAS_CORETYPE={out['openblas_coretype'] or '(unset)'}")
        print(f"  step {step * 1e3:.1f} ms, {B * T / step:.0f} tokens/s, loss {losses[0]:.4f} -> {losses[-1]:.4f}")


if __name__ == "__main__":
    sys.exit(main())
