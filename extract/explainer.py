"""A local, deterministic, corpus-based neuron explainer, scored the way OpenAI's dataset is scored.

Explain: a neuron's explanation names the token types with the highest mean activation
(Eq. 1 of the activation-clusters paper), from the ``neuron_token_means`` table:
``fires on the tokens "May", "June", "July"``.

Simulate and score (Bills et al. 2023, "Language models can explain neurons in language models"):
a simulator that sees only the explanation text predicts each token's activation (here: 1 for a
token named in the explanation, 0 otherwise); the score is the Pearson correlation between the
neuron's true activations and the simulated ones, pooled over all tokens of held-out sequences
(the dataset's ``ev_correlation_score``). A score is NaN when either side is constant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import polars as pl
import torch

from extract.activations import SITE_MLP, stream_mlp_activations, token_strings

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def explain_neurons(token_means: pl.DataFrame, max_tokens: int = 8,
                    min_ratio: float = 0.5) -> pl.DataFrame:
    """One explanation per (layer, neuron) of a ``neuron_token_means`` frame.

    The explanation lists, by decreasing mean activation, up to `max_tokens` token types whose
    mean activation is positive and at least `min_ratio` times the neuron's largest mean
    (at least the top one). Tokens are shown stripped of surrounding white space, deduplicated.
    """
    ranked = (token_means
              .with_columns(pl.col("token").str.strip_chars().alias("word"))
              .filter(pl.col("word") != "")
              .sort(["layer", "neuron", "mean_activation", "token_id"],
                    descending=[False, False, True, False])
              .unique(["layer", "neuron", "word"], keep="first", maintain_order=True)
              .with_columns(pl.col("mean_activation").max().over(["layer", "neuron"]).alias("top"),
                            pl.int_range(pl.len()).over(["layer", "neuron"]).alias("rank"))
              .filter((pl.col("rank") == 0)
                      | ((pl.col("rank") < max_tokens) & (pl.col("mean_activation") > 0)
                         & (pl.col("mean_activation") >= min_ratio * pl.col("top")))))
    grouped = ranked.group_by(["layer", "neuron"], maintain_order=True).agg(pl.col("word"))
    return grouped.select(
        "layer", "neuron",
        pl.col("word").map_elements(format_explanation, return_dtype=pl.Utf8).alias("explanation"),
    ).sort(["layer", "neuron"])


def format_explanation(words: Iterable[str]) -> str:
    quoted = ", ".join('"' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in words)
    return f"fires on the tokens {quoted}"


def parse_explanation(explanation: str) -> list[str]:
    """The token words an explanation names (the simulator's only input)."""
    return [m.replace('\\"', '"').replace("\\\\", "\\") for m in _QUOTED.findall(explanation)]


def simulation_matrix(explanations: Sequence[str], token_strings: Sequence[str]) -> torch.Tensor:
    """Simulated activation of each token type for each explanation: (vocab, n_neurons) in {0, 1}.

    ``S[t, j] = 1`` when token t, stripped of white space, is one of the words explanation j names.
    """
    index: dict[str, list[int]] = {}
    for t, s in enumerate(token_strings):
        index.setdefault(s.strip(), []).append(t)
    sim = torch.zeros((len(token_strings), len(explanations)), dtype=torch.float32)
    for j, text in enumerate(explanations):
        for word in parse_explanation(text):
            for t in index.get(word, ()):
                sim[t, j] = 1.0
    return sim


class PooledCorrelation:
    """Streaming Pearson correlation per column between two (tokens x neurons) streams.

    Accumulates float64 sums of x, y, x^2, y^2, xy and the count;
    ``r = (n Sxy - Sx Sy) / sqrt((n Sxx - Sx^2)(n Syy - Sy^2))``.
    """

    def __init__(self, n_columns: int):
        self.n = 0
        self.sums = torch.zeros((5, n_columns), dtype=torch.float64)

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = x.double(), y.double()
        self.n += x.shape[0]
        self.sums += torch.stack([x.sum(0), y.sum(0), (x * x).sum(0), (y * y).sum(0),
                                  (x * y).sum(0)])

    def result(self) -> np.ndarray:
        sx, sy, sxx, syy, sxy = self.sums
        n = self.n
        var_x, var_y = n * sxx - sx * sx, n * syy - sy * sy
        denom = torch.sqrt(var_x.clamp(min=0) * var_y.clamp(min=0))
        r = (n * sxy - sx * sy) / denom
        r[(var_x <= 1e-12 * n * n) | (var_y <= 1e-12 * n * n)] = torch.nan
        return r.numpy()


def score_explanations(explanations: Sequence[str], token_strings: Sequence[str],
                       batches: Iterable) -> np.ndarray:
    """Score explanation j against neuron j over activation batches of held-out sequences.

    `batches` yields objects with ``acts`` (M, n_neurons) and ``token_ids`` (M,), e.g. from
    :func:`extract.activations.stream_mlp_activations`. Returns the pooled correlation per neuron.
    """
    sim = simulation_matrix(explanations, token_strings)
    corr = PooledCorrelation(len(explanations))
    for batch in batches:
        corr.update(batch.acts, sim[batch.token_ids])
    return corr.result()


def explain_and_score(bridge, token_means: pl.DataFrame, heldout: Sequence[tuple[int, str]], *,
                      max_tokens: int, batch_size: int,
                      progress: Callable[[int, int], None] | None = None) -> pl.DataFrame:
    """The local explainer end to end: explain every MLP neuron of `token_means` by its top
    tokens (:func:`explain_neurons`), then score each explanation by simulation over the MLP
    activations of the held-out (sentence_id, text) sequences (:func:`score_explanations`).
    Returns layer, neuron, explanation, score."""
    df = explain_neurons(token_means.filter(pl.col("site") == SITE_MLP), max_tokens=max_tokens)
    batches = stream_mlp_activations(bridge, heldout, batch_size, progress)
    scores = score_explanations(df["explanation"].to_list(),
                                token_strings(bridge.tokenizer, bridge.cfg.d_vocab), batches)
    return df.with_columns(pl.Series("score", scores))
