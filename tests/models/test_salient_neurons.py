"""LCA algorithms (Durrani et al.) on hand-made weight matrices and planted synthetic features."""

import math

import numpy as np
import pytest
import torch

from models.salient_neurons import (LcaSettings, ProbeData, TrainSettings, accuracy_rows_per_task, analyse_task,
                            control_task_labels, grid_search, label_rankings, mass_thresholds,
                            minimal_subset, n_of_percent, neuron_ranking, train_probes,
                            weight_magnitude_order)

# D = 4 neurons, T = 2 labels. Label 0 masses 0, 1, 0, 3 (total 4); label 1 masses 1, 2, 0, 0 (3).
HAND = np.array([[0.0, 1.0], [1.0, -2.0], [0.0, 0.0], [-3.0, 0.0]])


def test_label_rankings_by_hand():
    order, share, before = label_rankings(HAND)
    assert order.tolist() == [[3, 1, 0, 2], [1, 0, 2, 3]]  # ties (zeros) by index
    np.testing.assert_allclose(share, [[0.75, 0.25, 0, 0], [2 / 3, 1 / 3, 0, 0]])
    np.testing.assert_allclose(before, [[0, 0.75, 1, 1], [0, 2 / 3, 1, 1]])


def test_neuron_ranking_by_hand():
    # Thresholds 10 %, 20 %, ... At 10 % neuron 3 (label 0) and neuron 1 (label 1) are salient,
    # both first of their label, so index order: 1, 3. Neuron 0 is salient for label 1 once
    # p > 2/3 (p = 70 %); neuron 2 has no weight and comes last.
    ranking = neuron_ranking(HAND, step=10)
    assert ranking.order.tolist() == [1, 3, 0, 2]
    np.testing.assert_allclose(ranking.entry_threshold, [0.7, 0.1, np.nan, 0.1])


def _literal_alg3_entry(weight, step):
    """Alg. 3 as written: for p = step..100, every label's top neurons holding p of its mass."""
    d, n_labels = weight.shape
    entry = np.full(d, np.nan)
    for p in mass_thresholds(step):
        for t in range(n_labels):
            w = np.abs(weight[:, t])
            cum = 0.0
            for j in sorted(range(d), key=lambda j: (-w[j], j)):
                if w[j] == 0 or cum >= p * w.sum():  # zero-weight neurons hold no mass
                    break
                if np.isnan(entry[j]):
                    entry[j] = p
                cum += w[j]
    return entry


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_neuron_ranking_matches_the_literal_algorithm(seed):
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(30, 4)) * (rng.random((30, 4)) < 0.5)  # sparse, some zero rows
    ranking = neuron_ranking(weight, step=5)
    np.testing.assert_array_equal(ranking.entry_threshold, _literal_alg3_entry(weight, 5))
    # the ordering visits neurons by entry threshold; never-salient neurons last
    entered = ranking.entry_threshold[ranking.order]
    finite = entered[~np.isnan(entered)]
    assert (np.diff(finite) >= 0).all() and np.isnan(entered[len(finite):]).all()
    assert sorted(ranking.order.tolist()) == list(range(30))


def test_weight_magnitude_and_percent_helpers():
    assert weight_magnitude_order(HAND).tolist() == [1, 3, 0, 2]  # totals 1, 3, 0, 3
    assert [n_of_percent(p, 9984) for p in (5, 20, 100)] == [500, 1997, 9984]
    assert n_of_percent(1, 30) == 1
    assert mass_thresholds(30).tolist() == [0.3, 0.6, 0.9, 1.0]


def test_batched_training_equals_training_each_probe_alone():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(700, 12)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, 700))
    settings = TrainSettings(epochs=3, batch_size=128, seed=5)
    masks = torch.tensor([[True] * 12, [True] * 6 + [False] * 6])
    both = train_probes(x, y, 3, [0.0, 1e-2], lambda2=[1e-3, 0.0], masks=masks, settings=settings)
    alone = train_probes(x, y, 3, [1e-2], lambda2=[0.0], masks=masks[1:], settings=settings)
    torch.testing.assert_close(both.weight[1], alone.weight[0], rtol=1e-5, atol=1e-6)
    assert (both.weight[1, 6:] == 0).all()  # masked-out features carry no weight


def _literal_alg1(x, y, n_labels, lambda1, lambda2, keep, settings):
    """Alg. 1 for one probe as written: autograd through the elastic-net loss, plain Adam, on the
    kept columns only, from the same seeded initialisation and batch order."""
    gen = torch.Generator().manual_seed(settings.seed)
    d = x.shape[1]
    w0 = (torch.rand(d, n_labels, generator=gen) * 2 - 1) / d ** 0.5
    b = ((torch.rand(n_labels, generator=gen) * 2 - 1) / d ** 0.5).requires_grad_(True)
    w = w0[keep].clone().requires_grad_(True)
    opt = torch.optim.Adam([w, b], lr=settings.learning_rate, foreach=False)
    for _ in range(settings.epochs):
        perm = torch.randperm(x.shape[0], generator=gen)
        for start in range(0, x.shape[0], settings.batch_size):
            idx = perm[start: start + settings.batch_size]
            loss = (torch.nn.functional.cross_entropy(x[idx][:, keep] @ w + b, y[idx])
                    + lambda1 * w.abs().sum() + lambda2 * w.pow(2).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
    full = torch.zeros(d, n_labels)
    full[keep] = w.detach()
    return full


def test_training_equals_the_literal_algorithm_1_on_the_kept_features():
    rng = np.random.default_rng(4)
    # 630 words in batches of 100: the short last batch has buffers of its own
    x = torch.from_numpy(rng.normal(size=(630, 10)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, 630))
    settings = TrainSettings(epochs=3, batch_size=100, learning_rate=1e-2, seed=2)
    full, odd, first = [True] * 10, [False, True] * 5, [True] * 3 + [False] * 7
    lambda1, lambda2 = [1e-2, 0.0, 1e-3], [0.0, 1e-2, 1e-3]
    # with a mask of every feature, and with masks whose union leaves features 4, 6, 8 out
    for masks in (torch.tensor([full, odd, first]), torch.tensor([odd, first, odd])):
        probes = train_probes(x, y, 3, lambda1, lambda2=lambda2, masks=masks, settings=settings)
        assert probes.weight.shape == (3, 10, 3)
        for g in range(3):
            literal = _literal_alg1(x, y, 3, lambda1[g], lambda2[g], masks[g], settings)
            torch.testing.assert_close(probes.weight[g], literal, rtol=1e-5, atol=1e-6)


def test_float16_features_train_as_their_float32_values():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.normal(size=(300, 8)).astype(np.float16))
    y = torch.from_numpy(rng.integers(0, 3, 300))
    settings = TrainSettings(epochs=2, batch_size=64, learning_rate=1e-2, seed=1)
    for masks in (None, torch.tensor([[True] * 8, [True, False] * 4])):
        half, single = (train_probes(features, y, 3, [1e-3, 0.0], lambda2=[0.0, 1e-3],
                                     masks=masks, settings=settings)
                        for features in (x, x.float()))
        torch.testing.assert_close(half.weight, single.weight, rtol=0, atol=0)


def _planted(n=1500, d=40, n_labels=4, planted=(7, 19, 23, 31), seed=0):
    """Features of pure noise except neuron planted[t], raised by 3 on words of label t."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_labels, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    for t, j in enumerate(planted):
        x[:, j] += 3.0 * (y == t)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    a, b = int(0.7 * n), int(0.85 * n)
    return ProbeData(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], n_labels), set(planted)


FAST = TrainSettings(epochs=40, batch_size=256, learning_rate=1e-2, seed=0)


def test_ranking_puts_planted_neurons_first_and_minimal_subset_finds_them():
    data, planted = _planted()
    grid = grid_search(data, (0.0, 1e-3), top_percent=20, settings=FAST)
    assert set(grid.ranking.order[:4].tolist()) == planted
    scores = grid.table["score"].to_numpy()
    assert grid.best == int(np.argmax(scores)) and grid.table["selected"].sum() == 1
    oracle_dev = float(grid.oracle.accuracy(data.x_dev, data.y_dev)[0])
    assert oracle_dev > 0.85
    minimal = minimal_subset(data, grid.ranking.order, oracle_dev, grid.lambdas, delta=0.02,
                             settings=FAST)
    assert minimal.n_neurons <= 6 and oracle_dev - minimal.dev_accuracy < 0.02
    # growing by 1 % of 40 neurons adds one neuron per step until the planted four are in
    assert set(grid.ranking.order[:minimal.n_neurons].tolist()) >= planted


def test_minimal_subset_stops_at_the_first_percent_within_delta():
    # Neuron 0 alone determines the label; the ranking lists it first.
    rng = np.random.default_rng(1)
    y = torch.from_numpy(rng.integers(0, 2, 600))
    x = torch.from_numpy(rng.normal(size=(600, 20)).astype(np.float32))
    x[:, 0] = 4.0 * y - 2.0
    data = ProbeData(x[:400], y[:400], x[400:500], y[400:500], x[500:], y[500:], 2)
    order = np.arange(20)
    result = minimal_subset(data, order, oracle_dev_accuracy=1.0, lambdas=(0.0, 0.0), delta=0.01,
                            step_percent=1.0, settings=FAST)
    # the first step, 1 % of 20 neurons, rounds up to one neuron: 5 % of them
    assert (result.percent, result.n_neurons, result.dev_accuracy) == (5.0, 1, 1.0)


def test_control_task_labels_follow_word_types_and_the_label_distribution():
    words = [f"w{i % 300}" for i in range(6000)]
    labels = np.array([0] * 4500 + [1] * 1500)  # empirical distribution 0.75 / 0.25
    control = control_task_labels(words, labels, 2, seed=3)
    by_type = {}
    for w, c in zip(words, control):
        assert by_type.setdefault(w, c) == c  # one label per word type
    share = np.mean(list(by_type.values()))
    assert abs(share - 0.25) < 3 * math.sqrt(0.25 * 0.75 / 300)
    assert (control_task_labels(words, labels, 2, seed=3) == control).all()


def _selectivity(x, y, control, n_labels, split=0.7):
    a = int(split * len(y))
    settings = TrainSettings(epochs=60, batch_size=256, learning_rate=5e-2, seed=0)
    accs = []
    for labels in (y, control):
        probe = train_probes(x[:a], labels[:a], n_labels, [0.0], lambda2=[0.0], settings=settings)
        accs.append(float(probe.accuracy(x[a:], labels[a:])[0]))
    return accs[0] - accs[1], accs


def test_selectivity_is_near_zero_when_the_label_is_a_function_of_the_word_type():
    # A memorising probe: the features are the one-hot word type, the label a function of it.
    rng = np.random.default_rng(0)
    n_types, n_labels = 50, 5
    types = rng.integers(0, n_types, 4000)
    label_of_type = rng.integers(0, n_labels, n_types)
    x = torch.nn.functional.one_hot(torch.from_numpy(types), n_types).float()
    y = torch.from_numpy(label_of_type[types])
    control = torch.from_numpy(control_task_labels([f"t{t}" for t in types], y.numpy(),
                                                   n_labels, seed=0))
    selectivity, (task, ctrl) = _selectivity(x, y, control, n_labels)
    assert task > 0.98 and ctrl > 0.98 and abs(selectivity) < 0.02


def test_selectivity_is_positive_when_features_carry_the_label_not_the_word():
    data, _ = _planted(n=3000, d=40, seed=2)
    x = torch.cat([data.x_train, data.x_dev, data.x_test])
    y = torch.cat([data.y_train, data.y_dev, data.y_test])
    words = [f"w{i}" for i in np.random.default_rng(0).integers(0, 60, len(y))]
    control = torch.from_numpy(control_task_labels(words, y.numpy(), 4, seed=0))
    selectivity, (task, ctrl) = _selectivity(x, y, control, 4)
    assert task > 0.9 and selectivity > 0.5


def test_analyse_task_produces_every_table_with_the_paper_shapes():
    data, planted = _planted(n=1200, d=30, planted=(3, 11, 17, 29))
    words = [f"w{i}" for i in range(1200)]
    control = control_task_labels(words, torch.cat([data.y_train, data.y_dev, data.y_test]).numpy(),
                                  4, seed=0)
    a, b = len(data.y_train), len(data.y_train) + len(data.y_dev)
    settings = LcaSettings(lambdas=(0.0, 1e-3), n_random=2, train=FAST)
    frames = analyse_task("t", data, tuple(torch.from_numpy(c) for c in
                                           (control[:a], control[a:b], control[b:])),
                          list("abcd"), settings=settings)
    acc = frames["probe_accuracy"]
    assert acc.height == 9 + 2 * 2 == accuracy_rows_per_task(2)
    top = acc.filter((acc["selection"] == "top") & (acc["mode"] == "masked"))["accuracy"][0]
    bottom = acc.filter((acc["selection"] == "bottom") & (acc["mode"] == "masked"))["accuracy"][0]
    assert top > bottom + 0.3  # Table 2: keeping the top 20 % beats keeping the bottom 20 %
    tasks = frames["probe_tasks"].row(0, named=True)
    assert tasks["majority_accuracy"] < 0.4 < tasks["oracle_dev_accuracy"]
    assert frames["probe_grid"].height == 4
    assert set(frames["probe_neuron_ranking"]["feature"].head(4)) == planted
    assert frames["probe_label_ranking"].height == 4 * 30


def test_grid_search_walks_algorithm_2s_search_list_so_ties_go_to_its_first_cell():
    """Features that carry nothing give every cell the same score (S = 0); Alg. 2's strict '>'
    then keeps its first cell, (1e-6, 1e-6), since its searchList starts at 1e-6 and ends at 0."""
    n, d = 300, 5
    y = torch.arange(n) % 3
    zeros = torch.zeros(n, d)
    data = ProbeData(zeros, y, zeros, y, zeros, y, 3)
    grid = grid_search(data, settings=TrainSettings(epochs=2, batch_size=128, seed=0))
    assert grid.table["lambda1"].to_list()[:8] == [1e-6] * 7 + [1e-5]
    assert grid.table["lambda2"].to_list()[-1] == 0.0
    assert set(grid.table["score"].to_list()) == {0.0}
    assert grid.lambdas == (1e-6, 1e-6)
