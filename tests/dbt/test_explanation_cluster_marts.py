"""The explanation-cluster marts built by dbt on a lake of known random clusterings."""

import duckdb
import numpy as np
import polars as pl
import pytest

from extract import lake
from tests.dbt.build import dbt_build

N_LAYERS, PER_LAYER, CLUSTER_SIZE = 48, 100, 10


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
    dbt_build(lake_dir, tmp_path / "w.duckdb", "--select", "+fct_cluster_variance_summary",
              "--indirect-selection", "cautious")  # tests of the selected models only
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        mean, wavg, uniform, eta = con.execute(
            "select mean_variance, wavg_variance, uniform_variance, eta_squared "
            "from fct_cluster_variance_summary").fetchone()
    sigma2 = (N_LAYERS**2 - 1) / 12
    se = np.sqrt(sigma2**2 * (2 / (CLUSTER_SIZE - 1) - 1.2 / CLUSTER_SIZE) / (n // CLUSTER_SIZE))
    assert uniform == sigma2 and wavg == pytest.approx(mean)  # equal sizes
    assert abs(mean - sigma2) < 4 * se, (mean, sigma2, se)
    assert eta < 0.2  # random clusters explain little of the layer
