import polars as pl
import pytest

from extract.corpus import (SEMANTIC_CLASSES, position_label, sentences, synthetic_corpus,
                            text_corpus, word_suffix)


def test_same_seed_same_corpus_and_other_seed_differs():
    a, b, c = synthetic_corpus(200, seed=3), synthetic_corpus(200, seed=3), synthetic_corpus(200, seed=4)
    assert a.equals(b)
    assert not a.equals(c)


def test_words_carry_their_class_labels():
    df = synthetic_corpus(2000, seed=0)
    content = df.filter(~pl.col("semantic_class").is_in(["function", "punct"]))
    assert content["semantic_class"].n_unique() >= 20
    for cls, (pos, words) in SEMANTIC_CLASSES.items():
        rows = df.filter(pl.col("semantic_class") == cls)
        assert set(rows["word"]) <= set(words), cls
        assert set(rows["pos"]) == {pos}, cls
    months = df.filter(pl.col("word") == "September")
    assert set(months["semantic_class"]) == {"month"} and set(months["suffix"]) == {"er"}
    assert set(df.filter(pl.col("word") == ".")["semantic_class"]) == {"punct"}


def test_position_and_suffix_labels():
    assert [position_label(i, 4) for i in range(4)] == ["begin", "middle", "middle", "end"]
    assert word_suffix("Paris") == "is" and word_suffix("a") == "a"
    df = synthetic_corpus(50, seed=1)
    last = df.group_by("sentence_id").agg(pl.col("position").sort_by("word_index").last())
    assert set(last["position"]) == {"end"}


def test_split_is_by_sentence_with_the_requested_fraction():
    df = synthetic_corpus(4000, seed=0, heldout_fraction=0.25)
    per_sentence = df.group_by("sentence_id").agg(pl.col("split").n_unique())
    assert per_sentence["split"].max() == 1
    share = df.unique("sentence_id").filter(pl.col("split") == "heldout").height / 4000
    assert 0.22 < share < 0.28


def test_text_corpus_per_line_and_per_file(tmp_path):
    (tmp_path / "a.txt").write_text("the cat sat\n\nthe dog ran\n")
    (tmp_path / "b.txt").write_text("one more line")
    per_line = text_corpus(tmp_path, per="line")
    assert [t for _, t in sentences(per_line)] == ["the cat sat", "the dog ran", "one more line"]
    per_file = text_corpus(tmp_path, per="file")
    assert [t for _, t in sentences(per_file)] == ["the cat sat the dog ran", "one more line"]
    assert per_file["pos"].null_count() == len(per_file)


@pytest.mark.parametrize("setup, message", [
    (lambda p: None, "holds no .txt file"),
    (lambda p: (p / "e.txt").write_text("  \n\n"), "is empty"),
    (lambda p: (p / "x.txt").write_bytes(b"\x00\x01\x02"), "is binary"),
])
def test_text_corpus_errors_name_the_input(tmp_path, setup, message):
    setup(tmp_path)
    with pytest.raises(ValueError, match=message) as err:
        text_corpus(tmp_path)
    assert str(tmp_path) in str(err.value)


def test_missing_corpus_folder(tmp_path):
    with pytest.raises(ValueError, match="is not a folder"):
        text_corpus(tmp_path / "nope")
