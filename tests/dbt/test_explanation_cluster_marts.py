"""The explanation-cluster marts built by dbt on a lake of known random clusterings."""

import os
import subprocess

import duckdb
import numpy as np
import polars as pl
import pytest

from dagster_project.defs.warehouse import DBT_DIR, DBT_EXECUTABLE, dbt_env
from extract import lake

N_LAYERS, PER_LAYER, CLUSTER_SIZE = 48, 100, 10


def _build(lake_dir, duckdb_path, select: str) -> None:
    lake.ensure_placeholders(lake_dir)
    env = {**os.environ, **dbt_env(lake_dir, duckdb_path)}
    done = subprocess.run([DBT_EXECUTABLE, "build", "--select", select,
                           "--indirect-selection", "cautious",  # tests of selected models only
                           "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]


def test_random_clusters_have_the_uniform_layer_variance(tmp_path):
    """Random clusters of 10 neurons over 48 layers: the sample variance of a cluster's layers is
    unbiased for the uniform (48^2 - 1) / 12 = 191.92, so their mean lands within sampling error
    of it (the population variance would sit at 9/10 of it, 172.7). Standard error of the mean of
    480 clusters: sqrt(var(s^2) / 480) with var(s^2) = sigma^4 (2 / (n - 1) + kurtosis_excess / n),
    the uniform's excess kurtosis about -1.2: 2.8."""
    rng = np.random.default_rng(0)
    n = N_LAYERS * PER_LAYER
    clusters = rng.permutation(np.arange(n) // CLUSTER_SIZE)
    layers = np.arange(n) // PER_LAYER
    assignments = pl.DataFrame({"method": "random", "filter_percentile": 0, "seed": 0,
                                "layer": layers, "neuron": np.arange(n) % PER_LAYER,
                                "cluster_id": clusters})
    clusterings = pl.DataFrame({"method": ["random"], "filter_percentile": [0], "seed": [0],
                                "n_clusters": [n // CLUSTER_SIZE], "n_layers": [N_LAYERS],
                                "n_neurons": [n], "n_noise": [0], "ami_layer": [0.0]})
    lake_dir = tmp_path / "lake"
    lake.write_table(lake_dir, "explanation_clusters", assignments, "m", checkpoint="c")
    lake.write_table(lake_dir, "clusterings", clusterings, "m", checkpoint="c")
    _build(lake_dir, tmp_path / "w.duckdb", "+fct_cluster_variance_summary")
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        mean, wavg, uniform, eta = con.execute(
            "select mean_variance, wavg_variance, uniform_variance, eta_squared "
            "from fct_cluster_variance_summary").fetchone()
    sigma2 = (N_LAYERS**2 - 1) / 12
    se = np.sqrt(sigma2**2 * (2 / (CLUSTER_SIZE - 1) - 1.2 / CLUSTER_SIZE) / (n // CLUSTER_SIZE))
    assert uniform == sigma2 and wavg == pytest.approx(mean)  # equal sizes
    assert abs(mean - sigma2) < 4 * se, (mean, sigma2, se)
    assert eta < 0.2  # random clusters explain little of the layer
