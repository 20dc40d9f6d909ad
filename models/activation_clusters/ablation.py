"""Causal test of neuron clusters by ablation (Zhang et al. Sec. 5.5, Table 3).

A cluster's neurons are replaced, with forward hooks, by their mean activation over the train
split (the paper's "mean of the activations", read per neuron; `LossSetup.fill`) or by zero
(the option), and the loss (`models.lm_loss`) is measured on held-out sequences that contain the
cluster's top-activating tokens, on those tokens only.

Baselines ablate as many neurons as the cluster (Table 3's columns):

* ``random``: anywhere in the site;
* ``random_layer``: the cluster's count in each layer, drawn within that layer;
* ``random_position``: random index positions ablated in every layer; with n neurons over L
  layers, n // L positions in all layers and, for the remainder, one more position in n % L
  random layers, so exactly n neurons are ablated.

All runs of one cluster (no ablation, the cluster, every baseline draw) go through the model
together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

from core.schema import SCHEMAS
from core.seeds import item_seed
from models.lm_loss import NO_NEURONS, EvalSet, LossSetup, NeuronSet, eval_set, target_losses

BASELINES = ("random", "random_layer", "random_position")


def baseline_neurons(kind: str, cluster: NeuronSet, n_layers: int, width: int,
                     *, rng: np.random.Generator) -> NeuronSet:
    """One random draw of a baseline with the cluster's size (module docstring)."""
    n = len(cluster)
    if kind == "random":
        flat = rng.choice(n_layers * width, size=n, replace=False)
        return NeuronSet(flat // width, flat % width)
    if kind == "random_layer":
        layers, counts = np.unique(cluster.layers, return_counts=True)
        picks = [(np.full(c, layer), rng.choice(width, size=c, replace=False))
                 for layer, c in zip(layers, counts)]
        return NeuronSet(np.concatenate([p[0] for p in picks]),
                         np.concatenate([p[1] for p in picks]))
    if kind == "random_position":
        full, extra = divmod(n, n_layers)
        positions = rng.choice(width, size=full + (extra > 0), replace=False)
        layers = np.repeat(np.arange(n_layers), full)
        neurons = np.tile(positions[:full], n_layers)
        if extra:
            layers = np.concatenate([layers, np.sort(rng.choice(n_layers, extra, replace=False))])
            neurons = np.concatenate([neurons, np.full(extra, positions[full])])
        return NeuronSet(layers, neurons)
    raise ValueError(f"unknown baseline {kind!r}; choose from {list(BASELINES)}")


@dataclass(frozen=True)
class AblationSettings:
    repeats: int = 5  # draws of each baseline
    max_sentences: int = 32  # held-out sequences per cluster
    batch_rows: int = 256  # sequences per forward pass
    seed: int = 0


def ablate_cluster(lm: LossSetup, cluster: NeuronSet, data: EvalSet, settings: AblationSettings,
                   *, rng: np.random.Generator) -> list[dict]:
    """Rows (baseline, repeat, n_neurons, loss_base, loss_ablated) for the cluster and
    `settings.repeats` draws of every baseline, all on the same evaluation set."""
    runs = [("none", 0, NO_NEURONS), ("cluster", 0, cluster)]
    runs += [(kind, r, baseline_neurons(kind, cluster, len(lm.hook_names), lm.width, rng=rng))
             for kind in BASELINES for r in range(settings.repeats)]
    losses = target_losses(lm, data, [run for _, _, run in runs], settings.batch_rows)
    return [{"baseline": kind, "repeat": r, "n_neurons": len(run), "loss_base": losses[0],
             "loss_ablated": loss}
            for (kind, r, run), loss in zip(runs[1:], losses[1:])]


def ablate_clusters(lm: LossSetup, clusters: Sequence[tuple[dict, NeuronSet, set[int]]],
                    sequences: Sequence[Sequence[int]], settings: AblationSettings,
                    *, progress: Callable[[int, int], None] | None = None) -> list[dict]:
    """Ablate each (keys, neurons, top tokens) cluster and its baselines on the held-out
    `sequences` that contain its tokens; a cluster none of whose tokens occur is skipped."""
    rows: list[dict] = []
    for i, (keys, neurons, tokens) in enumerate(clusters):
        data = eval_set(sequences, tokens, lm.pad_id, settings.max_sentences,
                        causal=not lm.masked)
        if data is not None:
            rng = np.random.default_rng(item_seed(settings.seed, keys))  # the cluster's own draws
            for row in ablate_cluster(lm, neurons, data, settings, rng=rng):
                rows.append({**keys, **row, "n_sentences": data.ids.shape[0],
                             "n_targets": data.n_targets})
        if progress:
            progress(i + 1, len(clusters))
    return rows


def choose_clusters(cluster_ids: Sequence[int], max_clusters: int | None, seed: int) -> list[int]:
    """All cluster ids, or a seeded sample of `max_clusters` of them, in increasing order."""
    ids = sorted(set(cluster_ids))
    if max_clusters is None or len(ids) <= max_clusters:
        return ids
    return sorted(np.random.default_rng(seed).choice(ids, size=max_clusters, replace=False).tolist())


CONFIGURATION_KEYS = ("site", "representation", "k", "refined")


def prediction_p_value(value: float, draws: Sequence[float]) -> float:
    """One-sided p-value of H0 "`value` is one more draw of the distribution of `draws`" against
    "it is larger": Student's prediction test, t = (x - mean) / (sd sqrt(1 + 1/n)) with n - 1
    degrees of freedom, exact for normal draws. With no spread in the draws it falls back to the
    rank p-value (1 + #{draws >= x}) / (1 + n)."""
    y = np.asarray(draws, dtype=np.float64)
    n = len(y)
    if n < 2:
        raise ValueError(f"a prediction test needs at least 2 draws, got {n}")
    sd = y.std(ddof=1)
    if sd == 0:
        return float((1 + np.sum(y >= value)) / (1 + n))
    t = (value - y.mean()) / (sd * np.sqrt(1 + 1 / n))
    return float(stats.t.sf(t, df=n - 1))


def ablation_tests(runs: pl.DataFrame) -> pl.DataFrame:
    """Per cluster and baseline kind of ``activation_ablations`` rows: does ablating the cluster
    hurt more than ablating as many random neurons? :func:`prediction_p_value` of the cluster's
    ablated loss against the baseline's draws. The loss drop in percent, 100 (l - l_base) /
    l_base, is an increasing affine map of the ablated loss l (l_base is the cluster's), and the
    t statistic is invariant to it, so the test on losses is the test on drops. Table
    ``activation_ablation_tests``; dbt adjusts the p-values across a configuration's clusters."""
    keys = [*CONFIGURATION_KEYS, "cluster_id"]
    rows = []
    for key, group in runs.group_by(keys, maintain_order=True):
        cluster = group.filter(pl.col("baseline") == "cluster")["loss_ablated"]
        if cluster.is_empty():
            continue
        for kind in BASELINES:
            draws = group.filter(pl.col("baseline") == kind)["loss_ablated"].to_numpy()
            rows.append({**dict(zip(keys, key)), "baseline": kind, "n_draws": len(draws),
                         "p_value": prediction_p_value(cluster[0], draws)})
    return pl.DataFrame(rows, schema=SCHEMAS["activation_ablation_tests"])


def clusters_to_ablate(members: pl.DataFrame, tokens: pl.DataFrame, max_clusters: int | None,
                       seed: int) -> dict[tuple, list[tuple[dict, NeuronSet, set[int]]]]:
    """Per clustering configuration (site, representation, k, refined), the (keys, neurons, top
    token ids) of its clusters to ablate: all, or a seeded sample of `max_clusters`
    (:func:`choose_clusters`). `members` and `tokens` are the agglomerative rows of
    ``activation_clusters`` and ``activation_cluster_tokens``."""
    keys = list(CONFIGURATION_KEYS)
    out = {}
    for config_values, group in members.group_by(keys, maintain_order=True):
        config = dict(zip(keys, config_values))
        top = tokens.filter(*(pl.col(k) == v for k, v in config.items()))
        clusters = []
        for cid in choose_clusters(group["cluster_id"].to_list(), max_clusters, seed):
            m = group.filter(pl.col("cluster_id") == cid)
            clusters.append(({**config, "cluster_id": cid},
                             NeuronSet(m["layer"].to_numpy(), m["neuron"].to_numpy()),
                             set(top.filter(pl.col("cluster_id") == cid)["token_id"])))
        out[tuple(config_values)] = clusters
    return out
