#!/usr/bin/env python3
"""Load generator for `ponder serve` (or any OpenAI-compatible server, llama-server included).

For each concurrency level C, C clients each send streamed /v1/completions requests back to back
(greedy, a fixed mix of prompt lengths, max_tokens new tokens) until R requests have finished; it
reports requests/s, generated tokens/s (all clients), time to first token and inter-token latency
(p50/p99), the throughput ratio to one client, and (from ponder's /metrics) the server's mean
forward step, to set beside the engine's own (`ponder bench --paths 1,8`). Then the loaded
time-to-first-token check: a short request's TTFT while 8 long streams run, against its TTFT on
an idle server.

Usage:
  build/ponder serve -m MODEL.gguf --port 8080 &
  bench/serve_load.py --url http://127.0.0.1:8080 [--concurrency 1,8,32] [--requests 32]
                      [--max-tokens 64] [--rounds N] [--json OUT]
A 0.5B-shaped Q8_0 model to run it on:
  build/ponder init --preset qwen2-0.5b --dtype q8_0 --vocab ../shared/models/vocab/ggml-vocab-qwen2.gguf -o /tmp/q05-q8_0.gguf
Only the Python standard library is used.
"""
import argparse
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxing matches "
         "and every reasoning model thinks before it answers").split()


def prompt_of(i, n_words):
    return f"Request {i}: " + " ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(n_words))


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100 * (len(xs) - 1)))))
    return xs[k]


def stream_request(url, prompt, max_tokens, seed):
    """One streamed completion: (seconds to the first token, gaps between tokens, tokens, seconds)."""
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True, "seed": seed,
            "ignore_eos": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    conn.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
    res = conn.getresponse()
    if res.status != 200:
        raise RuntimeError(f"HTTP {res.status}: {res.read()[:300]!r}")
    first, last, gaps, chunks, usage_tokens = None, None, [], 0, None
    buf = b""
    while True:
        data = res.read1(65536)
        if not data:
            break
        buf += data
        while b"\n\n" in buf:
            event, buf = buf.split(b"\n\n", 1)
            line = event.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage_tokens = chunk["usage"].get("completion_tokens")
            if any(c.get("text") for c in chunk.get("choices", [])):
                now = time.perf_counter()
                if first is None:
                    first = now - t0
                else:
                    gaps.append(now - last)
                last = now
                chunks += 1
    conn.close()
    return first, gaps, usage_tokens if usage_tokens is not None else chunks, time.perf_counter() - t0


def server_steps(url):
    """(steps, seconds in forward steps) from ponder's /metrics, or None from another server."""
    try:
        u = urllib.parse.urlparse(url)
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
        m = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
        return float(m["ponder_steps_total"]), float(m["ponder_step_seconds_total"])
    except (OSError, KeyError, ValueError):
        return None


def run_level(url, clients, total, max_tokens, round_index=0):
    # Prompts differ between levels and rounds too, so no server answers from a cache of an earlier one.
    lock = threading.Lock()
    ttft, itl, tokens, errors = [], [], [0], []
    next_id = [0]

    def client():
        while True:
            with lock:
                i = next_id[0]
                if i >= total:
                    return
                next_id[0] += 1
            try:
                first, gaps, n, _ = stream_request(url, prompt_of(100000 * round_index + 1000 * clients + i, 8 + (i % 4) * 24), max_tokens, i)
            except Exception as e:  # noqa: BLE001 (reported below)
                with lock:
                    errors.append(str(e))
                continue
            with lock:
                if first is not None:
                    ttft.append(first)
                itl.extend(gaps)
                tokens[0] += n

    before = server_steps(url)
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    after = server_steps(url)
    # The server's mean forward step (ponder only): compare it with `ponder bench --paths 1,8`,
    # which times the engine's step alone.
    step_ms = (1e3 * (after[1] - before[1]) / (after[0] - before[0])
               if before and after and after[0] > before[0] else float("nan"))
    return {"clients": clients, "step_ms": step_ms, "requests": total, "errors": len(errors), "seconds": wall,
            "requests_per_s": total / wall, "gen_tok_s": tokens[0] / wall,
            "ttft_p50_ms": 1e3 * percentile(ttft, 50), "ttft_p99_ms": 1e3 * percentile(ttft, 99),
            "itl_p50_ms": 1e3 * percentile(itl, 50), "itl_p99_ms": 1e3 * percentile(itl, 99)}


def loaded_ttft(url, long_tokens, probes):
    """TTFT of a short request alone, then while 8 long streams run."""
    idle = [stream_request(url, prompt_of(1000 + k, 8), 4, k)[0] for k in range(probes)]
    stop = threading.Event()
    running = []

    def long_stream(i):
        while not stop.is_set():
            stream_request(url, prompt_of(2000 + i, 32), long_tokens, i)

    for i in range(8):
        t = threading.Thread(target=long_stream, args=(i,), daemon=True)
        t.start()
        running.append(t)
    time.sleep(2.0)  # the long streams are decoding
    loaded = []
    for k in range(probes):
        loaded.append(stream_request(url, prompt_of(3000 + k, 8), 4, k)[0])
        time.sleep(0.2)
    stop.set()
    for t in running:
        t.join()
    return {"ttft_idle_ms": 1e3 * statistics.median(idle), "ttft_loaded_ms": 1e3 * statistics.median(loaded),
            "ratio": statistics.median(loaded) / statistics.median(idle)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--requests", type=int, default=32, help="requests per level (at least the concurrency)")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--long-tokens", type=int, default=256, help="tokens of the long streams in the TTFT check")
    ap.add_argument("--probes", type=int, default=5, help="short requests timed for the TTFT check")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the levels this many times in alternation; each round's ratios are to its own first "
                         "level (the machine's memory bandwidth drifts from minute to minute)")
    ap.add_argument("--no-ttft-check", action="store_true")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    levels = [int(x) for x in a.concurrency.split(",")]
    stream_request(a.url, "warm up", 4, 0)
    rows = []
    print(f"{'round':>5} {'clients':>7} {'req/s':>7} {'gen tok/s':>10} {'x 1 client':>10} {'TTFT p50':>9} "
          f"{'TTFT p99':>9} {'ITL p50':>8} {'ITL p99':>8} {'errors':>6} {'step':>8}")
    for k in range(a.rounds):
        first = None
        for c in levels:
            r = run_level(a.url, c, max(a.requests, c), a.max_tokens, k)
            r["round"] = k
            r["x_one_client"] = r["gen_tok_s"] / first["gen_tok_s"] if first else 1.0
            first = first or r
            rows.append(r)
            print(f"{k:>5} {c:>7} {r['requests_per_s']:>7.2f} {r['gen_tok_s']:>10.1f} {r['x_one_client']:>10.2f} "
                  f"{r['ttft_p50_ms']:>7.0f}ms {r['ttft_p99_ms']:>7.0f}ms {r['itl_p50_ms']:>6.1f}ms "
                  f"{r['itl_p99_ms']:>6.1f}ms {r['errors']:>6} {r['step_ms']:>6.1f}ms", flush=True)
    if a.rounds > 1:
        for c in levels[1:]:
            x = [r["x_one_client"] for r in rows if r["clients"] == c]
            print(f"{c} clients over {levels[0]}, by round: {', '.join(f'{v:.2f}x' for v in x)} "
                  f"(median {statistics.median(x):.2f}x, lowest {min(x):.2f}x)")
    out = {"levels": rows}
    if not a.no_ttft_check:
        t = loaded_ttft(a.url, a.long_tokens, a.probes)
        out["ttft_under_load"] = t
        print(f"TTFT of a short request: idle {t['ttft_idle_ms']:.0f} ms, with 8 long streams running "
              f"{t['ttft_loaded_ms']:.0f} ms ({t['ratio']:.2f}x)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
