import numpy as np
import polars as pl
import pytest
import torch

from extract.activations import ActivationAggregates, ActivationBatch
from extract.corpus import SEMANTIC_CLASSES, synthetic_corpus
from extract.explainer import (PooledCorrelation, explain_neurons, format_explanation,
                               parse_explanation, score_explanations)


def _word_batches(corpus: pl.DataFrame, split: str, vocab: list[str], seed: int):
    """Word-level 'tokens' of a split with two neurons: 0 fires on months (+ noise), 1 is noise."""
    df = corpus.filter(pl.col("split") == split)
    ids = torch.tensor([vocab.index(w) for w in df["word"]])
    is_month = torch.tensor((df["semantic_class"] == "month").to_numpy(), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    planted = 3.0 * is_month + 0.1 * torch.randn(len(ids), generator=gen)
    random = torch.randn(len(ids), generator=gen)
    acts = torch.stack([planted, random], dim=1)
    for start in range(0, len(ids), 500):
        sl = slice(start, start + 500)
        yield ActivationBatch(acts[sl], ids[sl], torch.zeros_like(ids[sl]), torch.arange(len(ids))[sl])


def test_planted_month_neuron_scores_high_and_random_neuron_near_zero():
    corpus = synthetic_corpus(3000, seed=0, heldout_fraction=0.3)
    vocab = sorted(set(corpus["word"]))
    agg = ActivationAggregates(n_neurons=2, vocab_size=len(vocab), top_k=3)
    for batch in _word_batches(corpus, "train", vocab, seed=1):
        agg.update(batch)
    explained = explain_neurons(agg.token_means_frame(1, vocab, min_count=5), max_tokens=12)
    month_words = set(SEMANTIC_CLASSES["month"][1])
    assert set(parse_explanation(explained["explanation"][0])) == month_words
    scores = score_explanations(explained["explanation"].to_list(), vocab,
                                _word_batches(corpus, "heldout", vocab, seed=2))
    assert scores[0] > 0.95  # 3 sigma_month / sqrt(9 sigma_month^2 + 0.01) ~ 0.99
    assert abs(scores[1]) < 0.1


def test_pooled_correlation_equals_numpy_over_all_tokens():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 4)), rng.normal(size=(300, 4))
    y[:, 0] += 2 * x[:, 0]
    corr = PooledCorrelation(4)
    for s in range(0, 300, 70):
        corr.update(torch.tensor(x[s:s + 70]), torch.tensor(y[s:s + 70]))
    expected = [np.corrcoef(x[:, j], y[:, j])[0, 1] for j in range(4)]
    np.testing.assert_allclose(corr.result(), expected, rtol=1e-9)


def test_constant_simulation_gives_nan_not_a_crash():
    corr = PooledCorrelation(1)
    corr.update(torch.tensor([[1.0], [2.0]]), torch.tensor([[0.0], [0.0]]))
    assert np.isnan(corr.result()[0])


def test_explanation_text_round_trips_quotes():
    words = ['"', "May", "a\\b", " x"]
    assert parse_explanation(format_explanation(words)) == words


def test_explanation_lists_tokens_within_ratio_of_top():
    means = pl.DataFrame({"site": "mlp", "layer": 0, "neuron": 0, "token_id": [0, 1, 2, 3],
                          "token": [" May", "May", " June", " the"], "token_count": 9,
                          "mean_activation": [2.0, 1.5, 1.1, 0.5]})
    # "May" appears twice (with and without a space) and is listed once; " the" is below half.
    assert explain_neurons(means)["explanation"][0] == 'fires on the tokens "May", "June"'


@pytest.mark.parametrize("means", [[-0.2, -0.5], [-1.0, -3.0]])
def test_neuron_with_no_positive_token_still_gets_its_top_token(means):
    df = pl.DataFrame({"site": "mlp", "layer": 0, "neuron": 0, "token_id": [0, 1],
                       "token": ["a", "b"], "token_count": 9, "mean_activation": means})
    assert explain_neurons(df)["explanation"][0] == 'fires on the tokens "a"'
