"""Activation-based neuron clusters (Zhang, Gu, Yao: *Semantically Interpretable Neuron Clusters
in BERT*, Sec. 5).

A neuron is represented by its mean activation on each token type (Eq. 1, the lake's
``neuron_token_means``), over the token types seen at least ``min_token_count`` times (the
frequency filter; special tokens were dropped at extraction). Variants (Sec. 5.2):

* ``filter``: the filtered token-mean vector itself;
* ``tfidf``: TF-IDF with neurons as documents and token types as terms (:func:`tfidf`);
* ``smoothed``: semantic smoothing, Eq. 2 (:func:`smooth`), with the model's own input embedding
  matrix as the token similarity (the paper used fastText, which is not available here).

Vectors are normalised to unit length, clustered by agglomerative clustering with complete
linkage on 1 - cosine similarity (Sec. 5.3), and optionally refined (:func:`refine`). Each
clustering is paired with a ``random`` clustering of the same cluster sizes, the baseline of the
concept-purity and distance marts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import fastcluster
import numpy as np
import polars as pl
from scipy.cluster.hierarchy import cut_tree
from scipy.sparse import csr_matrix

from core.seeds import item_seed

REPRESENTATIONS = ("filter", "tfidf", "smoothed")
AGGLOMERATIVE, RANDOM = "agglomerative", "random"


@dataclass(frozen=True)
class ActivationClusterSettings:
    """Defaults are the paper's: K = 50 and 200, lambda = 0.5 over 5 neighbours, refinement
    threshold 0.6."""

    representations: tuple[str, ...] = REPRESENTATIONS
    ks: tuple[int, ...] = (50, 200)
    refine: bool = True  # also cluster the refined variant of every clustering
    min_token_count: int = 5
    smoothing_lambda: float = 0.5
    smoothing_neighbours: int = 5
    refine_threshold: float = 0.6
    top_tokens: int = 10
    seed: int = 0

    def __post_init__(self):
        unknown = sorted(set(self.representations) - set(REPRESENTATIONS))
        if unknown or not self.representations:
            raise ValueError(f"activation_clusters.representations {unknown or '[]'}: choose "
                             f"from {list(REPRESENTATIONS)}")
        if not self.ks or any(k < 2 for k in self.ks) or len(set(self.ks)) != len(self.ks):
            raise ValueError(f"activation_clusters.ks must be distinct integers >= 2, got {self.ks}")
        if self.smoothing_neighbours < 1 or self.top_tokens < 1 or self.min_token_count < 1:
            raise ValueError("activation_clusters.smoothing_neighbours, top_tokens and "
                             "min_token_count must be >= 1")
        if self.refine_threshold <= 0 or self.smoothing_lambda < 0:
            raise ValueError("activation_clusters.refine_threshold must be > 0 and "
                             "smoothing_lambda >= 0")


@dataclass
class TokenMatrix:
    """R[n, v]: mean activation of neuron n (rows of `neurons`) on token type v (rows of `tokens`)."""

    values: np.ndarray  # (N, V) float64
    neurons: pl.DataFrame  # layer, neuron
    tokens: pl.DataFrame  # token_id, token


def token_matrix(token_means: pl.DataFrame, min_token_count: int) -> TokenMatrix:
    """Pivot one site's ``neuron_token_means`` into R (Eq. 1), keeping token types seen at least
    `min_token_count` times (the frequency filter)."""
    kept = token_means.filter(pl.col("token_count") >= min_token_count)
    if kept.is_empty():
        raise ValueError(f"no token type occurs at least {min_token_count} times; lower "
                         "activation_clusters.min_token_count or use a larger corpus")
    neurons = kept.select("layer", "neuron").unique().sort("layer", "neuron")
    tokens = kept.select("token_id", "token").unique("token_id").sort("token_id")
    wide = (kept.pivot(on="token_id", index=["layer", "neuron"], values="mean_activation")
                .sort("layer", "neuron"))
    values = wide.select([str(t) for t in tokens["token_id"]]).to_numpy().astype(np.float64)
    if np.isnan(values).any():
        raise ValueError("neuron_token_means is not complete: some (neuron, token) pairs are missing")
    return TokenMatrix(values, neurons, tokens)


def tfidf(values: np.ndarray) -> np.ndarray:
    """TF-IDF with neurons as documents (Zhang et al. Sec. 5.2).

    The paper does not say how negative activations enter; here the term frequency is the
    positive part, tf = max(R, 0), the document frequency of token v is the number of neurons
    with R[:, v] > 0, and idf = ln((1 + N) / (1 + df)) + 1 (scikit-learn's smoothed idf), so the
    result equals ``TfidfTransformer(norm=None).fit_transform(max(R, 0))``.
    """
    tf = np.maximum(values, 0.0)
    df = (tf > 0).sum(axis=0)
    idf = np.log((1 + tf.shape[0]) / (1 + df)) + 1
    return tf * idf


def nearest_tokens(embeddings: np.ndarray, n_neighbours: int) -> tuple[np.ndarray, np.ndarray]:
    """For each row (token), the indices and cosine similarities of its `n_neighbours` most
    similar other rows."""
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    unit = embeddings / np.where(norms > 0, norms, 1.0)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    n = min(n_neighbours, sim.shape[0] - 1)
    idx = np.argsort(-sim, axis=1, kind="stable")[:, :n]
    return idx, np.take_along_axis(sim, idx, axis=1)


def smooth(values: np.ndarray, embeddings: np.ndarray, lam: float = 0.5,
           n_neighbours: int = 5) -> np.ndarray:
    """Semantic smoothing, Eq. 2: R[:, v] += lam / n * sum_{i in top-n(v)} sim(t_i, t_v) R[:, i].

    `embeddings` has one row per column of `values`; neighbours are the kept token types (R is
    defined only there), the token itself excluded, and every column is updated from the
    unsmoothed R (the update is simultaneous, not in vocabulary order).
    """
    idx, sim = nearest_tokens(embeddings, n_neighbours)
    n_tokens = values.shape[1]
    # S[i, v] = sim(t_i, t_v) for i among the neighbours of v; the update is R @ S.
    s = csr_matrix((sim.ravel(), (idx.ravel(), np.repeat(np.arange(n_tokens), idx.shape[1]))),
                   shape=(n_tokens, n_tokens))
    return values + lam / n_neighbours * (s.T @ values.T).T


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit Euclidean length (all-zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def representation(matrix: TokenMatrix, kind: str, embeddings: np.ndarray | None,
                   settings: ActivationClusterSettings) -> np.ndarray:
    """Unit-length neuron vectors of one variant (`filter`, `tfidf` or `smoothed`)."""
    if kind == "filter":
        x = matrix.values
    elif kind == "tfidf":
        x = tfidf(matrix.values)
    elif kind == "smoothed":
        if embeddings is None:
            raise ValueError("the smoothed representation needs token embeddings")
        x = smooth(matrix.values, embeddings[matrix.tokens["token_id"].to_numpy()],
                   settings.smoothing_lambda, settings.smoothing_neighbours)
    else:
        raise ValueError(f"unknown representation {kind!r}; choose from {list(REPRESENTATIONS)}")
    return unit_rows(x)


def cosine_distances_condensed(x: np.ndarray, block_entries: int = 1 << 23) -> np.ndarray:
    """1 - cosine similarity of every row pair, in scipy's condensed order (what
    ``pdist(x, "cosine")`` returns, equal to it within a few ulps): the upper triangle by row
    blocks of one matrix product each, so it uses every core and no more than one block of
    ``block_entries`` float64 beside the result."""
    n = len(x)
    out = np.empty(n * (n - 1) // 2)
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    rows = max(1, block_entries // max(n, 1))
    pos = 0
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        cos = x[start:stop] @ x[start:].T
        cos /= norms[start:stop, None]
        cos /= norms[None, start:]
        for i in range(start, stop):
            tail = cos[i - start, i - start + 1:]
            np.subtract(1.0, tail, out=out[pos:pos + len(tail)])
            pos += len(tail)
    return out


def complete_linkage(x: np.ndarray) -> np.ndarray:
    """The complete-linkage merge tree (scipy's linkage matrix format) on 1 - cosine similarity:
    scipy's tree (tested), from distances computed by matrix products on every core, merged by
    fastcluster's NN-chain inside that one distance vector. ``fastcluster.linkage`` copies its
    input first (``array(X)``, even with ``preserve_input=False``), so its C routine
    ``linkage_wrap`` is called directly: one condensed matrix (5.1 GiB at 36,864 neurons), not
    two."""
    n = len(x)
    tree = np.empty((max(n - 1, 0), 4))
    if n > 1:
        fastcluster.linkage_wrap(n, cosine_distances_condensed(x), tree,
                                 fastcluster.mthidx["complete"])
    return tree


def cut(tree: np.ndarray, k: int) -> np.ndarray:
    """Labels 0..k-1 of exactly `k` clusters, by undoing the last k - 1 merges of `tree`, so that
    tied merge heights (many orthogonal TF-IDF vectors are all at distance 1) cannot collapse
    the cut as a height threshold would."""
    n = tree.shape[0] + 1
    if k > n:
        raise ValueError(f"cannot make K = {k} clusters of {n} neurons; lower "
                         "activation_clusters.ks")
    return cut_tree(tree, n_clusters=k).ravel()


def agglomerative(x: np.ndarray, k: int) -> np.ndarray:
    """Complete-linkage agglomerative clustering on 1 - cosine similarity, cut at exactly `k`
    clusters (Sec. 5.3). Rows must be non-zero."""
    return cut(complete_linkage(x), k)


def refine(x: np.ndarray, members: np.ndarray, threshold: float) -> np.ndarray:
    """Cluster refinement (Sec. 5.3): repeatedly drop the member farthest (Euclidean) from the
    mean of the remaining members and recompute the mean, until the largest distance is below
    `threshold` (ties: the first such member). Returns the kept members, in their original order.

    Incremental: with s the sum of the kept rows and d_i = x_i . s, the squared distance is
    |x_i|^2 - 2 d_i / n + |s|^2 / n^2, and dropping row j updates s and d with one
    matrix-vector product, so each step is O(n V) without copying the cluster.
    """
    members = np.asarray(members)
    rows = x[members].astype(np.float64)
    alive = np.ones(len(members), dtype=bool)
    total = rows.sum(axis=0)
    dots = rows @ total
    norms = (rows * rows).sum(axis=1)
    n = len(members)
    while n > 1:
        dist2 = np.where(alive, norms - 2 * dots / n + (total @ total) / n**2, -np.inf)
        largest = dist2.max()
        if np.sqrt(max(largest, 0.0)) < threshold:
            break
        far = int(np.argmax(dist2 >= largest - 1e-12 * max(1.0, largest)))  # first of ties
        alive[far] = False
        total = total - rows[far]
        dots -= rows @ rows[far]
        n -= 1
    return members[alive]


def within_cluster_distances(x: np.ndarray, members: np.ndarray,
                             block: int = 2048) -> tuple[float, float] | None:
    """(max, mean) of 1 - cosine similarity over the pairs of a cluster of unit-length rows
    (Sec. 6.1); None for a single neuron. The mean comes from |sum of rows|^2 (O(n V)); the
    max from the smallest off-diagonal entry of the Gram matrix, taken in row blocks."""
    n = len(members)
    if n < 2:
        return None
    rows = x[members].astype(np.float64)
    total = rows.sum(axis=0)
    mean_cos = (total @ total - (rows * rows).sum()) / (n * (n - 1))
    min_cos = np.inf
    for start in range(0, n, block):
        gram = rows[start:start + block] @ rows.T
        np.fill_diagonal(gram[:, start:start + block], np.inf)
        min_cos = min(min_cos, float(gram.min()))
    return 1.0 - min_cos, float(1.0 - mean_cos)
def random_clusters(sizes: Sequence[int], n_neurons: int, rng: np.random.Generator
                    ) -> list[np.ndarray]:
    """Disjoint random clusters with the given sizes, drawn from `n_neurons` neurons."""
    order = rng.permutation(n_neurons)
    bounds = np.cumsum([0, *sizes])
    return [np.sort(order[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]


def _frames_for(x: np.ndarray, clusters: list[np.ndarray], matrix: TokenMatrix, top_n: int,
                *, keys: dict) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Membership, distance and top-token rows of one clustering (cluster ids 0..)."""
    members, distances, tokens = [], [], []
    token_ids = matrix.tokens["token_id"].to_numpy()
    token_text = matrix.tokens["token"].to_list()
    for cid, rows in enumerate(clusters):
        if len(rows) == 0:
            continue
        members.append(pl.DataFrame({"cluster_id": cid, "row": rows}))
        d = within_cluster_distances(x, rows)
        distances.append({"cluster_id": cid, "n_neurons": len(rows),
                          "max_distance": d[0] if d else None,
                          "mean_distance": d[1] if d else None})
        centre = x[rows].mean(axis=0)  # the cluster representation (Sec. 5.4)
        top = np.argsort(-centre, kind="stable")[:top_n]
        tokens.extend({"cluster_id": cid, "rank": r + 1, "token_id": int(token_ids[v]),
                       "token": token_text[v], "activation": float(centre[v])}
                      for r, v in enumerate(top))
    neurons = matrix.neurons.with_row_index("row").with_columns(pl.col("row").cast(pl.Int64))
    member_df = (pl.concat(members).with_columns(pl.col("row").cast(pl.Int64))
                 .join(neurons, on="row").drop("row"))
    lit = [pl.lit(v).alias(k) for k, v in keys.items()]
    return (member_df.with_columns(lit), pl.DataFrame(distances).with_columns(lit),
            pl.DataFrame(tokens).with_columns(lit))


def cluster_site(token_means: pl.DataFrame, embeddings: np.ndarray | None,
                 settings: ActivationClusterSettings,
                 log: Callable[[str], None] = lambda _: None) -> dict[str, pl.DataFrame]:
    """Every clustering of one site: for each representation and K, the agglomerative clusters,
    their refined variant (``settings.refine``), and a random clustering of the same sizes for
    each (seeded by its own representation, K and refined flag, so it does not depend on the
    other configurations). Returns the frames ``activation_clusters``, ``activation_cluster_distances`` and
    ``activation_cluster_tokens`` (without the site column)."""
    matrix = token_matrix(token_means, settings.min_token_count)
    out: dict[str, list[pl.DataFrame]] = {"activation_clusters": [],
                                          "activation_cluster_distances": [],
                                          "activation_cluster_tokens": []}
    for kind in settings.representations:
        x = representation(matrix, kind, embeddings, settings)
        nonzero = np.flatnonzero(np.linalg.norm(x, axis=1) > 0)
        log(f"{kind}: {matrix.values.shape[0]} neurons x {matrix.values.shape[1]} token types, "
            f"{len(nonzero)} with a non-zero representation")
        tree = complete_linkage(x[nonzero])
        for k in settings.ks:
            labels = cut(tree, k)
            clusters = [nonzero[labels == c] for c in range(labels.max() + 1)]
            variants = [(False, clusters)]
            if settings.refine:
                variants.append((True, [refine(x, c, settings.refine_threshold) for c in clusters]))
            for refined, found in variants:
                twin_seed = item_seed(settings.seed, {"representation": kind, "k": k,
                                                      "refined": refined})
                random = random_clusters([len(c) for c in found], len(nonzero),
                                         np.random.default_rng(twin_seed))
                for method, cl in ((AGGLOMERATIVE, found), (RANDOM, [nonzero[r] for r in random])):
                    keys = {"representation": kind, "k": k, "refined": refined, "method": method}
                    frames = _frames_for(x, cl, matrix, settings.top_tokens, keys=keys)
                    for name, df in zip(out, frames):
                        out[name].append(df)
    return {name: pl.concat(dfs, how="diagonal_relaxed") for name, dfs in out.items()}
