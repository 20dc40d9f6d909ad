"""Universal-neurons benchmark (run by `make bench`, never by `make test`).

The blocked streaming correlation of every MLP neuron of one model with every MLP neuron of
another (two seeds of the demo model; two GPT-2-small-shaped models, 12 x 3072 neurons each,
random weights, within a 4 GB process), in a fresh process each: wall time, peak RSS, and the
rate of its float64 products (2 n_A n_B tokens / time) against this machine's measured rate of
a plain matrix product of the same shape in float64 and in float32, measured in the same run.
"""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.results import write_section

RUNS = int(os.environ.get("NWH_BENCH_RUNS", "3"))

CORRELATE = r"""
import json, sys, time
from tests.benchmarks.results import peak_rss_mib
import torch
from extract.activations import load_bridge, paired_activations
from extract.checkpoints import find_checkpoints
from extract.corpus import sentences, synthetic_corpus
from models.universal_neurons import best_correlations, cached, rows_per_block

a, b, n_sentences, budget_mb = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
bridge_a = load_bridge(find_checkpoints(a)[-1][1])
bridge_b = load_bridge(find_checkpoints(b)[-1][1])
n = bridge_a.cfg.n_layers * bridge_a.cfg.d_mlp
text = sentences(synthetic_corpus(n_sentences, seed=3), "train")
budget = budget_mb * 2**20
batches = cached(paired_activations(bridge_a, bridge_b, text, "mlp", batch_size=64), budget, 2048)
tokens = sum(x.shape[0] for x, _ in batches())  # this first pass fills the cache
rows = rows_per_block(n, budget)
start = time.perf_counter()
best = best_correlations(batches, n, n, budget)
seconds = time.perf_counter() - start
rates = {}
chunk = min(2048, tokens)
for dtype in (torch.float64, torch.float32):  # the same product shape: (rows x chunk) @ (chunk x n)
    x, y = torch.randn(chunk, min(rows, n), dtype=dtype), torch.randn(chunk, n, dtype=dtype)
    out = torch.zeros(min(rows, n), n, dtype=dtype)
    samples = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(3):
            out.addmm_(x.T, y)
        samples.append(3 * 2 * chunk * min(rows, n) * n / (time.perf_counter() - t))
    rates[str(dtype)] = sorted(samples)[2]
print(json.dumps({"seconds": seconds, "tokens": tokens, "neurons": n, "passes": best.passes,
                  "flops": 2 * n * n * tokens / seconds, "f64": rates["torch.float64"],
                  "f32": rates["torch.float32"],
                  "peak_mib": peak_rss_mib()}))
"""


def _gpt2_small_shaped(tokenizer_from: Path, out: Path, seed: int,
                       vocab_size: int | None = None) -> Path:
    """A randomly initialised GPT-2 with GPT-2 small's layer shapes and the tokenizer of
    `tokenizer_from`; `vocab_size` (default: the tokenizer's) sizes the embedding and unembedding."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(tokenizer_from)
    torch.manual_seed(seed)
    GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size or len(tok), n_positions=64, n_embd=768,
                               n_layer=12,
                               n_head=12, n_inner=3072, bos_token_id=tok.bos_token_id,
                               eos_token_id=tok.eos_token_id)).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _measure(a: Path, b: Path, n_sentences: int, budget_mb: int, runs: int) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    samples = [json.loads(subprocess.run(
        [sys.executable, "-c", CORRELATE, str(a), str(b), str(n_sentences), str(budget_mb)],
        check=True, env=env, capture_output=True, text=True).stdout.strip().splitlines()[-1])
        for _ in range(runs)]
    out = {k: statistics.median(s[k] for s in samples)
           for k in ("seconds", "flops", "f64", "f32", "peak_mib")}
    return {**out, **{k: samples[0][k] for k in ("tokens", "neurons", "passes")}, "runs": runs}


def test_correlation_throughput_and_memory(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    nwh = str(Path(sys.executable).parent / "nwh")
    subprocess.run([nwh, "--home", str(tmp_path / "home"), "train", "--seeds", "0,1",
                    "--out", str(tmp_path / "demo")], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    seed0, seed1 = tmp_path / "demo-seed0", tmp_path / "demo-seed1"
    tok = find_newest(seed0)
    big_a = _gpt2_small_shaped(tok, tmp_path / "big-a" / "checkpoint-1", 0).parent
    big_b = _gpt2_small_shaped(tok, tmp_path / "big-b" / "checkpoint-1", 1).parent
    lines = ["| pair | neurons each | tokens | budget | passes | time (median) | float64 products | "
             "plain float64 / float32 product | share of float64 rate | peak RSS | runs |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    results = {}
    for name, a, b, sentences, budget, runs in (
            ("demo seed 0 vs seed 1", seed0, seed1, 2000, 1024, RUNS),
            ("GPT-2-small-shaped pair", big_a, big_b, 150, 1280, 1)):
        r = results[name] = _measure(a, b, sentences, budget, runs)
        lines.append(f"| {name} | {r['neurons']:,} | {r['tokens']:,} | {budget} MiB | "
                     f"{r['passes']} | {r['seconds']:.1f} s | {r['flops'] / 1e9:.1f} GFLOP/s | "
                     f"{r['f64'] / 1e9:.1f} / {r['f32'] / 1e9:.1f} GFLOP/s | "
                     f"{r['flops'] / r['f64']:.0%} | {r['peak_mib']:,.0f} MiB | {r['runs']} |")
    body = ("Blocked streaming Pearson correlation of every MLP neuron pair of two models "
            "(`models.universal_neurons.best_correlations`, float64 sums; the activations of both "
            "models cached in memory when they fit in the budget, served in chunks of 2,048 "
            "tokens), in a fresh process; the plain product rate is `addmm_` of the same shape "
            "(block rows x 2,048 tokens @ 2,048 x neurons), median of 5, "
            "measured in the same process. Goal: at least half the matrix-product rate; the "
            "GPT-2-small-shaped pair within 4 GB.\n\n" + "\n".join(lines))
    print(write_section("Universal neurons (tests/benchmarks/test_bench_universality.py)", body))
    assert results["GPT-2-small-shaped pair"]["peak_mib"] < 4096


def find_newest(folder: Path) -> Path:
    return sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
