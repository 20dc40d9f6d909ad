"""Topic words and representative explanations per cluster: BERTopic's class-based TF-IDF.

c-TF-IDF (Grootendorst 2022, Eq. 1): all explanations of a cluster form one class document;
W(t, c) = tf(t, c) * log(1 + A / tf(t)), with tf(t, c) the frequency of term t in class c
(L1-normalised per class, as BERTopic does), tf(t) the frequency of t over all classes and A the
average number of words per class. The topic words of a cluster are its `n_words` highest-weight
terms. Representative explanations follow BERTopic's ``_extract_representative_docs``: up to
`n_candidates` of the cluster's explanations (seeded sample) are weighted by the same idf and the
`n_representative` most cosine-similar to the cluster's c-TF-IDF vector are kept (distinct texts).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.preprocessing import normalize

from core.schema import SCHEMAS

TOPIC_SCHEMA = SCHEMAS["cluster_topics"]


def class_tfidf(class_term: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """(c-TF-IDF weights, idf) of a classes x terms count matrix (Eq. 1 of BERTopic)."""
    tf = normalize(class_term.astype(np.float64), norm="l1", axis=1)
    term_freq = np.asarray(class_term.sum(axis=0)).ravel()
    avg_words = class_term.sum() / max(1, class_term.shape[0])
    idf = np.log(1 + avg_words / np.maximum(term_freq, 1))
    return sp.csr_matrix(tf.multiply(idf)), idf


def cluster_topics(assignments: pl.DataFrame, explanations: pl.DataFrame, n_words: int = 10,
                   n_representative: int = 3, *, n_candidates: int = 500,
                   seed: int = 0) -> pl.DataFrame:
    """Topic words and representative explanations of every non-noise cluster of every
    clustering in `assignments` (method, filter_percentile, seed, layer, neuron, cluster_id);
    `explanations` has layer, neuron, explanation."""
    texts = explanations.select("layer", "neuron", "explanation")
    if assignments.is_empty() or texts.is_empty():
        return pl.DataFrame(schema=TOPIC_SCHEMA)
    vectorizer = CountVectorizer(stop_words="english")
    try:
        doc_term = vectorizer.fit_transform(texts["explanation"].to_list()).tocsr()
        vocab = vectorizer.get_feature_names_out()
    except ValueError:  # only stop words: one never-counted term keeps the shapes valid
        doc_term, vocab = sp.csr_matrix((len(texts), 1)), np.array([""])
    row_of = texts.with_row_index("doc").select("layer", "neuron", "doc")
    rng = np.random.default_rng(seed)
    rows = []
    for key, members in (assignments.filter(pl.col("cluster_id") >= 0)
                         .join(row_of, on=["layer", "neuron"])
                         .group_by(["method", "filter_percentile", "seed"], maintain_order=True)):
        docs = members["doc"].to_numpy()
        clusters = members["cluster_id"].to_numpy()
        n_clusters = int(clusters.max()) + 1
        indicator = sp.csr_matrix((np.ones(len(docs)), (clusters, np.arange(len(docs)))),
                                  shape=(n_clusters, len(docs)))
        weights, idf = class_tfidf(indicator @ doc_term[docs])
        for c in np.unique(clusters):
            row = weights[c].toarray().ravel()
            top = [vocab[t] for t in np.argsort(-row, kind="stable")[:n_words] if row[t] > 0]
            rows.append({"method": key[0], "filter_percentile": key[1], "seed": key[2],
                         "cluster_id": int(c), "topic_words": top,
                         "representative_explanations": _representatives(
                             docs[clusters == c], doc_term, idf, row, texts=texts["explanation"],
                             n=n_representative, n_candidates=n_candidates, rng=rng)})
    return pl.DataFrame(rows, schema=TOPIC_SCHEMA)


def _representatives(docs: np.ndarray, doc_term: sp.csr_matrix, idf: np.ndarray,
                     topic: np.ndarray, *, texts: pl.Series, n: int, n_candidates: int,
                     rng: np.random.Generator) -> list[str]:
    """The `n` distinct explanations among a seeded sample of `docs` closest (cosine of
    idf-weighted term frequencies) to the cluster's c-TF-IDF vector `topic`."""
    if len(docs) > n_candidates:
        docs = np.sort(rng.choice(docs, size=n_candidates, replace=False))
    doc_weights = normalize(doc_term[docs].astype(np.float64), norm="l1").multiply(idf)
    sims = np.asarray(normalize(sp.csr_matrix(doc_weights)) @ (topic / (np.linalg.norm(topic) or 1)))
    chosen: list[str] = []
    for d in docs[np.argsort(-sims.ravel(), kind="stable")]:
        text = texts[int(d)]
        if text not in chosen:
            chosen.append(text)
        if len(chosen) == n:
            break
    return chosen
