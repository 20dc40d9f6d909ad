"""Probing benchmarks (run by `make bench`, never by `make test`): the LCA grid search (Alg. 2,
7 x 7 lambdas, paper settings) time and peak memory.

* Demo model: features of the demo GPT-2 (4 layers x 512 = 2,048 neurons) on the 1,000 sentences
  the demo study probes, POS task; median of several fresh processes.
* GPT-2-small shape: 36,864 features (12 x 3,072 MLP neurons) x 100,000 tokens, stored in
  float16 (7.4 GB; float32 would be 14.7 GB), 12 labels, the paper's 10 epochs (one process);
  and the same at the width of its layer outputs (13 x 768). The training rate of the 49 probes
  over one epoch on every feature is compared with the machine's plain matrix-product rate at
  the grid's shape, measured in the same process.
Each process reports its peak RSS (VmHWM) before and after the grid search.
"""

import os
import statistics
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.results import write_section

NWH = str(Path(sys.executable).parent / "nwh")
RUNS = int(os.environ.get("NWH_BENCH_RUNS", "3"))
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}

DEMO = """
import sys, time
from tests.benchmarks.results import peak_rss_mib
import torch
from extract.activations import load_bridge
from extract.checkpoints import find_checkpoints
from extract.corpus import synthetic_corpus
from extract.probe_data import labelled_words, word_features
from models.salient_neurons import ProbeData, grid_search
rss = peak_rss_mib
bridge = load_bridge(find_checkpoints(sys.argv[1])[-1][1])
labels = labelled_words(synthetic_corpus(4000, seed=0), ["pos"], 0, 0.1,
                        test_fraction=0.1, max_sentences=1000)
keys, x = word_features(bridge, labels.select("sentence_id", "word_index", "word"))
rows = keys.join(labels.with_row_index("i"), on=["sentence_id", "word_index"]).sort("i")
names = sorted(set(rows["label"]))
y = torch.tensor([names.index(v) for v in rows["label"]])
split = rows["split"].to_list()
part = {s: torch.tensor([i for i, v in enumerate(split) if v == s]) for s in ("train", "dev", "test")}
data = ProbeData(x[part["train"]], y[part["train"]], x[part["dev"]], y[part["dev"]],
                 x[part["test"]], y[part["test"]], len(names))
before = rss()
start = time.perf_counter()
grid_search(data)
print(time.perf_counter() - start, before, rss(), len(part["train"]), x.shape[1])
"""

SHAPED = """
import statistics, sys, time
from tests.benchmarks.results import peak_rss_mib
import torch
from models.salient_neurons import (PAPER_LAMBDAS, ProbeData, TrainSettings, grid_search,
                                    train_probes)
rss = peak_rss_mib
d, with_rate = int(sys.argv[1]), sys.argv[2] == "rate"
n, t, g = 100_000, 12, 49
torch.manual_seed(0)
y = torch.randint(0, t, (n,))
x = torch.empty((n, d), dtype=torch.float16)
for s in range(0, n, 5_000):
    x[s:s + 5_000] = torch.randn(min(5_000, n - s), d).half()
for label in range(t):  # two planted neurons per label
    x[:, 2 * label] += 3.0 * (y == label).half()
    x[:, 2 * label + 1] += 3.0 * (y == label).half()
a, b = 80_000, 90_000
data = ProbeData(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], t)
plain = training = 0.0
if with_rate:
    flat, batch, rates = torch.randn(d, g * t), x[:512].float(), []
    for _ in range(5):
        start = time.perf_counter()
        batch @ flat
        rates.append(2 * 512 * d * g * t / (time.perf_counter() - start) / 1e9)
    plain = statistics.median(rates)
    # one epoch of the 49 probes on every feature: per mini-batch one forward and one
    # weight-gradient product of 2 * 512 * d * g * t flops each
    pairs = [(l1, l2) for l1 in PAPER_LAMBDAS for l2 in PAPER_LAMBDAS]
    start = time.perf_counter()
    train_probes(data.x_train, data.y_train, t, [p[0] for p in pairs],
                 lambda2=[p[1] for p in pairs], settings=TrainSettings(epochs=1))
    training = 2 * 2 * a * d * g * t / (time.perf_counter() - start) / 1e9
before = rss()
start = time.perf_counter()
grid_search(data)  # the paper's settings: 10 epochs
print(time.perf_counter() - start, before, rss(), plain, training)
"""


def _run(script: str, *args: str) -> list[float]:
    out = subprocess.run([sys.executable, "-c", script, *args], check=True, env=ENV,
                         capture_output=True, text=True)
    return [float(v) for v in out.stdout.split()[-5:]]


def test_grid_search_time_and_memory(tmp_path):
    home = tmp_path / "home"
    subprocess.run([NWH, "--home", str(home), "train"], check=True, env=ENV,
                   stdout=subprocess.DEVNULL)
    demo = [_run(DEMO, str(home / "checkpoints" / "demo")) for _ in range(RUNS)]
    seconds = statistics.median(r[0] for r in demo)
    rss_before = statistics.median(r[1] for r in demo)
    rss_after = statistics.median(r[2] for r in demo)
    n_train, n_features = int(demo[0][3]), int(demo[0][4])
    big = _run(SHAPED, "36864", "rate")
    layer_outputs = _run(SHAPED, str(13 * 768), "no rate")
    text = write_section(
        "Probing (tests/benchmarks/test_bench_probing.py)",
        "LCA grid search (Alg. 2): 49 (lambda1, lambda2) cells, each trained on all neurons and "
        "retrained on its top and bottom 20 %, Adam, batches of 512.\n\n"
        "| figure | value | comparison |\n|---|---|---|\n"
        f"| demo model, POS, {n_features:,} neurons x {n_train:,} train words, 10 epochs: "
        f"grid-search time (median of {RUNS}) | {seconds:.0f} s | |\n"
        f"| demo model: peak RSS after the grid search (median of {RUNS}) | {rss_after:,.0f} MiB | "
        f"{rss_before:,.0f} MiB before it (model + features) |\n"
        f"| GPT-2-small shape, MLP: 36,864 neurons x 80,000 train tokens (float16), 10 epochs: "
        f"grid-search time (1 run) | {big[0] / 60:.1f} min | goal (issue 19) <= 20 min |\n"
        f"| GPT-2-small shape, MLP: peak RSS after the grid search | {big[2] / 1024:,.1f} GiB | "
        f"{big[1] / 1024:,.1f} GiB before it (the features) |\n"
        f"| GPT-2-small shape, layer outputs: 13 x 768 = 9,984 features x 80,000 train tokens, "
        f"10 epochs: grid-search time (1 run) | {layer_outputs[0] / 60:.1f} min | "
        f"goal (issue 19) <= 5 min |\n"
        f"| GPT-2-small shape, MLP: training rate of the 49 probes on every feature (1 epoch; "
        f"forward and weight-gradient products) | {big[4]:.0f} GFLOP/s = "
        f"{100 * big[4] / big[3]:.0f} % | plain matrix product at the grid's shape: "
        f"{big[3]:.0f} GFLOP/s (median of 5); goal (issue 19) >= 60 % |\n")
    print(text)
    assert rss_after < 4096 and big[2] < 20 * 1024
