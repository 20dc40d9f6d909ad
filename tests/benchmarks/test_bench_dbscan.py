"""Exact DBSCAN in both product precisions, and how far the sampled DBSCAN is from it.

Exact DBSCAN (`dbscan_exact`: two blocked passes over the similarity matrix, the pairs near eps
decided in float64) multiplies in bfloat16 where the CPU has AVX-512 BF16 or AMX, else in
float32; both must give the same labels, and the float32 run is the baseline of the speed-up.
The sampled DBSCAN (`dbscan_fit: sampled`) fits a seeded sample of `max_fit_neurons` (20,000)
with `min_samples` scaled by the sample fraction and extends the labels to the rest
(`dbscan_labels`). This benchmark embeds 50,016 generated explanations (48 layers x 1,042, the
explanation benchmark's generator), runs all three with the paper-study defaults (eps 0.3,
min_samples 10) and reports times, cluster counts and the sampled run's agreement with the exact
one (ARI, noise counted as its own cluster). Run by `make bench`; rewrites its section of
RESULTS.md.
"""

import os
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

from extract.embeddings import DEFAULT_EMBEDDING_MODEL, embed_texts, load_embedder
from models.explanation_clusters.clustering import ClusteringSettings, dbscan_labels
from models.explanation_clusters.dbscan import dbscan_exact, product_dtype
from tests.benchmarks.results import write_section
from tests.benchmarks.test_bench_explanations import generated_explanations

N_LAYERS, N_NEURONS = 48, int(os.environ.get("NWH_BENCH_DBSCAN_NEURONS", "1042"))
RUNS = int(os.environ.get("NWH_BENCH_RUNS", "3"))


def _summary(labels: np.ndarray) -> str:
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, int)
    largest = sizes.max() / len(labels) if len(sizes) else 0.0
    return (f"{len(sizes)} clusters, largest {largest:.1%} of the neurons, "
            f"{(labels == -1).sum():,} noise")


def test_sampled_dbscan_against_exact_dbscan():
    texts = [text for _, _, text, _ in generated_explanations(N_LAYERS, N_NEURONS)]
    start = time.perf_counter()
    x = embed_texts(load_embedder(DEFAULT_EMBEDDING_MODEL), texts, 64).astype(np.float32)
    embed_s = time.perf_counter() - start
    s = ClusteringSettings()
    start = time.perf_counter()
    sampled = dbscan_labels(x, s.dbscan_eps, s.dbscan_min_samples, s.max_fit_neurons, seed=s.seed)
    sampled_s = time.perf_counter() - start
    fast = product_dtype(1 - s.dbscan_eps, x.shape[1])
    exact, times = {}, {"float32": [], fast: []}
    dbscan_exact(x[:2000], s.dbscan_eps, s.dbscan_min_samples)  # numba compiles its kernels
    for _ in range(RUNS):  # alternating, so drift of the machine hits both alike
        for dtype in times:
            start = time.perf_counter()
            exact[dtype] = dbscan_exact(x, s.dbscan_eps, s.dbscan_min_samples, dtype=dtype)
            times[dtype].append(time.perf_counter() - start)
    exact_s = {dtype: float(np.median(t)) for dtype, t in times.items()}
    assert (exact[fast] == exact["float32"]).all(), "the product precisions disagree"
    exact = exact[fast]
    ari = adjusted_rand_score(exact, sampled)
    scaled = max(2, round(s.dbscan_min_samples * s.max_fit_neurons / len(x)))
    body = (
        f"{len(x):,} generated explanations ({N_LAYERS} layers x {N_NEURONS}), embedded in "
        f"{embed_s:.0f} s; eps {s.dbscan_eps}, min_samples {s.dbscan_min_samples}; exact: median of "
        f"{RUNS} alternating runs of each precision, sampled: 1 run.\n\n"
        "| DBSCAN | result | time |\n|---|---|---|\n"
        f"| exact, float32 products (baseline) | {_summary(exact)} | {exact_s['float32']:.1f} s |\n"
        f"| exact, {fast} products (the default on this CPU) | the same labels | "
        f"{exact_s[fast]:.1f} s ({exact_s['float32'] / exact_s[fast]:.1f}x) |\n"
        f"| sampled: {s.max_fit_neurons:,} fitted with min_samples {scaled}, the rest extended "
        f"(`dbscan_labels`) | {_summary(sampled)} | {sampled_s:.1f} s |\n\n"
        f"Agreement (adjusted Rand index, noise as one more label): **{ari:.3f}**.\n")
    print(write_section("Exact DBSCAN, and the sampled DBSCAN against it", body))
    assert -1 <= ari <= 1
