"""Scale benchmarks (run by `make bench`, never by `make test`).

* Extraction throughput and peak memory: `extract.activations.extract_aggregates` (one forward
  pass per batch with hooks on the two sites, aggregates folded in per batch) against the plain
  TransformerLens loop a notebook would write: ``run_with_cache`` on every batch (caching every
  hook), keep the two sites' activations, aggregate the same statistics afterwards. Demo model
  and a GPT-2-small-shaped model, each run in a fresh process, median of NWH_BENCH_RUNS.
* Extraction scaling with shards: the Dagster extraction job (`nwh run --workers`) on the
  GPT-2-small-shaped model, 1 and 2 workers with one torch thread each, and 1 worker with both
  cores' threads (the in-process default) for comparison.
Results go to tests/benchmarks/RESULTS.md.
"""

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.results import write_section
from tests.benchmarks.test_bench_universality import _gpt2_small_shaped, find_newest

RUNS = int(os.environ.get("NWH_BENCH_RUNS", "3"))
PAIRS = int(os.environ.get("NWH_BENCH_PAIRS", "5"))  # forward / extraction pairs, back to back
GPT2_VOCAB = 50257
SCALE_SENTENCES = 500
SCALING = ((1, 1), (2, 1), (1, 2))  # (workers, torch threads per worker)
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}

EXTRACT = r"""
import json, sys, time
from tests.benchmarks.results import peak_rss_mib
import torch
from extract.activations import (SITE_MLP, SITE_RESID, encode, extract_aggregates, load_bridge,
                                 site_hook_names, stream_activations)
from core.batching import pad_sequences
from extract.corpus import sentences, synthetic_corpus

folder, method, n_sentences, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
bridge = load_bridge(folder)
corpus = sentences(synthetic_corpus(n_sentences, seed=1), "train")
sites = (SITE_MLP, SITE_RESID)


def plain_run_with_cache(bridge, corpus, batch_size=32, top_k=10):
    # What a notebook does: cache every hook per batch, keep the sites, aggregate at the end.
    tok = bridge.tokenizer
    names = {s: site_hook_names(s, bridge.cfg.n_layers) for s in sites}
    special = torch.tensor(sorted(set(tok.all_special_ids)))
    kept, token_ids = {s: [] for s in sites}, []
    for start in range(0, len(corpus), batch_size):
        chunk = corpus[start:start + batch_size]
        ids, real = pad_sequences([encode(tok, t)[:bridge.cfg.n_ctx] for _, t in chunk],
                                  tok.pad_token_id or 0)
        keep = real & ~torch.isin(ids, special)
        with torch.no_grad():
            _, cache = bridge.run_with_cache(ids, attention_mask=real.long())
        for s in sites:
            kept[s].append(torch.cat([cache[n][keep] for n in names[s]], dim=-1))
        token_ids.append(ids[keep])
        del cache
    tokens = torch.cat(token_ids)
    for s in sites:
        x = torch.cat(kept[s]).double()
        mean = x.mean(0); c = x - mean; m2 = (c**2).mean(0)
        stats = (mean, m2.sqrt(), (c**3).mean(0) / m2**1.5, (c**4).mean(0) / m2**2,
                 x.max(0).values, (x > 0).double().mean(0))
        types, row = torch.unique(tokens, return_inverse=True)  # the types seen
        sums = torch.zeros(len(types), x.shape[1], dtype=torch.float64).index_add_(0, row, x)
        counts = torch.bincount(row)
        means = sums[counts >= 5] / counts[counts >= 5, None]
        top = x.topk(top_k, dim=0)
    return int(tokens.numel())


start = time.perf_counter()
if method == "extract_aggregates":
    n_tokens = int(extract_aggregates(bridge, corpus, sites).moments["n_tokens"][0])
elif method == "forward_alone":  # the same batches, forward and hooks; nothing aggregated
    n_tokens = sum(len(b[SITE_MLP].token_ids) for b in stream_activations(bridge, corpus, sites))
else:
    n_tokens = plain_run_with_cache(bridge, corpus)
seconds = time.perf_counter() - start
print(json.dumps({"tokens": n_tokens, "seconds": seconds,
                  "peak_mib": peak_rss_mib()}))
"""

SHARDS = r"""
import json, sys
import dagster as dg
from dagster_project.partitions import checkpoints_partitions, partition_key
from dagster_project.runner import extract_in_parallel, instance_for
from extract.checkpoints import find_checkpoints

home, study, checkpoints, workers, threads = sys.argv[1:4] + [int(v) for v in sys.argv[4:6]]
executor = sys.argv[6] if len(sys.argv) > 6 else "multiprocess"  # or celery, or in_process
instance = instance_for(home)
key = partition_key("bench", find_checkpoints(checkpoints)[-1][0])
instance.add_dynamic_partitions(checkpoints_partitions.name, [key])
if executor == "in_process":  # what `nwh run` does without --workers: one process, no forks
    import torch
    from dagster_project.definitions import resources
    from dagster_project.jobs import EXTRACTION_ASSETS
    from dagster_project.studies import all_assets, all_checks
    torch.set_num_threads(threads)
    dg.materialize([*all_assets, *all_checks], selection=EXTRACTION_ASSETS, partition_key=key,
                   resources=resources(home, study), instance=instance, raise_on_error=True)
else:
    extract_in_parallel(home, study, key, instance, workers=workers, torch_threads=threads,
                        executor=executor)
run = instance.get_runs(limit=1)[0]
events = [e for e in instance.all_logs(run.run_id) if e.dagster_event]
shard = [e for e in events if (e.step_key or "").startswith("shards__")]
start = lambda kind, es: [e.timestamp for e in es if e.dagster_event.event_type_value == kind]
steps = {}
for e in shard:
    steps.setdefault(e.step_key, {})[e.dagster_event.event_type_value] = e.timestamp
print(json.dumps({
    "run_s": max(e.timestamp for e in events) - min(e.timestamp for e in events),
    "shards_s": max(start("STEP_SUCCESS", shard)) - min(start("STEP_START", shard)),
    "steps_s": sum(t["STEP_SUCCESS"] - t["STEP_START"] for t in steps.values())}))
"""


def _run(args: list[str], env: dict | None = None) -> dict:
    """One fresh process of a benchmark script; its last line of JSON output."""
    return json.loads(subprocess.run([sys.executable, "-c", *args], check=True, env=env or ENV,
                                     capture_output=True, text=True).stdout.splitlines()[-1])


def _median_run(args: list[str], runs: int, env: dict | None = None) -> dict:
    samples = [_run(args, env) for _ in range(runs)]
    return {k: statistics.median(s[k] for s in samples) for k in samples[0]}


def _extraction_rows(models: dict[str, tuple[Path, int]]) -> tuple[list[str], dict]:
    rows, speedups = [], {}
    for name, (folder, n_sentences) in models.items():
        r = {m: _median_run([EXTRACT, str(folder), m, str(n_sentences), str(os.cpu_count())],
                            RUNS) for m in ("extract_aggregates", "run_with_cache")}
        rate = {m: r[m]["tokens"] / r[m]["seconds"] for m in r}
        speedups[name] = rate["extract_aggregates"] / rate["run_with_cache"]
        rows.append(f"| {name} | {int(r['run_with_cache']['tokens']):,} | "
                    f"{rate['extract_aggregates']:,.0f} tokens/s, "
                    f"{r['extract_aggregates']['peak_mib']:,.0f} MiB | "
                    f"{rate['run_with_cache']:,.0f} tokens/s, "
                    f"{r['run_with_cache']['peak_mib']:,.0f} MiB | {speedups[name]:.2f}x |")
    return rows, speedups


def _study(folder: Path, checkpoints: Path, n_sentences: int) -> Path:
    path = folder / "study.yaml"
    path.write_text(json.dumps({
        "model": "bench", "checkpoints": str(checkpoints),
        "corpus": {"kind": "synthetic", "n_sentences": n_sentences, "seed": 1,
                   "heldout_fraction": 0.2}}))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """(demo checkpoint folder, GPT-2-small-shaped checkpoints folder, the same shape with GPT-2's
    50,257-type vocabulary)."""
    root = tmp_path_factory.mktemp("models")
    subprocess.run([str(Path(sys.executable).parent / "nwh"), "--home", str(root / "home"),
                    "train", "--out", str(root / "demo")], check=True, env=ENV,
                   stdout=subprocess.DEVNULL)
    big = _gpt2_small_shaped(find_newest(root / "demo"), root / "big" / "checkpoint-1", 0)
    vocab = _gpt2_small_shaped(find_newest(root / "demo"), root / "vocab" / "checkpoint-1", 0,
                               vocab_size=GPT2_VOCAB)
    return find_newest(root / "demo"), big.parent, vocab


def test_extraction_against_a_plain_run_with_cache_loop(models):
    demo, big, vocab = models
    rows, speedups = _extraction_rows({
        "demo model (4 x 512 MLP, 5 x 128 resid)": (demo, 4000),
        "GPT-2-small shape (12 x 3,072 MLP, 13 x 768 resid)": (big / "checkpoint-1", 400),
        f"the same with GPT-2's {GPT2_VOCAB:,}-type vocabulary": (vocab, 400)})
    print(write_section("Extraction (tests/benchmarks/test_bench_scale.py)", (
        f"Both sites (MLP and residual stream), batches of 32, both cores; median of {RUNS} "
        "fresh processes each; throughput over the whole call (aggregation included), peak = "
        "max RSS of the process (model included). The plain loop caches every hook of every "
        "batch, keeps the two sites' activations and aggregates at the end, so its memory grows "
        "with the corpus; `extract_aggregates` folds each batch in and drops it. Both keep token "
        "sums for the types seen only (the demo tokenizer's ids; a vocabulary x neurons matrix "
        "would be 14.8 GB per site at GPT-2's vocabulary). The GPT-2 vocabulary row differs only "
        "in the embedding and unembedding size: the plain loop computes the logits, "
        "`extract_aggregates` stops after the last block. Goal: at least "
        "2x the plain loop's throughput with bounded memory.\n\n"
        "| model | tokens | extract_aggregates | plain run_with_cache loop | speed-up |\n"
        "|---|---|---|---|---|\n" + "\n".join(rows))))
    assert all(s > 1 for s in speedups.values())


def test_extraction_against_the_forward_pass_alone(models):
    """Pairs of fresh processes, the forward pass alone then the extraction, back to back: the
    ratio of each pair, so the machine's slow drift between runs cancels (three runs of one
    method, then three of the other, gave 0.77 and 0.81 on the same code the same day)."""
    _, _, vocab = models
    pairs = [{m: _run([EXTRACT, str(vocab), m, "400", str(os.cpu_count())])
              for m in ("forward_alone", "extract_aggregates")} for _ in range(PAIRS)]
    assert all(p["forward_alone"]["tokens"] == p["extract_aggregates"]["tokens"] for p in pairs)
    tokens = pairs[0]["forward_alone"]["tokens"]
    rate = {m: statistics.median(tokens / p[m]["seconds"] for p in pairs) for m in pairs[0]}
    ratios = sorted(p["forward_alone"]["seconds"] / p["extract_aggregates"]["seconds"]
                    for p in pairs)
    section = "Extraction against the forward pass alone (tests/benchmarks/test_bench_scale.py)"
    print(write_section(section, (
        f"GPT-2-small shape with GPT-2's {GPT2_VOCAB:,}-type vocabulary, both sites, 400 "
        f"sentences, batches of 32, both cores; {PAIRS} pairs of fresh processes, each the "
        "forward pass alone then the extraction, back to back; the ratio is the median of the "
        "pairs' ratios (their range in brackets). The forward pass alone is `stream_activations` "
        "on the same corpus: the same length-sorted batches, forward and site hooks, the "
        "activations dropped instead of aggregated. Goal (issue 19): extraction at >= 0.8 of "
        "its throughput.\n\n"
        "| model | tokens | extract_aggregates | forward pass alone | ratio |\n"
        "|---|---|---|---|---|\n"
        f"| GPT-2-small shape, GPT-2 vocabulary | {int(tokens):,} | "
        f"{rate['extract_aggregates']:,.0f} tokens/s | {rate['forward_alone']:,.0f} tokens/s | "
        f"{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f}) |")))


def test_extraction_shards_on_1_and_2_workers(models, tmp_path):
    _, big, _ = models
    study = _study(tmp_path, big, SCALE_SENTENCES)
    scaling = {(workers, threads): _median_run(
        [SHARDS, str(tmp_path / f"home-{workers}x{threads}"), str(study), str(big), str(workers),
         str(threads)], RUNS) for workers, threads in SCALING}
    base = scaling[(1, 1)]
    rows = [f"| {w} | {t} | {r['run_s']:.1f} s | {base['run_s'] / r['run_s']:.2f}x | "
            f"{r['shards_s']:.1f} s | {base['shards_s'] / r['shards_s']:.2f}x | "
            f"{r['steps_s']:.1f} s |" for (w, t), r in scaling.items()]
    print(write_section("Extraction shards (tests/benchmarks/test_bench_scale.py)", (
        "The Dagster extraction job (`extraction_shards_job`, what `nwh run --workers N` runs "
        f"first): the corpus, its check and 2 shards of {SCALE_SENTENCES * 4 // 5:,} train "
        "sentences on the GPT-2-small-shaped model under the multiprocess executor; every step is "
        "a process forked from a server that preloaded the definitions. Whole job = first to "
        "last event of the run; shard phase = first shard start to last shard end (with one "
        "worker it includes launching the second shard's process); shard steps = the two "
        f"shards' step times added (each loads the model). Median of {RUNS} runs each. Goal: "
        "1.7x or more from 1 to 2 workers (one torch thread each); 1 worker with both cores' "
        "threads is the in-process alternative.\n\n"
        "| workers | torch threads each | whole job | speed-up | shard phase | speed-up | "
        "shard steps |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows))))
    assert scaling[(2, 1)]["run_s"] < base["run_s"]
