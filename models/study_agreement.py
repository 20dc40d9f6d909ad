"""Agreement between two studies' partitions of the same neurons: adjusted mutual information
(AMI, Vinh et al. 2010, arithmetic normalisation as scikit-learn's default) against a permutation
null.

H0: the two labelings are independent given their cluster sizes. Under H0 every permutation of one
labeling is equally likely, so the permutation distribution of MI is the exact null; with the
marginals fixed, AMI = (MI - E[MI]) / (mean(H(a), H(b)) - E[MI]) is an increasing affine function
of MI, so the test on MI is the test on AMI and the null's AMI values follow from the same
permutations. The p-value is (1 + #{null >= observed}) / (1 + permutations) (Phipson & Smyth 2010),
never 0; the mart adjusts it for the many pairs (Benjamini-Hochberg).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score
# E[MI] under the permutation model (Vinh et al., Eq. 24a): scikit-learn's own implementation,
# private but fixed by the pinned version; tests compare it with the public AMI.
from sklearn.metrics.cluster._expected_mutual_info_fast import expected_mutual_information
from sklearn.metrics.cluster import contingency_matrix

from core.seeds import item_seed


@dataclass(frozen=True)
class Agreement:
    n_neurons: int
    ami: float
    null_mean: float  # mean AMI over the permutations (0 in expectation)
    null_sd: float
    p_value: float
    permutations: int


def _codes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    values, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes.astype(np.int64), len(values)


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


EPS = np.finfo(np.float64).eps
CELLS_PER_PASS = 1 << 22  # contingency cells counted at once (32 MiB of float64)


def _mutual_information(a: np.ndarray, b: np.ndarray, kb: int, row: np.ndarray,
                        col: np.ndarray, n: int) -> np.ndarray:
    """MI (nats) of code vector `a` with each row of the code matrix `b` (P x n), from their
    contingency counts (Vinh et al., Eq. 1): one bincount for a pass of rows."""
    cells = len(row) * kb
    independent = np.outer(row, col).ravel().astype(np.float64)  # a_i b_j of each cell
    out = np.empty(len(b))
    step = max(1, CELLS_PER_PASS // cells)
    for start in range(0, len(b), step):
        part = b[start: start + step]
        codes = a * kb + part + np.arange(len(part))[:, None] * cells
        nij = np.bincount(codes.ravel(), minlength=len(part) * cells).reshape(len(part), cells)
        nij = nij.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(nij > 0, nij / n * np.log(n * nij / independent), 0.0)
        out[start: start + step] = terms.sum(axis=1)
    return out


def ami_permutation_test(a: np.ndarray, b: np.ndarray, *, permutations: int = 199,
                         seed: list[int] | int = 0) -> Agreement:
    """AMI of labelings `a` and `b` of the same neurons and its permutation test (module
    docstring): `permutations` shuffles of `b`, drawn from ``default_rng(seed)``."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"agreement: labelings of different shapes {a.shape} and {b.shape}")
    n = len(a)
    if n < 2:
        return Agreement(n, float("nan"), float("nan"), float("nan"), float("nan"), 0)
    ca, ka = _codes(a)
    cb, kb = _codes(b)
    row, col = np.bincount(ca, minlength=ka), np.bincount(cb, minlength=kb)
    if ka == 1 or kb == 1:  # a single cluster carries no information: nothing to test
        return Agreement(n, adjusted_mutual_info_score(a, b), float("nan"), float("nan"),
                         float("nan"), 0)
    emi = expected_mutual_information(contingency_matrix(ca, cb, sparse=True), n)
    denominator = (_entropy(row, n) + _entropy(col, n)) / 2 - emi
    # kept off zero as scikit-learn's adjusted_mutual_info_score keeps it
    denominator = (min(denominator, -EPS) if denominator < 0 else max(denominator, EPS))
    observed = _mutual_information(ca, cb[None], kb, row, col, n)[0]
    ami = float((observed - emi) / denominator)
    rng = np.random.default_rng(seed)
    null = _mutual_information(ca, np.stack([rng.permutation(cb) for _ in range(permutations)]),
                               kb, row, col, n)
    null_ami = (null - emi) / denominator
    p_value = (1 + int((null >= observed - 1e-12).sum())) / (1 + permutations)
    return Agreement(n, ami, float(null_ami.mean()), float(null_ami.std(ddof=1)), p_value,
                     permutations)


def _label(keys: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in keys.items())


def _partitions(df, keys: list[str], label: str):
    """(config label, {(layer, neuron): cluster}) per distinct value of `keys` in polars `df`."""
    for config, part in df.group_by(keys, maintain_order=True):
        yield (_label(dict(zip(keys, config))),
               dict(zip(zip(part["layer"], part["neuron"]), part[label])))


def _pair_rows(relation: str, left, right, *, layered: bool, permutations: int,
               seed: int) -> list[dict]:
    """One row per pair of partitions (and per layer when `layered`) on their common neurons."""
    rows = []
    right = list(right)
    for config_a, a in left:
        for config_b, b in right:
            common = sorted(set(a) & set(b))
            groups = ({layer: [n for n in common if n[0] == layer]
                       for layer in sorted({n[0] for n in common})} if layered else {None: common})
            for layer, neurons in groups.items():
                keys = {"relation": relation, "config_a": config_a, "config_b": config_b,
                        "layer": layer}
                result = ami_permutation_test(
                    np.array([a[n] for n in neurons]), np.array([b[n] for n in neurons]),
                    permutations=permutations, seed=item_seed(seed, keys))
                rows.append({**keys, **result.__dict__})
    return rows


def agreement_table(explanation_clusters, activation_clusters, spectral_modules, *,
                    permutations: int = 199, seed: int = 0) -> list[dict]:
    """AMI with its permutation test for every pair of (a) an explanation clustering (noise,
    cluster -1, left out) and an MLP activation clustering, over their common neurons; (b) an MLP
    activation clustering and a spectral-module split (matrix, similarity, k), per layer, since
    BSGC splits each layer on its own. Each pair's permutations are seeded by its own keys."""
    expl = explanation_clusters.filter(explanation_clusters["cluster_id"] >= 0)
    act = activation_clusters.filter(activation_clusters["site"] == "mlp")
    act_keys = ["representation", "k", "refined", "method"]
    return [
        *_pair_rows("explanation_vs_activation_clusters",
                    _partitions(expl, ["method", "filter_percentile", "seed"], "cluster_id"),
                    _partitions(act, act_keys, "cluster_id"), layered=False,
                    permutations=permutations, seed=seed),
        *_pair_rows("activation_clusters_vs_spectral_modules",
                    _partitions(act, act_keys, "cluster_id"),
                    _partitions(spectral_modules, ["matrix", "similarity", "k"], "module"),
                    layered=True, permutations=permutations, seed=seed),
    ]
