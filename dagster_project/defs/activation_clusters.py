"""Activation clusters (Zhang, Gu, Yao): token-mean representations, agglomerative clusters and
random twins per site, their ablation against random baselines, and the figure."""

import dagster as dg
import polars as pl
import torch

from dagster_project.defs.activations import loss_usable
from dagster_project.defs.shared import (empty, lake_checks, lake_specs, open_partition,
                                         partitioned_multi_asset,
                                         report_asset, write_tables)
from dagster_project.resources import NwhResource
from dagster_project.study import StudyConfig
from extract.activations import loss_inputs
from extract.probe_data import token_classes
from models.activation_clusters.ablation import (ablate_clusters, ablation_tests,
                                                clusters_to_ablate)
from models.activation_clusters.clustering import AGGLOMERATIVE, cluster_site
from models.lm_loss import LossSetup
from reports.plots import plot_cluster_drops, plot_cluster_positions

STUDY = "activation_clusters"


def runs(study: StudyConfig) -> bool:
    return study.runs_activation_clusters


_CLUSTERING = {
    "activation_clusters": "Members (layer, neuron) of every activation cluster (Zhang et al.): "
                           "per site, representation (filter, tfidf, smoothed), K and refined "
                           "flag, the agglomerative clusters (complete linkage on 1 - cosine) and "
                           "a random clustering of the same sizes (method random).",
    "activation_cluster_distances": "Per cluster: neurons, and the max and mean 1 - cosine "
                                    "distance over its pairs (null for a single neuron).",
    "activation_cluster_tokens": "Top-activating token types of each cluster: the largest "
                                 "entries of the mean of its members' representations.",
    "token_classes": "How often each token id occurs inside words of each semantic class of the "
                     "synthetic corpus, tokenized as the model sees it (empty for plain text).",
}


@partitioned_multi_asset(lake_specs(STUDY, _CLUSTERING, ["neuron_token_means", "corpus"]))
def activation_clustering(context: dg.AssetExecutionContext, nwh: NwhResource):
    """Token-mean representations, agglomerative clustering, refinement and random twins, per
    site; the smoothing uses the checkpoint's input embedding matrix as token similarity."""
    opened = open_partition(context, nwh)
    cfg = opened.study.activation_clusters
    frames = {t: empty(t) for t in _CLUSTERING}
    if not runs(opened.study):
        opened.log("activation clusters skipped: activation_clusters.enabled is false")
    else:
        bridge = opened.bridge()
        embeddings = bridge.W_E.detach().double().cpu().numpy()
        token_means = opened.read("neuron_token_means")
        parts = {t: [] for t in frames}
        for site in cfg.sites:
            opened.log(f"clustering the {site} site")
            out = cluster_site(token_means.filter(pl.col("site") == site), embeddings,
                               cfg.settings(), log=opened.log)
            for table, df in out.items():
                parts[table].append(df.with_columns(pl.lit(site).alias("site")))
        frames.update({t: pl.concat(dfs) for t, dfs in parts.items() if dfs})
        frames["token_classes"] = token_classes(bridge.tokenizer, opened.read("corpus"))
    yield from write_tables(opened, frames)


_ABLATION = {
    "activation_ablations": "Ablation of each agglomerative cluster and of its random, "
                            "random_layer and random_position baselines (several seeded draws "
                            "each): the loss on the cluster's top-activating tokens in held-out "
                            "sequences that contain them, without (loss_base) and with "
                            "(loss_ablated) the cluster's neurons set to their mean activation "
                            "over the train split (ablation: mean, the paper's) or to zero; "
                            "next-token loss for a causal model, masked-LM loss for a masked one.",
    "activation_ablation_tests": "Per ablated cluster and baseline kind, the one-sided p-value "
                                 "that the cluster hurts more than as many random neurons "
                                 "(Student's prediction test against the baseline's draws); dbt "
                                 "adjusts them across a configuration's clusters (BH).",
}


def _loss_setup(bridge, site: str, moments: pl.DataFrame | None) -> LossSetup:
    """The LM loss with `site` ablated; an ablated neuron takes its train mean from `moments`
    (``neuron_moments``), or zero when `moments` is None."""
    inputs = loss_inputs(bridge, site)
    if moments is None:
        return LossSetup(**inputs)
    n_layers, width = len(inputs["hook_names"]), inputs["width"]
    means = moments.filter(pl.col("site") == site).sort("layer", "neuron")
    if means.height != n_layers * width:
        raise dg.Failure(f"neuron_moments has {means.height} {site} neurons, the model "
                         f"{n_layers} x {width}: re-materialize the activations")
    return LossSetup(**inputs, fill=torch.from_numpy(
        means["mean"].to_numpy().reshape(n_layers, width)))


@partitioned_multi_asset(lake_specs(STUDY, _ABLATION, ["activation_clusters",
                                                      "activation_cluster_tokens", "corpus",
                                                      "neuron_moments", "checkpoint_fidelity"]))
def activation_ablations(context: dg.AssetExecutionContext, nwh: NwhResource):
    opened = open_partition(context, nwh)
    cfg = opened.study.activation_clusters
    rows: list[dict] = []
    usable = runs(opened.study) and loss_usable(opened)
    if usable:
        bridge = opened.bridge()
        heldout = opened.heldout_ids(bridge)
        agglomerative = pl.col("method") == AGGLOMERATIVE
        targets = clusters_to_ablate(opened.read("activation_clusters").filter(agglomerative),
                                     opened.read("activation_cluster_tokens").filter(agglomerative),
                                     cfg.ablation_max_clusters, cfg.seed)
        moments = opened.read("neuron_moments") if cfg.ablation == "mean" else None
        setups: dict[str, LossSetup] = {}  # one per site, read and built once
        for (site, *config), clusters in targets.items():
            if site not in setups:
                setups[site] = _loss_setup(bridge, site, moments)
            lm = setups[site]
            opened.log(f"{cfg.ablation}-ablating {len(clusters)} clusters of {site} {config} "
                       f"({'masked' if lm.masked else 'causal'} LM loss)")
            rows += ablate_clusters(lm, clusters, heldout, cfg.ablation_settings(),
                                    progress=opened.progress("ablation", "clusters", 25))
    df = (pl.DataFrame(rows).with_columns(pl.lit(cfg.ablation).alias("ablation")) if rows
          else empty("activation_ablations"))
    tests = ablation_tests(df)
    yield from write_tables(opened, {"activation_ablations": df,
                                     "activation_ablation_tests": tests}, {
        "activation_ablations": {
            "ablation": cfg.ablation, "loss_usable": usable,
            "ablated_clusters": df.filter(pl.col("baseline") == "cluster").height}})


assets = [activation_clustering, activation_ablations,
          report_asset("cluster_positions", STUDY,
                       ["fct_ablation_summary", "stg_activation_clusters"],
                       "Layer and index of the neurons of the activation clusters with the "
                       "largest ablation drop per site (Fig. 5 of Zhang et al.).",
                       draw=plot_cluster_positions),
          report_asset("cluster_drops", STUDY, ["fct_ablation_summary"],
                       "Each ablated cluster's loss drop against each random baseline's mean "
                       "and sd; filled when significant (Table 3 of Zhang et al., per cluster).",
                       draw=plot_cluster_drops)]
checks = lake_checks(STUDY)
