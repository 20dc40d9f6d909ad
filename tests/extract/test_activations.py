import numpy as np
import polars as pl
import pytest
import torch
from transformers import AutoTokenizer, GPT2LMHeadModel

from extract.activations import (ActivationAggregates, ActivationBatch, aggregate_sites,
                                 aggregate_tables, encode, extract_aggregates, load_bridge,
                                 merge_top, shard_sentences, site_hook_names, stream_activations,
                                 top_rows, TokenTypeSums)
from extract.checkpoints import CheckpointError, find_checkpoints
from extract.corpus import sentences


def _random_batches(seed=0, n_batches=4, n_neurons=6, vocab=5):
    rng = np.random.default_rng(seed)
    out = []
    for b in range(n_batches):
        m = int(rng.integers(3, 9))
        out.append(ActivationBatch(
            acts=torch.tensor(rng.normal(size=(m, n_neurons)), dtype=torch.float32),
            token_ids=torch.tensor(rng.integers(0, vocab, m)),
            sentence_ids=torch.full((m,), b), positions=torch.arange(m)))
    return out


def test_streaming_aggregates_equal_whole_corpus_statistics():
    batches = _random_batches()
    agg = ActivationAggregates(n_neurons=6, vocab_size=5, top_k=3)
    for b in batches:
        agg.update(b)
    x = torch.cat([b.acts for b in batches]).double().numpy()
    tokens = torch.cat([b.token_ids for b in batches]).numpy()
    moments = agg.moments_frame(n_layers=2).sort(["layer", "neuron"])
    np.testing.assert_allclose(moments["mean"], x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(moments["std"], x.std(0), rtol=1e-5)
    centred = x - x.mean(0)  # skew and (non-excess) kurtosis of the whole stream at once
    # batch sums are float32 (as the activations are): skew, O(1) and here near 0, to 1e-6
    np.testing.assert_allclose(moments["skew"], (centred**3).mean(0) / x.std(0) ** 3, rtol=1e-6,
                               atol=1e-6)
    np.testing.assert_allclose(moments["kurtosis"], (centred**4).mean(0) / x.var(0) ** 2, rtol=1e-6)
    np.testing.assert_allclose(moments["max"], x.max(0), rtol=1e-6)
    np.testing.assert_allclose(moments["frac_positive"], (x > 0).mean(0))
    assert moments["layer"].to_list() == [0, 0, 0, 1, 1, 1]
    strings = [f"t{i}" for i in range(5)]
    means = agg.token_means_frame(2, strings, min_count=1)
    for row in means.iter_rows(named=True):
        j = row["layer"] * 3 + row["neuron"]
        expected = x[tokens == row["token_id"], j].mean()
        assert row["mean_activation"] == pytest.approx(expected, rel=1e-6)
        assert row["token_count"] == (tokens == row["token_id"]).sum()
    top = np.sort(x, axis=0)[::-1][:3]
    np.testing.assert_allclose(agg.top_values.double().numpy(), top, rtol=1e-6)


def _aggregate(batches, top_k=3):
    agg = ActivationAggregates(n_neurons=6, vocab_size=5, top_k=top_k)
    for b in batches:
        agg.update(b)
    return agg


def _assert_same_aggregates(a: ActivationAggregates, b: ActivationAggregates):
    assert a.n == b.n
    for name in ("mean", "m2", "m3", "m4"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=1e-10, atol=1e-10)
    for name in ("max", "n_positive", "top_values", "top_sentence", "top_position"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    (ids_a, counts_a, sums_a), (ids_b, counts_b, sums_b) = (x.token_sums.by_token() for x in (a, b))
    assert torch.equal(ids_a, ids_b) and torch.equal(counts_a, counts_b)
    torch.testing.assert_close(sums_a, sums_b, rtol=1e-10, atol=1e-10)


def test_merged_shards_equal_the_unsharded_stream():
    """Shards aggregated apart and merged (in either order) give the unsharded aggregates."""
    batches = _random_batches(n_batches=7)
    whole = _aggregate(batches)
    even, odd = _aggregate(batches[0::2]), _aggregate(batches[1::2])
    _assert_same_aggregates(_aggregate(batches[0::2]).merge(odd), whole)
    _assert_same_aggregates(odd.merge(even), whole)
    _assert_same_aggregates(ActivationAggregates(6, 5, 3).merge(whole), whole)  # empty shard


def test_top_k_ties_are_broken_by_sentence_then_position_whatever_the_arrival_order():
    # one neuron: values 5, 7, 7, 7 at (sentence, position) (3,0), (2,1), (0,4), (2,0)
    values = torch.tensor([[5.0], [7.0], [7.0], [7.0]])
    sentence = torch.tensor([[3], [2], [0], [2]])
    position = torch.tensor([[0], [1], [4], [0]])
    for order in ([0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1]):
        def ids_at(idx, columns, s=sentence[order], p=position[order]):
            return s.gather(0, idx), p.gather(0, idx)  # one column: `columns` is all of them
        top, sid, pos = top_rows(values[order], ids_at, k=2)
        assert top.flatten().tolist() == [7.0, 7.0]
        assert list(zip(sid.flatten().tolist(), pos.flatten().tolist())) == [(0, 4), (2, 0)]


def test_merged_top_k_equals_a_brute_force_sort_on_tied_columns():
    """Many ties (values 0..3) in some columns only: every column's top-k is the first k of the
    rows sorted by (-value, sentence, position), from an old top-k plus a batch."""
    rng = np.random.default_rng(1)
    n, k = 6, 4
    old_values = torch.tensor(np.sort(rng.integers(0, 4, (k, n)), axis=0)[::-1].copy(),
                              dtype=torch.float32)
    old_values[:, 0] = torch.tensor([9.5, 8.5, 7.5, 6.5])  # column 0: no ties at all
    old_sentence = torch.tensor(rng.integers(0, 50, (k, n)))
    old_position = torch.tensor(rng.integers(0, 5, (k, n)))
    values = torch.tensor(rng.integers(0, 4, (7, n)), dtype=torch.float32)
    sentence, position = torch.arange(100, 107), torch.tensor(rng.integers(0, 5, 7))
    top, sid, pos = merge_top((old_values, old_sentence, old_position),
                              (values, sentence, position), k)
    for j in range(n):
        rows = [(-float(v), int(s), int(p)) for v, s, p in
                zip(old_values[:, j], old_sentence[:, j], old_position[:, j])]
        rows += [(-float(v), int(s), int(p)) for v, s, p in zip(values[:, j], sentence, position)]
        expected = sorted(rows)[:k]
        assert [(-float(v), int(s), int(p)) for v, s, p in
                zip(top[:, j], sid[:, j], pos[:, j])] == expected, j


def test_streamed_top_k_and_moments_equal_a_sort_and_float64_sums_of_the_whole_stream():
    """Integer activations (many ties) over batches whose rows arrive in scrambled sentence
    order: after the first batch fills it, the top-k is kept by the fold kernel's insertion;
    every column's top-k is the first k rows of the whole stream sorted by (-value, sentence,
    position), and the moments are the whole stream's in float64 (to rounding)."""
    rng = np.random.default_rng(7)
    n, k = 40, 5
    agg = ActivationAggregates(n_neurons=n, vocab_size=3, top_k=k)
    rows = []
    for _ in range(6):
        m = int(rng.integers(k, 30))
        acts = torch.tensor(rng.integers(-3, 4, (m, n)), dtype=torch.float32)
        sentence, position = torch.tensor(rng.permutation(50)[:m]), torch.tensor(rng.integers(0, 9, m))
        agg.update(ActivationBatch(acts, torch.tensor(rng.integers(0, 3, m)), sentence, position))
        rows.append((acts, sentence, position))
    x = torch.cat([a for a, _, _ in rows]).double().numpy()
    sentence, position = (torch.cat([r[i] for r in rows]).tolist() for i in (1, 2))
    for j in range(n):
        expected = sorted(zip((-x[:, j]).tolist(), sentence, position))[:k]
        assert list(zip((-agg.top_values[:, j].double()).tolist(), agg.top_sentence[:, j].tolist(),
                        agg.top_position[:, j].tolist())) == expected, j
    centred = x - x.mean(0)
    np.testing.assert_allclose(agg.mean.numpy(), x.mean(0), rtol=1e-12, atol=1e-12)
    for power, name in ((2, "m2"), (3, "m3"), (4, "m4")):
        np.testing.assert_allclose(getattr(agg, name).numpy(), (centred**power).sum(0),
                                   rtol=1e-10, atol=1e-9)


def test_aggregates_survive_the_arrow_round_trip():
    agg = _aggregate(_random_batches(n_batches=3))
    _assert_same_aggregates(ActivationAggregates.from_arrow(agg.to_arrow()), agg)


def test_merging_aggregates_of_different_models_is_refused():
    with pytest.raises(ValueError, match="different models"):
        ActivationAggregates(6, 5).merge(ActivationAggregates(8, 5))


def test_sharded_extraction_tables_equal_unsharded(tiny_checkpoints, tiny_corpus):
    """Two shards of the real tiny model, merged, give the unsharded tables."""
    bridge = load_bridge(find_checkpoints(tiny_checkpoints)[-1][1])
    train = sentences(tiny_corpus, "train")
    whole = extract_aggregates(bridge, train, ("mlp", "resid"), batch_size=8)
    parts = [aggregate_sites(bridge, shard_sentences(train, i, 2), ("mlp", "resid"), 8)
             for i in range(2)]
    merged = aggregate_tables(bridge, train, {site: agg.merge(parts[1][site])
                                              for site, agg in parts[0].items()})
    for name in ("moments", "token_means", "top_contexts"):
        a, b = getattr(whole, name), getattr(merged, name)
        assert a.columns == b.columns and a.height == b.height
        floats = [c for c, t in a.schema.items() if t == pl.Float64]
        assert a.drop(floats).equals(b.drop(floats)), name
        for c in floats:
            np.testing.assert_allclose(b[c].to_numpy(), a[c].to_numpy(), rtol=1e-6, atol=1e-6)


def test_shards_cover_the_corpus_once():
    corpus = [(i, f"s{i}") for i in range(10)]
    shards = [shard_sentences(corpus, i, 3) for i in range(3)]
    assert sorted(sum(map(list, shards), [])) == corpus
    with pytest.raises(ValueError, match="shard 3"):
        shard_sentences(corpus, 3, 3)


def test_token_sums_grow_with_the_types_seen_and_equal_a_dense_sum():
    """300 of 1,000 types arriving over 20 batches (the row capacity doubles past 64, 128, 256):
    sums and counts by token equal a dense vocabulary x neurons sum."""
    rng = np.random.default_rng(3)
    sums = TokenTypeSums(n_neurons=4, vocab_size=1000)
    types = rng.choice(1000, 300, replace=False)
    dense, counts = np.zeros((1000, 4)), np.zeros(1000, dtype=np.int64)
    for _ in range(20):
        ids = rng.choice(types, 40)
        acts = rng.normal(size=(40, 4)).astype(np.float32)
        sums.add(torch.tensor(ids), torch.tensor(acts).double(), torch.ones(40, dtype=torch.long))
        np.add.at(dense, ids, acts.astype(np.float64))
        np.add.at(counts, ids, 1)
    ids, got_counts, got_sums = sums.by_token(min_count=2)
    expected = np.flatnonzero(counts >= 2)
    assert ids.tolist() == expected.tolist()
    assert got_counts.tolist() == counts[expected].tolist()
    np.testing.assert_allclose(got_sums.numpy(), dense[expected], rtol=1e-12)


def test_token_sums_memory_follows_the_types_seen_not_the_vocabulary():
    """GPT-2 small's MLP shape (50,257 types x 36,864 neurons: 14.8 GB as a dense float64
    matrix): two types seen take the first 64 rows (18.9 MB), and their means are right."""
    agg = ActivationAggregates(n_neurons=12 * 3072, vocab_size=50257, top_k=2)
    acts = torch.zeros(3, 12 * 3072)
    acts[:, 5] = torch.tensor([1.0, 4.0, 2.0])
    agg.update(ActivationBatch(acts, torch.tensor([50256, 7, 50256]),
                               torch.zeros(3, dtype=torch.long), torch.arange(3)))
    assert agg.token_sums._sums.nbytes == 64 * 12 * 3072 * 8
    means = agg.token_means_frame(12, {7: "a", 50256: "<eos>"}, min_count=1)
    neuron5 = means.filter(pl.col("layer") == 0, pl.col("neuron") == 5).sort("token_id")
    assert neuron5["token_id"].to_list() == [7, 50256]
    assert neuron5["mean_activation"].to_list() == [4.0, 1.5]
    assert neuron5["token_count"].to_list() == [1, 2]


def test_frequency_threshold_drops_rare_tokens():
    agg = ActivationAggregates(n_neurons=2, vocab_size=4, top_k=1)
    agg.update(ActivationBatch(torch.ones(4, 2), torch.tensor([0, 0, 0, 1]),
                               torch.zeros(4, dtype=torch.long), torch.arange(4)))
    means = agg.token_means_frame(1, ["a", "b", "c", "d"], min_count=2)
    assert set(means["token"]) == {"a"}


def test_bridge_activations_match_huggingface_mlp_outputs(tiny_checkpoints, tiny_corpus):
    """Token means through TransformerLens equal those from hooks on the HF model's GELU."""
    name, folder = find_checkpoints(tiny_checkpoints)[-1]
    assert name == "checkpoint-120"
    sents = sentences(tiny_corpus, "train")[:40]
    result = extract_aggregates(load_bridge(folder), sents, batch_size=16, min_token_count=1)

    model = GPT2LMHeadModel.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    captured = []
    for block in model.transformer.h:
        block.mlp.act.register_forward_hook(lambda m, i, o: captured.append(o[0]))
    sums, counts = {}, {}
    special = set(tok.all_special_ids)
    for _, text in sents:
        ids = encode(tok, text)
        captured.clear()
        with torch.no_grad():
            model(torch.tensor([ids]))
        acts = torch.cat(captured, dim=-1)
        for pos, t in enumerate(ids):
            if t in special:
                continue
            sums[t] = sums.get(t, 0) + acts[pos].double()
            counts[t] = counts.get(t, 0) + 1
    d = model.config.n_inner
    for row in result.token_means.sample(50, seed=0).iter_rows(named=True):
        t, j = row["token_id"], row["layer"] * d + row["neuron"]
        assert row["token_count"] == counts[t]
        assert row["mean_activation"] == pytest.approx(float(sums[t][j] / counts[t]), abs=1e-4)
    total = sum(counts.values())
    assert set(result.moments["n_tokens"]) == {total}
    assert result.moments.height == 2 * d
    contexts = result.top_contexts
    assert contexts["context"].str.contains(r"\[\[").all()


def test_the_forward_ends_at_the_last_activation_wanted(tiny_checkpoints, tiny_corpus):
    """Both sites of a sentence equal TransformerLens' own cache, the final norm and the
    unembedding never run while streaming, and the bridge is left as it was (no hooks)."""
    bridge = load_bridge(find_checkpoints(tiny_checkpoints)[-1][1])
    text = sentences(tiny_corpus, "train")[0]
    calls = []
    for module in (bridge.ln_final, bridge.unembed):
        module.register_forward_hook(lambda m, i, o: calls.append(m))
    (batch,) = stream_activations(bridge, [text], ("mlp", "resid"))
    assert calls == []
    ids = torch.tensor([encode(bridge.tokenizer, text[1])])
    logits, cache = bridge.run_with_cache(ids)
    assert len(calls) == 2 and logits.shape[-1] == bridge.cfg.d_vocab
    real = slice(1, ids.shape[1] - 1)  # without BOS / EOS
    for site in ("mlp", "resid"):
        expected = torch.cat([cache[n][0, real] for n in site_hook_names(site, bridge.cfg.n_layers)],
                             dim=-1)
        torch.testing.assert_close(batch[site].acts, expected)


def test_missing_checkpoint_folder_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as err:
        load_bridge(tmp_path / "nowhere")
    assert "nowhere" in str(err.value)


def test_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_bridge(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no model.safetensors"):
        find_checkpoints(tmp_path)
