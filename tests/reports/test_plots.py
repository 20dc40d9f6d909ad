"""The figures: axes a reader can trust, and one figure per study drawn from its mart's columns."""

import polars as pl
import pytest

from reports import plots


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions save, before they are closed."""
    saved = []
    original = plots._save

    def keep(fig, path):
        saved.append(fig)
        return original(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return saved


def _summary(**overrides) -> pl.DataFrame:
    row = {"model": "m", "checkpoint": "c", "site": "mlp", "representation": "filter", "k": 50,
           "refined": False, "cluster_id": 7, "n_neurons": 1, "cluster_drop_pct": 2.5,
           "random_drop_pct": 0.5, "random_drop_sd": 0.2, "significant_random": True,
           "random_layer_drop_pct": 0.6, "random_layer_drop_sd": 0.1,
           "significant_random_layer": False, "random_position_drop_pct": 0.4,
           "random_position_drop_sd": 0.3, "significant_random_position": None}
    return pl.DataFrame([{**row, **overrides}])


def test_cluster_positions_always_span_every_layer_and_index(figures, tmp_path):
    """A one-neuron cluster in layer 2 of a 4-layer, 512-wide site: axes 0..3 and 0..511, and
    '1 neuron' in the title (not an axis around the lone point, not '1 neurons')."""
    members = pl.DataFrame({"model": "m", "checkpoint": "c", "site": "mlp",
                            "representation": "filter", "k": 50, "refined": False,
                            "method": "agglomerative",
                            "cluster_id": [7, 1, 1], "layer": [2, 0, 3], "neuron": [10, 0, 511]})
    path = plots.plot_cluster_positions(_summary(), members, tmp_path / "p.png")
    assert path.stat().st_size > 0
    ax = figures[0].axes[0]
    assert ax.get_xlim() == (-0.5, 511.5) and ax.get_ylim() == (-0.5, 3.5)
    assert "1 neuron," in ax.get_title()


def test_cluster_drops_mark_each_baseline(figures, tmp_path):
    plots.plot_cluster_drops(_summary(), tmp_path / "d.png")
    titles = [ax.get_title() for ax in figures[0].axes]
    assert titles == ["mlp: cluster vs random", "mlp: cluster vs random_layer",
                      "mlp: cluster vs random_position"]


def test_universality_and_enmeshment_figures_draw_the_paper_comparison(figures, tmp_path):
    by_layer = pl.DataFrame({"model": "m", "checkpoint": "c", "site": "mlp", "layer": [0, 1],
                             "n_neurons": 512, "n_universal": [3, 0],
                             "share_universal": [3 / 512, 0.0], "mean_corr": [0.6, 0.4],
                             "mean_baseline": [0.3, 0.25], "mean_excess_corr": [0.3, 0.15]})
    plots.plot_universality_by_layer(by_layer, tmp_path / "u.png")
    [best, baseline] = figures[0].axes[0].get_lines()
    assert list(best.get_ydata()) == [0.6, 0.4] and list(baseline.get_ydata()) == [0.3, 0.25]
    enmeshment = pl.DataFrame({"model": ["plain", "plain", "modular", "modular"],
                               "checkpoint": "c", "layer": 2, "matrix": "mlp_in",
                               "similarity": "weight", "k": [2, 3, 2, 3],
                               "enmeshment": [0.6, 0.5, 1.0, 0.99],
                               "baseline_enmeshment": [0.58, 0.45, 0.58, 0.45]})
    plots.plot_enmeshment(enmeshment, tmp_path / "e.png")
    labels = [line.get_label() for line in figures[1].axes[0].get_lines()]
    assert "modular c L2" in labels and "plain c L2" in labels
