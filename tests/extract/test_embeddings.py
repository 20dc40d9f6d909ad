"""Explanation embeddings: the vectors the explanation study clusters."""

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from extract.embeddings import embed_texts, embedding_model_path, load_embedder

TEXTS = ["words related to music and songs", "the token 'the' after a comma",
         "mentions of cities in Europe", "numbers or dates in lists", "the letter a in names",
         "phrases about food, especially fruit", "verbs following pronouns",
         "references to functions and loops in code", "words related to music and songs"]


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()


@pytest.fixture(scope="module")
def reference():
    # the library's own call with its own defaults (fused SDPA attention, batches of 32), one
    # text at a time so that no padding is involved: an independent reference for our loading,
    # batching and deduplication
    model = SentenceTransformer(str(embedding_model_path()), device="cpu", local_files_only=True)
    return np.stack([model.encode(t, normalize_embeddings=True) for t in TEXTS])


def test_embeddings_are_the_librarys_unit_vectors(embedder, reference):
    vectors = embed_texts(embedder, TEXTS, batch_size=4)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    assert (vectors * reference).sum(1).min() > 1 - 1e-6
    np.testing.assert_array_equal(vectors[0], vectors[-1])  # identical texts, one vector


def test_bfloat16_embeddings_stay_within_cosine_0_999_of_float32(embedder, reference):
    vectors = embed_texts(embedder, TEXTS, dtype=torch.bfloat16)
    cosine = (vectors * reference).sum(1)
    assert cosine.min() >= 0.999
    assert cosine.min() < 1 - 1e-7  # it did run in bfloat16: the vectors are not float32's
    assert next(embedder.parameters()).dtype == torch.float32  # the weights are left as they were
