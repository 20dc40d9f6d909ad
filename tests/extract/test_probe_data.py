"""Probing data: CoNLL labels, sentence splits, word-to-subword alignment and word features."""

import numpy as np
import polars as pl
import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from extract.activations import SITE_MLP, SITE_RESID, load_bridge, site_hook_names
from extract.probe_data import (ProbeDataError, labelled_words, read_conll, split_sentences,
                                word_features, word_token_positions)


def test_read_conll_sentences_words_and_label_columns(tmp_path):
    f = tmp_path / "pos.conll"
    f.write_text("The\tDT\tfunction\ncat\tNN\tanimal\n\n\nRome\tNNP\tcity\n.\t.\tpunct\n")
    df = read_conll(f, ["pos", "sem"])
    assert df.select("sentence_id", "word_index", "word", "line", "pos", "sem").rows() == [
        (0, 0, "The", 1, "DT", "function"), (0, 1, "cat", 2, "NN", "animal"),
        (1, 0, "Rome", 5, "NNP", "city"), (1, 1, ".", 6, ".", "punct")]


@pytest.mark.parametrize("content, message", [
    ("The\tDT\ncat NN\n", "line 2"),  # no tab
    ("The\tDT\textra\n", "line 1"),  # a column too many
    ("\n\n", "holds no labelled words"),
])
def test_read_conll_names_the_bad_line(tmp_path, content, message):
    f = tmp_path / "bad.conll"
    f.write_text(content)
    with pytest.raises(ProbeDataError, match=message) as e:
        read_conll(f, ["pos"])
    assert "bad.conll" in str(e.value)


def test_read_conll_missing_or_binary_file(tmp_path):
    with pytest.raises(ProbeDataError, match="does not exist"):
        read_conll(tmp_path / "none.conll", ["pos"])
    (tmp_path / "bin.conll").write_bytes(b"\xff\xfe\x00word")
    with pytest.raises(ProbeDataError, match="not UTF-8"):
        read_conll(tmp_path / "bin.conll", ["pos"])


def test_split_is_by_sentence_seeded_and_sized():
    split = split_sentences(range(100), seed=4, dev_fraction=0.1, test_fraction=0.2)
    assert split == split_sentences(range(100), seed=4, dev_fraction=0.1, test_fraction=0.2)
    counts = {s: list(split.values()).count(s) for s in ("train", "dev", "test")}
    assert counts == {"train": 70, "dev": 10, "test": 20}
    assert split != split_sentences(range(100), seed=5, dev_fraction=0.1, test_fraction=0.2)
    with pytest.raises(ProbeDataError, match="too few"):
        split_sentences(range(2), 0, 0.1, 0.1)


def test_labelled_words_keep_sentences_whole_and_drop_null_labels(tiny_corpus):
    df = labelled_words(tiny_corpus, ["pos", "position"], seed=0, dev_fraction=0.1,
                        test_fraction=0.1, max_sentences=50)
    assert df["sentence_id"].n_unique() == 50
    assert df.group_by("sentence_id").agg(pl.col("split").n_unique())["split"].max() == 1
    assert set(df["task"]) == {"pos", "position"}
    text = tiny_corpus.with_columns(pl.lit(None, pl.Utf8).alias("pos"))
    with pytest.raises(ProbeDataError, match="no word has a label"):
        labelled_words(text, ["pos"], 0, 0.1, test_fraction=0.1)
    with pytest.raises(ProbeDataError, match="no label column"):
        labelled_words(tiny_corpus, ["chunk"], 0, 0.1, test_fraction=0.1)


def _fast(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]")


def test_a_word_the_tokenizer_drops_is_reported_with_its_sentence():
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "cat": 1}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True)  # removes control characters
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    with pytest.raises(ProbeDataError, match=r"sentence 7: word 2 '\\x07' has no token"):
        word_token_positions(_fast(tok), ["cat", "\x07", "cat"], "sentence 7")


def test_a_token_spanning_two_words_is_reported():
    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "New York": 1}, unk_token="[UNK]"))
    with pytest.raises(ProbeDataError, match="sentence 2: token 'New York' spans the words"):
        word_token_positions(_fast(tok), ["New", "York"], "sentence 2")


def test_word_positions_follow_subwords(tiny_checkpoints):
    bridge = load_bridge(tiny_checkpoints / "checkpoint-120")
    words = ["Alice", "drank", "espresso", "in", "Reykjavik", "."]
    positions = word_token_positions(bridge.tokenizer, words, "s")
    ids = bridge.tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]
    flat = [p for ps in positions for p in ps]
    assert flat == sorted(set(flat)) and set(flat) <= set(range(1, len(ids) + 1))  # after <bos>
    unassigned = set(range(1, len(ids) + 1)) - set(flat)
    assert all(bridge.tokenizer.decode([ids[p - 1]]).isspace() for p in unassigned)
    assert len(positions[4]) > 1  # an unseen word splits into several subwords


@pytest.mark.parametrize("site, width", [(SITE_MLP, 2 * 64), (SITE_RESID, 3 * 32)])
def test_word_features_equal_the_cached_activations(tiny_checkpoints, site, width):
    """The MLP neurons of both layers, or the layer outputs with the embedding output (the
    paper's 13 x 768 on BERT-base; 3 x 32 here), against TransformerLens' own cache."""
    bridge = load_bridge(tiny_checkpoints / "checkpoint-120")
    sentence = ["Alice", "drank", "espresso", "in", "Reykjavik", "."]
    words = pl.DataFrame({"sentence_id": [3] * 6, "word_index": list(range(6)), "word": sentence})
    positions = word_token_positions(bridge.tokenizer, sentence, "s")
    names = site_hook_names(site, bridge.cfg.n_layers)
    ids = torch.tensor([[bridge.tokenizer.bos_token_id,
                         *bridge.tokenizer(" ".join(sentence), add_special_tokens=False)["input_ids"],
                         bridge.tokenizer.eos_token_id]])
    with torch.no_grad():
        _, cache = bridge.run_with_cache(ids, names_filter=lambda n: n in names)
    acts = torch.cat([cache[n][0] for n in names], dim=-1)  # (positions, all neurons)
    for representative in ("last", "first", "mean"):
        keys, feats = word_features(bridge, words, representative, batch_size=2, site=site)
        assert keys["word_index"].to_list() == list(range(6)) and feats.shape == (6, width)
        for i, ps in enumerate(positions):
            pick = {"last": ps[-1:], "first": ps[:1], "mean": ps}[representative]
            np.testing.assert_allclose(feats[i].numpy(), acts[pick].mean(0).numpy(),
                                       rtol=1e-5, atol=1e-5)
