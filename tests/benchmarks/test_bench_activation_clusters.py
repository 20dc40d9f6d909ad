"""Activation-clusters benchmark (run by `make bench`, never by `make test`).

Time and peak memory of the three stages of the study, each in a fresh process:
representation building (token-mean matrix, TF-IDF, smoothing), clustering (complete linkage,
cuts at K = 50 and 200, refinement, random twins) and ablation (a cluster and 3 x 5 baseline
draws on up to 32 held-out sequences), on the demo model and on a GPT-2-small-shaped model
(12 layers x 3072 MLP neurons, d_model 768, random weights, the demo tokenizer). The MLP site;
the extraction that feeds them is measured by the foundation benchmark. Results go to
tests/benchmarks/RESULTS.md.
"""

import os
import statistics
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.results import write_section

RUNS = int(os.environ.get("NWH_BENCH_RUNS", "3"))
N_SENTENCES = 4000
ABLATED_CLUSTERS = 5

STAGE = r"""
import json, sys, time
from tests.benchmarks.results import peak_rss_mib
import numpy as np, polars as pl
from extract.activations import encode, extract_aggregates, load_bridge, loss_inputs
from extract.corpus import sentences, synthetic_corpus
from models.activation_clusters.ablation import AblationSettings, ablate_clusters
from models.lm_loss import LossSetup, NeuronSet
from models.activation_clusters.clustering import (ActivationClusterSettings, cluster_site,
                                                   complete_linkage, representation, token_matrix)

folder, stage, means_path = sys.argv[1], sys.argv[2], sys.argv[3]
n_sentences, n_ablated = int(sys.argv[4]), int(sys.argv[5])
corpus = synthetic_corpus(n_sentences, seed=1)
settings = ActivationClusterSettings()
if stage == "extract":  # once per model: the token means the clustering asset reads from the lake
    bridge = load_bridge(folder)
    extract_aggregates(bridge, sentences(corpus, "train"), ("mlp",)).token_means.write_parquet(means_path)
    np.save(means_path + ".emb.npy", bridge.W_E.detach().double().numpy())
    sys.exit()
means, emb = pl.read_parquet(means_path), np.load(means_path + ".emb.npy")
rss_before = peak_rss_mib()
start = time.perf_counter()
if stage == "represent":
    matrix = token_matrix(means, settings.min_token_count)
    for kind in settings.representations:
        representation(matrix, kind, emb, settings)
    size = f"{matrix.values.shape[0]} neurons x {matrix.values.shape[1]} token types"
elif stage == "cluster":
    out = cluster_site(means, emb, ActivationClusterSettings(representations=("filter",)))
    size = f"{out['activation_clusters'].height} memberships"
elif stage in ("linkage", "scipy linkage"):  # the merge tree alone, ours and scipy's
    x = representation(token_matrix(means, settings.min_token_count), "filter", emb, settings)
    x = x[np.linalg.norm(x, axis=1) > 0]
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    if stage == "linkage":
        complete_linkage(x)
    else:
        from scipy.cluster.hierarchy import linkage
        from scipy.spatial.distance import pdist
        linkage(pdist(x, "cosine"), method="complete")
    size = f"{len(x)} neurons"
else:  # clusters of the mean K = 200 size with 10 frequent tokens each, without clustering
    bridge = load_bridge(folder)
    matrix = token_matrix(means, settings.min_token_count)
    rng = np.random.default_rng(0)
    n, size = matrix.values.shape[0], matrix.values.shape[0] // 200
    token_ids = matrix.tokens["token_id"].to_numpy()
    clusters = []
    for cid in range(n_ablated):
        rows = rng.choice(n, size=size, replace=False)
        clusters.append(({"cluster_id": cid},
                         NeuronSet(matrix.neurons["layer"].to_numpy()[rows],
                                   matrix.neurons["neuron"].to_numpy()[rows]),
                         set(rng.choice(token_ids, size=10, replace=False).tolist())))
    heldout = [encode(bridge.tokenizer, t)[:bridge.cfg.n_ctx] for _, t in sentences(corpus, "heldout")]
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    rows = ablate_clusters(LossSetup(**loss_inputs(bridge, "mlp")), clusters, heldout,
                           AblationSettings())
    size = f"{len(clusters)} clusters x 16 ablations"
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "peak_mib": peak_rss_mib(),
                  "before_mib": rss_before, "size": size}))
"""


def _gpt2_small_shaped(demo_checkpoint: Path, out: Path) -> Path:
    """A randomly initialised GPT-2 with GPT-2 small's layer shapes and the demo tokenizer."""
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(demo_checkpoint)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_positions=64, n_embd=768,
                                       n_layer=12, n_head=12, n_inner=3072,
                                       bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _stage(folder: Path, stage: str, means: Path) -> str:
    """Run one stage in a fresh process; its last line of output."""
    out = subprocess.run([sys.executable, "-c", STAGE, str(folder), stage, str(means),
                          str(N_SENTENCES), str(ABLATED_CLUSTERS)], check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)
    return (out.stdout.strip().splitlines() or [""])[-1]


def _measure(folder: Path, stage: str, means: Path, runs: int) -> dict:
    import json
    samples = [json.loads(_stage(folder, stage, means)) for _ in range(runs)]
    return {"seconds": statistics.median(s["seconds"] for s in samples),
            "peak_mib": statistics.median(s["peak_mib"] for s in samples),
            "before_mib": statistics.median(s["before_mib"] for s in samples),
            "size": samples[0]["size"], "runs": runs}


def test_activation_cluster_stages(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    demo_dir = tmp_path / "demo"
    subprocess.run([str(Path(sys.executable).parent / "nwh"), "--home", str(tmp_path / "home"),
                    "train", "--out", str(demo_dir)], check=True, env=env, stdout=subprocess.DEVNULL)
    demo = sorted(demo_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1]
    big = _gpt2_small_shaped(demo, tmp_path / "gpt2-small-shaped")
    lines = ["| model | stage | work | time (median) | peak RSS | RSS before the stage | runs |",
             "|---|---|---|---|---|---|---|"]
    for name, folder, runs in (("demo (4 x 512)", demo, RUNS),
                               ("GPT-2-small-shaped (12 x 3072)", big, 1)):
        means = tmp_path / f"{folder.name}-token-means.parquet"
        _stage(folder, "extract", means)
        for stage in ("represent", "linkage", "scipy linkage", "cluster", "ablate"):
            r = _measure(folder, stage, means, runs)
            lines.append(f"| {name} | {stage} | {r['size']} | {r['seconds']:.1f} s | "
                         f"{r['peak_mib']:,.0f} MiB | {r['before_mib']:,.0f} MiB | {r['runs']} |")
    body = ("Stages of the activation-clusters study on the MLP site, each in a fresh process "
            f"that reads the token means of {N_SENTENCES} synthetic sentences from Parquet (as "
            "the clustering asset reads them from the lake; extracted once per model). "
            "represent: the token-mean matrix and the filter, TF-IDF and smoothed vectors; "
            "linkage: the complete-linkage merge tree of the filter representation alone "
            "(`complete_linkage`: blocked cosine distances, fastcluster in place), against "
            "scipy's `linkage(pdist(x, 'cosine'), 'complete')` (scipy linkage, the baseline; "
            "the same tree, tested); cluster: one "
            "representation, complete linkage, cuts at K = 50 and 200, refinement and random "
            f"twins; ablate: {ABLATED_CLUSTERS} clusters of the mean K = 200 size (neurons / 200, "
            "random members, 10 random kept tokens), each with 3 baselines x 5 draws, on up to "
            "32 held-out sequences. The GPT-2-small-shaped model is measured "
            "once (its complete linkage alone holds the 679 M pairwise distances).\n\n"
            + "\n".join(lines))
    print(write_section("Activation clusters (tests/benchmarks/test_bench_activation_clusters.py)",
                        body))
