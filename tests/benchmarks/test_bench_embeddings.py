"""Explanation-embedding throughput (run by `make bench`, never by `make test`).

Embeds generated explanations (the texts of the explanation-study benchmark, almost all
distinct) with the embedded all-MiniLM-L6-v2 three ways, in this process, median of RUNS timed
passes after one warm-up batch each:

* baseline: the library's defaults as the study called it before issue 19 (SentenceTransformer
  with its fused SDPA attention, batches of 64, float32): "today's vectors";
* ours, float32 (the default): :func:`extract.embeddings.load_embedder` / ``embed_texts``;
* ours, ``compute.dtype: bfloat16``: the same under autocast.

Each row gives texts/s and the smallest cosine of its vectors to the baseline's.
Goal (issue 19): >= 1,500 texts/s with cosine >= 0.999.
"""

import os
import statistics
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from extract.embeddings import embed_texts, embedding_model_path, load_embedder
from tests.benchmarks.results import write_section
from tests.benchmarks.test_bench_explanations import generated_explanations

RUNS = int(os.environ.get("NWH_BENCH_RUNS", "3"))
N_TEXTS = 12_000


def _rate(embed, texts: list[str]) -> tuple[float, np.ndarray]:
    """Median texts/s over RUNS passes, and the vectors of the last."""
    embed(texts[:256])
    seconds = []
    for _ in range(RUNS):
        start = time.perf_counter()
        vectors = embed(texts)
        seconds.append(time.perf_counter() - start)
    return len(texts) / statistics.median(seconds), vectors


def test_embedding_throughput():
    texts = [t for _, _, t, _ in generated_explanations(48, N_TEXTS // 48)]
    stock = SentenceTransformer(str(embedding_model_path()), device="cpu", local_files_only=True)
    base_rate, base = _rate(lambda t: stock.encode(t, batch_size=64, normalize_embeddings=True),
                            texts)
    ours = load_embedder()
    rows = [("baseline: SentenceTransformer defaults (SDPA attention, batches of 64), float32",
             base_rate, 1.0)]
    for label, dtype in (("ours, float32 (eager attention, batches of 256)", torch.float32),
                         ("ours, compute.dtype bfloat16 (autocast)", torch.bfloat16)):
        rate, vectors = _rate(lambda t: embed_texts(ours, t, dtype=dtype), texts)
        rows.append((label, rate, float((vectors * base).sum(1).min())))
    text = write_section(
        "Explanation embedding (tests/benchmarks/test_bench_embeddings.py)",
        f"{len(texts):,} generated explanations ({len(set(texts)):,} distinct), all-MiniLM-L6-v2, "
        f"{torch.get_num_threads()} threads; median of {RUNS} passes. Goal (issue 19): "
        ">= 1,500 texts/s with cosine >= 0.999 to the baseline's vectors.\n\n"
        "| embedding | texts/s | vs baseline | smallest cosine to the baseline |\n"
        "|---|---|---|---|\n" + "".join(
            f"| {label} | {rate:,.0f} | {rate / base_rate:.2f}x | {cos:.6f} |\n"
            for label, rate, cos in rows))
    print(text)
    assert all(cos >= 0.999 for _, _, cos in rows)
