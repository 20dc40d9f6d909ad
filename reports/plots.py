"""Plots of warehouse tables, for the Dagster UI and reports."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import polars as pl  # noqa: E402


def _panels(n: int, width: float, sharey: bool = True):
    """A figure with one row of max(1, n) panels, sharing the y axis unless told otherwise."""
    return plt.subplots(1, max(1, n), figsize=(width * max(1, n), 3.2), sharey=sharey,
                        squeeze=False)


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_layer_gini(gini: pl.DataFrame, path: str | Path) -> Path:
    """Gini per layer (Fig. 2 of Ben Yaakov et al.): one panel per model/checkpoint and method,
    one line per filter percentile, and its permutation null as a dotted line in a band (the
    2.5-97.5 percentiles of the shuffles). `gini` has the columns of the fct_layer_gini mart."""
    panels = gini.select("model", "checkpoint", "method").unique().sort(["model", "checkpoint", "method"])
    percentiles = sorted(gini["filter_percentile"].unique().to_list())
    colours = {p: f"C{i}" for i, p in enumerate(percentiles)}  # the same colour in every panel
    fig, axes = _panels(panels.height, 4)
    for ax, (model, checkpoint, method) in zip(axes[0], panels.iter_rows()):
        sel = gini.filter((pl.col("model") == model) & (pl.col("checkpoint") == checkpoint)
                          & (pl.col("method") == method))
        for (p,), rows in sel.sort(["filter_percentile", "layer"]).group_by(
                "filter_percentile", maintain_order=True):
            line, = ax.plot(rows["layer"], rows["gini"], marker="o", label=f"filter {p}%",
                            color=colours[p])
            if "gini_null" in rows.columns and rows["gini_null"].null_count() < rows.height:
                ax.fill_between(rows["layer"], rows["gini_null_p025"], rows["gini_null_p975"],
                                color=line.get_color(), alpha=0.15, linewidth=0)
                ax.plot(rows["layer"], rows["gini_null"], color=line.get_color(),
                        linestyle=":", linewidth=1)
        ax.set_title(f"{model} {checkpoint}\n{method}", fontsize=9)
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Gini of neurons over clusters\n(dotted, band: permutation null)")
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def plot_cluster_variance(variances: pl.DataFrame, summary: pl.DataFrame,
                          path: str | Path) -> Path:
    """Box plots of the clusters' layer variance per method (Fig. 3 of Ben Yaakov et al.): one
    panel per model/checkpoint and filter percentile, the mean (triangle) and the size-weighted
    WAVG (dot) marked, the uniform-draw variance as a dashed line. Inputs are the
    fct_cluster_layer_variance and fct_cluster_variance_summary marts."""
    keys = ["model", "checkpoint", "filter_percentile"]
    panels = summary.select(keys).unique().sort(keys)
    fig, axes = _panels(panels.height, 4)
    for ax, (model, checkpoint, p) in zip(axes[0], panels.iter_rows()):
        where = ((pl.col("model") == model) & (pl.col("checkpoint") == checkpoint)
                 & (pl.col("filter_percentile") == p))
        rows = summary.filter(where).sort("method")
        methods = rows["method"].to_list()
        data = [variances.filter(where & (pl.col("method") == m))["layer_variance"]
                .drop_nulls().to_numpy() for m in methods]  # one-neuron clusters have none
        positions = range(1, len(methods) + 1)
        ax.boxplot(data, positions=list(positions), showfliers=False)
        ax.scatter(positions, rows["mean_variance"], marker="^", color="green", label="mean", zorder=3)
        ax.scatter(positions, rows["wavg_variance"], marker="o", color="red", label="WAVG", zorder=3)
        ax.axhline(rows["uniform_variance"][0], color="grey", linestyle="--", linewidth=1,
                   label="uniform")
        ax.set_xticks(list(positions), methods, fontsize=8)
        ax.set_title(f"{model} {checkpoint}\nfilter {p}%", fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("layer variance of a cluster")
    if summary.is_empty():
        axes[0][0].set_title("no clusterings", fontsize=9)
    else:
        axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def plot_min_variance_histogram(clusters: pl.DataFrame, path: str | Path,
                                filter_percentile: int = 0) -> Path:
    """Layer histogram of each method's minimal-variance cluster at one filter (Figs. 5-6 of
    Ben Yaakov et al.), one panel per model/checkpoint and method. `clusters` has the columns of
    the fct_min_variance_clusters mart."""
    best = clusters.filter((pl.col("variance_rank") == 1)
                           & (pl.col("filter_percentile") == filter_percentile))
    panels = best.sort(["model", "checkpoint", "method"])
    fig, axes = _panels(panels.height, 4, sharey=False)  # cluster sizes differ by 1000x
    for ax, row in zip(axes[0], panels.iter_rows(named=True)):
        counts = row["layer_histogram"]
        ax.bar(range(len(counts)), counts)
        words = ", ".join((row["topic_words"] or [])[:4])
        ax.set_title(f"{row['model']} {row['checkpoint']} {row['method']}: cluster "
                     f"{row['cluster_id']}\nvariance {row['layer_variance']:.1f}, median layer "
                     f"{row['layer_median']:g}\n{words}", fontsize=8)
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("neurons of the cluster")
    if best.is_empty():
        axes[0][0].set_title(f"no cluster large enough at filter {filter_percentile}%", fontsize=9)
    return _save(fig, path)


def plot_probe_layer_distribution(dist: pl.DataFrame, path: str | Path) -> Path:
    """Neurons of each task's minimal subset per layer (Fig. 3 of Durrani et al.): one panel per
    model/checkpoint, grouped bars per task. `dist` has the columns of fct_probe_layer_distribution."""
    panels = dist.select("model", "checkpoint").unique().sort(["model", "checkpoint"])
    fig, axes = _panels(panels.height, 4.5)
    for ax, (model, checkpoint) in zip(axes[0], panels.iter_rows()):
        sel = dist.filter((pl.col("model") == model) & (pl.col("checkpoint") == checkpoint))
        tasks = sorted(sel["task"].unique().to_list())
        width = 0.8 / max(1, len(tasks))
        for i, task in enumerate(tasks):
            rows = sel.filter(pl.col("task") == task).sort("layer")
            ax.bar(rows["layer"].to_numpy() + (i - (len(tasks) - 1) / 2) * width,
                   rows["n_neurons"].to_numpy(), width=width, label=task)
        ax.set_title(f"{model} {checkpoint}", fontsize=9)
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("neurons in the minimal subset")
    if dist.is_empty():
        axes[0][0].set_title("no probing results (the study probes nothing)", fontsize=9)
    else:
        axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def plot_cluster_positions(summary: pl.DataFrame, members: pl.DataFrame, path: str | Path,
                           per_site: int = 6) -> Path:
    """Where the neurons of activation clusters sit (Fig. 5 of Zhang et al.): layer against index
    in the layer, for the `per_site` unrefined clusters of each site with the largest ablation
    drop at the largest K. `summary` has the columns of fct_ablation_summary, `members` those of
    stg_activation_clusters."""
    chosen = (summary.filter(~pl.col("refined"))
              .filter(pl.col("k") == pl.col("k").max().over("model", "checkpoint", "site"))
              .sort(["site", "cluster_drop_pct"], descending=[False, True])
              .group_by("model", "checkpoint", "site", maintain_order=True).head(per_site))
    sites = chosen["site"].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(max(1, len(sites)), per_site, figsize=(2.6 * per_site, 2.4 * max(1, len(sites))),
                             squeeze=False)
    keys = ["model", "checkpoint", "site", "representation", "k", "refined", "cluster_id"]
    for row, site in enumerate(sites):
        of_site = members.filter(pl.col("site") == site)  # every neuron of the site is clustered
        n_layers, width = int(of_site["layer"].max()) + 1, int(of_site["neuron"].max()) + 1
        for ax, c in zip(axes[row], chosen.filter(pl.col("site") == site).iter_rows(named=True)):
            m = members.filter(pl.col("method") == "agglomerative",
                               *(pl.col(k) == c[k] for k in keys))
            ax.scatter(m["neuron"], m["layer"], s=10)
            noun = "neuron" if c["n_neurons"] == 1 else "neurons"
            ax.set_title(f"{site} {c['representation']} K={c['k']} #{c['cluster_id']}\n"
                         f"{c['n_neurons']} {noun}, drop {c['cluster_drop_pct']:+.1f}%", fontsize=8)
            ax.set_xlim(-0.5, width - 0.5)  # the whole layer, 0..width-1
            ax.set_ylim(-0.5, n_layers - 0.5)  # every layer, 0..L-1
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("index in layer", fontsize=8)
            ax.set_ylabel("layer", fontsize=8)
    for ax in axes.flat:
        if not ax.collections:
            ax.axis("off")
    return _save(fig, path)


def plot_cluster_drops(summary: pl.DataFrame, path: str | Path) -> Path:
    """Ablation drop of each ablated activation cluster against each random baseline's spread
    (Zhang et al., Table 3 as points): one panel per site and baseline, the cluster's drop on the
    y axis, the baseline's mean on the x axis with its sd as an error bar; a point above the
    diagonal hurts more than as many random neurons, filled when significant (BH q <= 0.05).
    `summary` has the columns of fct_ablation_summary."""
    baselines = ["random", "random_layer", "random_position"]
    sites = summary["site"].unique(maintain_order=True).sort().to_list() or ["mlp"]
    fig, axes = plt.subplots(len(sites), len(baselines), figsize=(3.6 * len(baselines),
                             3.2 * len(sites)), squeeze=False)
    for row, site in enumerate(sites):
        sel = summary.filter(pl.col("site") == site)
        for ax, base in zip(axes[row], baselines):
            for significant, face in ((True, "C3"), (False, "none")):
                part = sel.filter(pl.col(f"significant_{base}").fill_null(False) == significant)
                ax.errorbar(part[f"{base}_drop_pct"], part["cluster_drop_pct"],
                            xerr=part[f"{base}_drop_sd"], fmt="o", mfc=face, mec="C3",
                            ecolor="0.6", ms=5, label="q <= 0.05" if significant else "not")
            low = min([0.0, *sel[f"{base}_drop_pct"].drop_nulls(), *sel["cluster_drop_pct"].drop_nulls()])
            high = max([1.0, *sel[f"{base}_drop_pct"].drop_nulls(), *sel["cluster_drop_pct"].drop_nulls()])
            ax.plot([low, high], [low, high], color="0.5", linestyle=":", linewidth=1)
            ax.set_title(f"{site}: cluster vs {base}", fontsize=9)
            ax.set_xlabel(f"{base} drop % (mean, sd)", fontsize=8)
            ax.grid(alpha=0.3)
        axes[row][0].set_ylabel("cluster drop %")
    axes[0][0].legend(fontsize=7)
    return _save(fig, path)


def plot_universality_by_layer(by_layer: pl.DataFrame, path: str | Path) -> Path:
    """Mean best correlation with the other models against the rotated baseline per layer
    (Gurnee et al., Fig. 2a), one panel per model/checkpoint. `by_layer` has the columns of
    fct_universal_neurons_by_layer."""
    panels = by_layer.select("model", "checkpoint").unique().sort(["model", "checkpoint"])
    fig, axes = _panels(panels.height, 4.2)
    for ax, (model, checkpoint) in zip(axes[0], panels.iter_rows()):
        sel = by_layer.filter((pl.col("model") == model) & (pl.col("checkpoint") == checkpoint)
                              ).sort("layer")
        ax.plot(sel["layer"], sel["mean_corr"], marker="o", label="best correlation")
        ax.plot(sel["layer"], sel["mean_baseline"], marker="s", linestyle="--",
                label="rotated baseline")
        for layer, share in zip(sel["layer"], sel["share_universal"]):
            ax.annotate(f"{100 * share:.1f}%", (layer, 0.02), fontsize=7, ha="center")
        ax.set_ylim(0, 1)
        ax.set_title(f"{model} {checkpoint}", fontsize=9)
        ax.set_xlabel("layer (label: share universal)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean over neurons")
    axes[0][0].legend(fontsize=8)
    return _save(fig, path)


def plot_enmeshment(enmeshment: pl.DataFrame, path: str | Path) -> Path:
    """Enmeshment E against k (Golechha et al., Fig. 2): one panel per matrix and similarity,
    one line per model/checkpoint and layer (a modular variant trained with the enmeshment loss
    is another model, so it sits beside the plain one), with the shuffled-weight baseline
    dotted. `enmeshment` has the columns of fct_enmeshment."""
    panels = enmeshment.select("matrix", "similarity").unique().sort(["matrix", "similarity"])
    fig, axes = _panels(panels.height, 4)
    for ax, (matrix, similarity) in zip(axes[0], panels.iter_rows()):
        sel = enmeshment.filter((pl.col("matrix") == matrix) & (pl.col("similarity") == similarity))
        for i, ((model, checkpoint, layer), rows) in enumerate(
                sel.sort(["model", "checkpoint", "layer", "k"]).group_by(
                    ["model", "checkpoint", "layer"], maintain_order=True)):
            line, = ax.plot(rows["k"], rows["enmeshment"], marker="o", color=f"C{i % 10}",
                            label=f"{model} {checkpoint} L{layer}")
            ax.plot(rows["k"], rows["baseline_enmeshment"], color=line.get_color(),
                    linestyle=":", linewidth=1)
        ax.set_title(f"{matrix}, {similarity} similarity", fontsize=9)
        ax.set_xlabel("k (bipartite clusters)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("enmeshment E (dotted: shuffled weights)")
    if enmeshment.height:
        axes[0][0].legend(fontsize=6)
    return _save(fig, path)
