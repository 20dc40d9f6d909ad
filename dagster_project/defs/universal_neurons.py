"""Universal neurons (Gurnee et al.): correlations of every MLP neuron with other seeds' models
against a rotated baseline, and checkpoint dynamics against the previous checkpoint."""

from functools import partial
from pathlib import Path

import dagster as dg
import polars as pl

from dagster_project.defs.shared import (Opened, empty, lake_checks, open_partition,
                                         partitioned_asset, preview, report_asset, write_tables)
from dagster_project.resources import NwhResource
from dagster_project.study import StudyConfig
from extract.activations import SITE_MLP, paired_activations, site_shape
from extract.checkpoints import find_checkpoints
from extract.corpus import sentences
from models.universal_neurons import cached, neuron_stability as stability_against
from models.universal_neurons import neuron_universality as universality_against
from reports.plots import plot_universality_by_layer

STUDY = "universal_neurons"


def runs(study: StudyConfig) -> bool:
    """Stability runs for every model; universality writes an empty table without other seeds."""
    return study.needs_model


def _correlate(opened: Opened, bridge, other, label: str, *, compare):
    """`compare(batches, n_layers, width, budget, ..., progress)` over the first sentences of the
    train split, both models' MLP activations cached in memory when they fit the budget."""
    cfg = opened.study.universality
    n_layers, width = site_shape(bridge, SITE_MLP)
    train = sentences(opened.read("corpus"), "train")[:cfg.max_sentences]
    opened.log(f"correlating {n_layers * width} neurons with {label} over {len(train)} sentences")
    budget = cfg.memory_budget_mb * 2**20
    batches = cached(paired_activations(bridge, other, train, SITE_MLP,
                                        batch_size=opened.study.extraction.batch_size), budget)
    return compare(batches, n_layers, width, budget,
                   progress=opened.progress(f"correlation with {label}", "passes", 1))


@partitioned_asset("neuron_universality", STUDY, ["corpus", "checkpoint_fidelity"],
                   "Universal neurons (Gurnee et al.): for every MLP neuron of the checkpoint "
                   "and every other model (another seed, its newest checkpoint), the best "
                   "Pearson correlation with any of its neurons over the same tokens, which "
                   "neuron that is, and the best correlation after rotating the other model's "
                   "neuron basis by a random orthogonal matrix per layer (the baseline).")
def neuron_universality(context: dg.AssetExecutionContext,
                        nwh: NwhResource) -> dg.MaterializeResult:
    opened = open_partition(context, nwh)
    cfg = opened.study.universality
    frames = []
    if opened.study.runs_universality:
        bridge = opened.bridge()
        for folder in cfg.other_models:
            name, path = find_checkpoints(folder)[-1]
            other = opened.bridge(folder=path)
            if site_shape(other, SITE_MLP) != site_shape(bridge, SITE_MLP):
                raise dg.Failure(f"universality: {folder!r} has {site_shape(other, SITE_MLP)} MLP "
                                 f"neurons (layers, width), the study's model "
                                 f"{site_shape(bridge, SITE_MLP)}")
            label = Path(folder).name
            df = _correlate(opened, bridge, other, f"{label}/{name}",
                            compare=partial(universality_against, seed=cfg.seed))
            frames.append(df.with_columns(pl.lit(label).alias("other_model")))
    df = (pl.concat(frames).with_columns(pl.lit(SITE_MLP).alias("site"),
                                         pl.lit(cfg.threshold).alias("threshold"))
          if frames else empty("neuron_universality"))
    return next(write_tables(opened, {"neuron_universality": df}, {"neuron_universality": {
        "other_models": len(frames),
        "preview": preview(df.sort("best_corr", descending=True, nulls_last=True), 10)}},
        multi=False))


@partitioned_asset("neuron_stability", STUDY, ["corpus", "checkpoint_fidelity"],
                   "Checkpoint dynamics: for every MLP neuron, its activation correlation with "
                   "the same neuron (layer and index) at the previous checkpoint of the run, and "
                   "with its best match there, over the same tokens (streaming, blocked like the "
                   "universality correlations). Empty for the first checkpoint.")
def neuron_stability(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
    opened = open_partition(context, nwh)
    study, checkpoint = opened.study, opened.checkpoint
    names = [name for name, _ in find_checkpoints(study.checkpoints)] if study.needs_model else []
    previous = names[names.index(checkpoint) - 1] if checkpoint in names[1:] else None
    df = empty("neuron_stability")
    if previous is None:
        opened.log(f"no checkpoint before {checkpoint!r}: nothing to compare with")
    else:
        df = _correlate(opened, opened.bridge(), opened.bridge(previous), previous,
                        compare=stability_against).with_columns(
            pl.lit(SITE_MLP).alias("site"), pl.lit(previous).alias("previous_checkpoint"))
    return next(write_tables(opened, {"neuron_stability": df}, {"neuron_stability": {
        "previous_checkpoint": previous or "none",
        "mean_self_corr": float(df["self_corr"].mean()) if len(df) else float("nan")}},
        multi=False))


assets = [neuron_universality, neuron_stability,
          report_asset("universality_by_layer", STUDY, ["fct_universal_neurons_by_layer"],
                       "Mean best correlation with the other seeds' models against the rotated "
                       "baseline per layer, with the share of universal neurons (Fig. 2a of "
                       "Gurnee et al.).", draw=plot_universality_by_layer)]
checks = lake_checks(STUDY)
