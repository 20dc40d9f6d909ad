"""How far the sampled DBSCAN of the explanation study is from exact DBSCAN.

At 307,200 neurons DBSCAN fits a seeded sample of `max_fit_neurons` (20,000) with `min_samples`
scaled by the sample fraction and extends the labels to the rest (`dbscan_labels`); exact DBSCAN
(`dbscan_exact`, blocked, one n x n similarity pass per round) is too slow there but fits at
50,000 neurons. This benchmark embeds 50,016 generated explanations (48 layers x 1,042, the
explanation benchmark's generator), runs both with the paper-study defaults (eps 0.3,
min_samples 10) and reports their agreement (ARI, noise counted as its own cluster), cluster
counts and times. Run by `make bench`; rewrites its section of RESULTS.md.
"""

import os
import time

import numpy as np
from sklearn.metrics import adjusted_rand_score

from extract.embeddings import DEFAULT_EMBEDDING_MODEL, embed_texts, load_embedder
from models.explanation_clusters.clustering import ClusteringSettings, dbscan_exact, dbscan_labels
from tests.benchmarks.results import write_section
from tests.benchmarks.test_bench_explanations import generated_explanations

N_LAYERS, N_NEURONS = 48, int(os.environ.get("NWH_BENCH_DBSCAN_NEURONS", "1042"))


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
    start = time.perf_counter()
    exact = dbscan_exact(x, s.dbscan_eps, s.dbscan_min_samples)
    exact_s = time.perf_counter() - start
    ari = adjusted_rand_score(exact, sampled)
    scaled = max(2, round(s.dbscan_min_samples * s.max_fit_neurons / len(x)))
    body = (
        f"{len(x):,} generated explanations ({N_LAYERS} layers x {N_NEURONS}), embedded in "
        f"{embed_s:.0f} s; eps {s.dbscan_eps}, min_samples {s.dbscan_min_samples}; 1 run.\n\n"
        "| DBSCAN | result | time |\n|---|---|---|\n"
        f"| exact, blocked (`dbscan_exact`) | {_summary(exact)} | {exact_s:.0f} s |\n"
        f"| sampled: {s.max_fit_neurons:,} fitted with min_samples {scaled}, the rest extended "
        f"(`dbscan_labels`) | {_summary(sampled)} | {sampled_s:.0f} s |\n\n"
        f"Agreement (adjusted Rand index, noise as one more label): **{ari:.3f}**.\n")
    print(write_section("Sampled against exact DBSCAN", body))
    assert -1 <= ari <= 1
