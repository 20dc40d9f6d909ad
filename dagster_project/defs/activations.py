"""The shared activations: the train split streamed through the checkpoint in shards, merged
into per-neuron moments, token means and top contexts."""

import dagster as dg
import polars as pl
import torch

from dagster_project.defs.shared import (Opened, checkpoint_folder, lake_checks,
                                         lake_specs, open_partition, partitioned_asset,
                                         partitioned_multi_asset, study_code_version, upstream,
                                         write_tables)
from dagster_project.partitions import checkpoints_partitions, extraction_shards
from dagster_project.resources import NwhResource
from dagster_project.study import StudyConfig
from dagster_project.versions import CHECKPOINT_KEY
from expectations.runner import row_count_equals
from extract import lake
from extract.activations import (aggregate_sites, aggregate_tables, merge_shard_states,
                                 sentence_fingerprint, shard_sentences)
from extract.corpus import sentences
from extract.fidelity import compare, reference_model

STUDY = "activations"
N_SHARDS = extraction_shards()
SHARD_STATE = "activation_shards"


def runs(study: StudyConfig) -> bool:
    return study.needs_model


def shard_key(shard: int) -> dg.AssetKey:
    return dg.AssetKey(["shards", f"activation_shard_{shard}"])


SHARD_KEYS = [shard_key(shard) for shard in range(N_SHARDS)]


def _state_path(opened: Opened, shard: int, site: str) -> str:
    return lake.state_path(opened.nwh.lake, SHARD_STATE, opened.model, opened.checkpoint,
                           part=f"shard{shard}-{site}")


def _train(opened: Opened) -> list[tuple[int, str]]:
    return sentences(opened.read("corpus"), "train")


FIDELITY_SENTENCES = 8  # the fixed batch: the first train sentences


@partitioned_asset("checkpoint_fidelity", STUDY, ["corpus", CHECKPOINT_KEY],
                   "Is the loaded checkpoint the checkpoint? The first train sentences through "
                   "the TransformerLens bridge and through plain transformers: the largest "
                   "logit difference (hidden states when the loader had to initialise weights), "
                   "which a blocking check holds within the tolerance before any model-running "
                   "step, and the weights the folder lacks (then loss-based steps are skipped).")
def checkpoint_fidelity(context: dg.AssetExecutionContext,
                        nwh: NwhResource) -> dg.MaterializeResult:
    opened = open_partition(context, nwh)
    folder = checkpoint_folder(opened.study, opened.checkpoint)
    bridge = opened.bridge(dtype=torch.float32)  # the conversion is checked, not the dtype
    reference, missing = reference_model(folder, bridge,
                                         opened.study.extraction.trust_pickle_checkpoints)
    texts = [text for _, text in _train(opened)[:FIDELITY_SENTENCES]]
    found = compare(bridge, reference, texts, missing)
    if missing:
        opened.log(f"{folder} lacks {len(missing)} weights the loader initialised at random "
                   f"({', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}): no "
                   "language-model loss will be measured through it (ablation, cluster ON/OFF, "
                   "circuit size and gradient similarity are skipped)")
    return next(write_tables(opened, {"checkpoint_fidelity": pl.DataFrame([found.row()])}, {"checkpoint_fidelity": {
        "max_abs_diff": found.max_abs_diff, "compared": found.compared,
        "loss_usable": found.loss_usable}}, multi=False))


def loss_usable(opened: Opened) -> bool:
    """Whether loss-based steps may use this checkpoint (no weights made up by the loader);
    logs why not."""
    row = opened.read("checkpoint_fidelity").row(0, named=True)
    if not row["loss_usable"]:
        opened.log(f"skipped: the checkpoint lacks {row['n_missing_weights']} weights that the "
                   f"loader initialised at random ({row['missing_weights'][:200]}), so a "
                   "language-model loss through it would be measured through random weights")
    return row["loss_usable"]


def _activation_shard(shard: int) -> dg.AssetsDefinition:
    @dg.asset(key=shard_key(shard), deps=upstream(STUDY, ["corpus", "checkpoint_fidelity"]),
              partitions_def=checkpoints_partitions, code_version=study_code_version(STUDY),
              group_name=STUDY, kinds={"python", "parquet"},
              description=f"Shard {shard} of {N_SHARDS} of the train split (every "
                          f"{N_SHARDS}th sentence from sentence {shard}) streamed through the "
                          "checkpoint with hooks on the configured sites: each site's mergeable "
                          "aggregates (count, mean, central sums M2-M4, max, count > 0, token "
                          "sums, top-k) as Parquet state under <lake>/_state/. Shards run in "
                          "parallel under the multiprocess executor (`nwh run --workers`).")
    def activation_shard(context: dg.AssetExecutionContext, nwh: NwhResource):
        opened = open_partition(context, nwh)
        cfg = opened.study.extraction
        if nwh.torch_threads:
            torch.set_num_threads(nwh.torch_threads)
        part = shard_sentences(_train(opened), shard, N_SHARDS)
        aggs = aggregate_sites(opened.bridge(), part, cfg.sites, cfg.batch_size, top_k=cfg.top_k,
                               progress=opened.progress(f"extraction shard {shard}"))
        fingerprint = sentence_fingerprint(part)
        for site, agg in aggs.items():
            lake.atomic_write_parquet(agg.to_arrow(fingerprint), _state_path(opened, shard, site))
        return dg.MaterializeResult(metadata={
            "n_sentences": len(part), "n_tokens": next(iter(aggs.values())).n,
            "sites": ", ".join(aggs), "torch_threads": torch.get_num_threads()})

    return activation_shard


_DESCRIPTIONS = {
    "neuron_moments": "Per neuron of each extracted site (mlp: MLP post-activation; resid: a "
                      "layer's output hidden state, layer 0 = embedding output): n_tokens, mean, "
                      "std (population), skew, kurtosis, max and fraction > 0 of its activation "
                      "over the train split (the extraction shards merged).",
    "neuron_token_means": "Mean activation of each neuron on each token type seen at least "
                          "min_token_count times (Eq. 1 of Zhang et al.).",
    "neuron_top_contexts": "Top-k activating tokens of each neuron with their context (ties "
                           "broken by sentence, then position).",
}


@partitioned_multi_asset(lake_specs(STUDY, _DESCRIPTIONS, ["corpus", *SHARD_KEYS]))
def activation_aggregates(context: dg.AssetExecutionContext, nwh: NwhResource):
    """Merge the extraction shards' aggregates into the three tables (equal to one unsharded
    stream)."""
    opened = open_partition(context, nwh)
    cfg = opened.study.extraction
    train = _train(opened)
    if not train:
        raise dg.Failure("the corpus has no train sentences to extract activations from")
    shards = [shard_sentences(train, shard, N_SHARDS) for shard in range(N_SHARDS)]
    aggs = {}
    for site in cfg.sites:
        paths = [_state_path(opened, shard, site) for shard in range(N_SHARDS)]
        missing = [p for p in paths if not lake.exists(p)]
        if missing:
            raise dg.Failure(f"no extraction state for site {site!r} at {missing}; materialize "
                             f"the shard assets {[k.to_user_string() for k in SHARD_KEYS]} first")
        aggs[site] = merge_shard_states([lake.read_parquet(p) for p in paths], shards)
    result = aggregate_tables(opened.bridge(), train, aggs, cfg.min_token_count)
    shapes = ", ".join(f"{site}: {n} layers x {d}" for site, (n, d) in result.shapes.items())
    frames = {"neuron_moments": result.moments, "neuron_token_means": result.token_means,
              "neuron_top_contexts": result.top_contexts}
    yield from write_tables(opened, frames, {t: {"sites": shapes, "shards": N_SHARDS}
                                             for t in frames})


def expected_rows(opened: Opened, table: str) -> list[dict]:
    """One fidelity row per checkpoint; top contexts: k per neuron (fewer when a neuron saw
    fewer tokens)."""
    if table == "checkpoint_fidelity":
        return [row_count_equals(1)]
    if table != "neuron_top_contexts":
        return []
    moments = opened.read("neuron_moments")
    k = min(opened.study.extraction.top_k, int(moments["n_tokens"].min()))
    return [row_count_equals(moments.height * k)]


assets = [checkpoint_fidelity, *(_activation_shard(shard) for shard in range(N_SHARDS)),
          activation_aggregates]
checks = lake_checks(STUDY, expected_rows)
