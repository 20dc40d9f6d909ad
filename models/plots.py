"""Plots of warehouse tables, for the Dagster UI and reports."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import polars as pl  # noqa: E402


def _panels(n: int, width: float):
    """A figure with one row of max(1, n) panels sharing the y axis."""
    return plt.subplots(1, max(1, n), figsize=(width * max(1, n), 3.2), sharey=True,
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
    one line per filter percentile. `gini` has the columns of the fct_layer_gini mart."""
    panels = gini.select("model", "checkpoint", "method").unique().sort(["model", "checkpoint", "method"])
    fig, axes = _panels(panels.height, 4)
    for ax, (model, checkpoint, method) in zip(axes[0], panels.iter_rows()):
        sel = gini.filter((pl.col("model") == model) & (pl.col("checkpoint") == checkpoint)
                          & (pl.col("method") == method))
        for (p,), rows in sel.sort("layer").group_by("filter_percentile", maintain_order=True):
            ax.plot(rows["layer"], rows["gini"], marker="o", label=f"filter {p}%")
        ax.set_title(f"{model} {checkpoint}\n{method}", fontsize=9)
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Gini of neurons over clusters")
    axes[0][0].legend(fontsize=8)
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
