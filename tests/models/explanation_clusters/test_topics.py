import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from models.explanation_clusters.topics import class_tfidf, cluster_topics


def test_class_tfidf_matches_the_bertopic_equation_by_hand():
    # classes x terms (apple, banana, cherry): c0 = "apple apple banana", c1 = "banana cherry".
    counts = sp.csr_matrix(np.array([[2, 1, 0], [0, 1, 1]]))
    weights, idf = class_tfidf(counts)
    # A = (3 + 2) / 2 = 2.5 words per class; tf(apple) = 2, tf(banana) = 2, tf(cherry) = 1.
    np.testing.assert_allclose(idf, np.log([1 + 2.5 / 2, 1 + 2.5 / 2, 1 + 2.5 / 1]))
    expected = np.array([[2 / 3 * np.log(2.25), 1 / 3 * np.log(2.25), 0],
                         [0, 0.5 * np.log(2.25), 0.5 * np.log(3.5)]])
    np.testing.assert_allclose(weights.toarray(), expected)


def test_topic_words_and_representatives_per_cluster():
    texts = ["apple apple banana", "apple pie", "apple tart", "banana cherry", "cherry jam",
             "cherry cherry", "the of and"]
    explanations = pl.DataFrame({"layer": [0] * 7, "neuron": list(range(7)), "explanation": texts})
    assignments = pl.DataFrame({"method": "kmeans", "filter_percentile": 0, "seed": 0,
                                "layer": 0, "neuron": list(range(7)),
                                "cluster_id": [0, 0, 0, 1, 1, 1, -1]})
    topics = cluster_topics(assignments, explanations, n_words=2, n_representative=2)
    assert topics["cluster_id"].to_list() == [0, 1]  # noise has no topic
    assert topics["topic_words"][0].to_list()[0] == "apple"
    assert topics["topic_words"][1].to_list()[0] == "cherry"
    assert topics["representative_explanations"][0].to_list()[0] == "apple apple banana"
    assert topics["representative_explanations"][1].to_list()[0] == "cherry cherry"
    assert all(len(r) == 2 for r in topics["representative_explanations"].to_list())


@pytest.mark.parametrize("texts", [["the of", "and the"], ["", ""]])
def test_clusters_of_stop_words_only_get_empty_topics(texts):
    explanations = pl.DataFrame({"layer": [0, 0], "neuron": [0, 1], "explanation": texts})
    assignments = pl.DataFrame({"method": "random", "filter_percentile": 0, "seed": 0,
                                "layer": 0, "neuron": [0, 1], "cluster_id": [0, 0]})
    topics = cluster_topics(assignments, explanations)
    assert topics["topic_words"][0].to_list() == []
    assert len(topics["representative_explanations"][0]) == len(set(texts))
