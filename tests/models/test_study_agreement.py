import numpy as np
import polars as pl
import pytest
from sklearn.metrics import adjusted_mutual_info_score

from models.study_agreement import agreement_table, ami_permutation_test


def test_planted_agreement_gives_ami_near_one_and_the_smallest_p():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 8, size=600)
    b = a.copy()
    flip = rng.random(600) < 0.05  # 5 % of the neurons relabelled at random
    b[flip] = rng.integers(0, 8, size=flip.sum())
    result = ami_permutation_test(a, b, permutations=99, seed=1)
    assert result.ami == pytest.approx(adjusted_mutual_info_score(a, b))
    assert result.ami > 0.85
    assert result.p_value == pytest.approx(1 / 100)  # no permutation reaches it


def test_independent_labels_give_ami_near_zero_and_a_null_centred_on_it():
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 10, size=800), rng.integers(0, 6, size=800)
    result = ami_permutation_test(a, b, permutations=199, seed=3)
    assert abs(result.ami) < 0.01
    assert abs(result.null_mean) < 3 * result.null_sd / np.sqrt(199) + 1e-3
    assert result.p_value > 0.01


def test_the_null_is_the_ami_of_shuffled_labels():
    """The affine map from MI to AMI gives the same null values as scikit-learn's AMI of each
    permuted labeling (the same draws, recomputed independently)."""
    rng = np.random.default_rng(4)
    a, b = rng.integers(0, 5, size=300), rng.integers(0, 4, size=300)
    result = ami_permutation_test(a, b, permutations=49, seed=7)
    _, codes = np.unique(b, return_inverse=True)
    draws = np.random.default_rng(7)
    direct = [adjusted_mutual_info_score(a, draws.permutation(codes)) for _ in range(49)]
    assert result.null_mean == pytest.approx(np.mean(direct), abs=1e-9)
    assert result.null_sd == pytest.approx(np.std(direct, ddof=1), abs=1e-9)
    assert result.p_value == pytest.approx((1 + sum(d >= result.ami - 1e-12 for d in direct)) / 50)


def test_agreement_table_pairs_partitions_on_common_neurons():
    """Explanation noise is left out; spectral modules are compared layer by layer; a pair's
    result does not depend on which other partitions are present."""
    neurons = [(layer, n) for layer in range(2) for n in range(40)]
    planted = [n % 4 for _, n in neurons]
    expl = pl.DataFrame({"method": "kmeans", "filter_percentile": 0, "seed": 0,
                         "layer": [l for l, _ in neurons], "neuron": [n for _, n in neurons],
                         "cluster_id": [-1 if n < 4 else c for (_, n), c in zip(neurons, planted)]})
    act = pl.DataFrame({"site": "mlp", "representation": "filter", "k": 4, "refined": False,
                        "method": "agglomerative", "cluster_id": planted,
                        "layer": [l for l, _ in neurons], "neuron": [n for _, n in neurons]})
    modules = pl.DataFrame({"layer": [l for l, _ in neurons], "matrix": "mlp_in",
                            "similarity": "weight", "k": 4, "neuron": [n for _, n in neurons],
                            "module": planted})
    rows = agreement_table(expl, act, modules, permutations=19, seed=0)
    by_relation = {(r["relation"], r["layer"]): r for r in rows}
    both = by_relation[("explanation_vs_activation_clusters", None)]
    assert both["n_neurons"] == 72 and both["ami"] == pytest.approx(1.0)
    assert {k[1] for k in by_relation if k[0] == "activation_clusters_vs_spectral_modules"} == {0, 1}
    assert all(r["n_neurons"] == 40 for r in rows if r["layer"] is not None)
    other = act.with_columns(pl.lit(50).alias("k"))
    more = agreement_table(expl, pl.concat([other, act]), modules, permutations=19, seed=0)
    assert [r for r in more if "k=4 " in r["config_b"] or "k=4 " in r["config_a"]] == rows
