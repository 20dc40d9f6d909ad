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
        for ax, c in zip(axes[row], chosen.filter(pl.col("site") == site).iter_rows(named=True)):
            m = members.filter(pl.col("method") == "agglomerative",
                               *(pl.col(k) == c[k] for k in keys))
            ax.scatter(m["neuron"], m["layer"], s=10)
            ax.set_title(f"{site} {c['representation']} K={c['k']} #{c['cluster_id']}\n"
                         f"{c['n_neurons']} neurons, drop {c['cluster_drop_pct']:+.1f}%", fontsize=8)
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("index in layer", fontsize=8)
            ax.set_ylabel("layer", fontsize=8)
    for ax in axes.flat:
        if not ax.collections:
            ax.axis("off")
    return _save(fig, path)
