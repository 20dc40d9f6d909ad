"""Universal neurons on the tiny model against two more seeds, through the warehouse."""

import duckdb
import numpy as np

from extract import lake


def _query(home, sql):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(sql).pl()


def test_every_neuron_is_compared_with_both_other_seeds(built):
    home, _, _ = built
    u = _query(home, "select * from fct_neuron_universality")
    assert u.height == 2 * 64
    assert set(u["n_other_models"]) == {2}
    assert (u["n_tokens"] > 1000).all()
    assert u["kurtosis"].is_not_null().all()
    by_layer = _query(home, "select * from fct_universal_neurons_by_layer order by layer")
    assert by_layer["n_neurons"].to_list() == [64, 64]
    assert by_layer["n_universal"].sum() == u["is_universal"].sum()


def test_trained_seeds_share_neurons_beyond_the_rotated_baseline(built):
    """Models trained on the same data from different seeds correlate better neuron to neuron
    than with a randomly rotated basis of the same activations."""
    home, _, _ = built
    u = _query(home, "select mean_corr, mean_baseline, excess_corr from fct_neuron_universality")
    assert u["mean_corr"].mean() > u["mean_baseline"].mean()
    np.testing.assert_allclose(u["excess_corr"], u["mean_corr"] - u["mean_baseline"], atol=1e-12)


def test_best_match_is_a_real_neuron_of_the_other_model(built):
    home, _, _ = built
    raw = lake.read_table(home / "lake", "neuron_universality", "tiny", "checkpoint-120")
    assert set(raw["other_model"]) == {"tiny-seed1", "tiny-seed2"}
    assert raw["best_layer"].is_between(0, 1).all() and raw["best_neuron"].is_between(0, 63).all()


def test_training_dynamics_follow_the_checkpoints_of_a_run(tmp_path, tiny_checkpoints):
    """Both checkpoints of the tiny run materialized: one row per step, the later one with the
    neurons' correlation to their earlier selves."""
    from tests.conftest import run_tiny_study, write_study

    study = write_study(tmp_path, tiny_checkpoints, probing={"enabled": False},
                        activation_clusters={"enabled": False})
    home = tmp_path / "home"
    for checkpoint in ("checkpoint-40", "checkpoint-120"):
        assert run_tiny_study(home, study, checkpoint).success
    dynamics = _query(home, "select * from fct_training_dynamics order by step")
    assert dynamics["step"].to_list() == [40, 120]
    assert dynamics["kmeans_gini_excess"].is_not_null().all()
    assert dynamics["mean_self_corr"][0] is None
    assert 0 < dynamics["mean_self_corr"][1] <= 1
    stability = _query(home, "select * from stg_neuron_stability")
    assert stability.height == 2 * 64 and set(stability["previous_checkpoint"]) == {"checkpoint-40"}
    assert (stability["best_corr"] >= stability["self_corr"] - 1e-9).all()
