"""The OpenAI dataset layout reader: valid files, every kind of malformed file, missing neurons."""

import json
import math

import polars as pl
import pytest

from extract.openai_explanations import neuron_record, parse_record, read_openai_explanations


def _write(root, layer, name, text):
    folder = root / str(layer)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_parse_record_reads_the_first_scored_explanation():
    assert parse_record(neuron_record(3, 7, "months of the year", 0.42)) == \
        (3, 7, "months of the year", 0.42)
    nan = json.dumps({"neuron_id": {"layer_index": 0, "neuron_index": 1},
                      "scored_explanations": [
                          {"explanation": "a", "scored_simulation": {"ev_correlation_score": math.nan}},
                          {"explanation": "b", "scored_simulation": {"ev_correlation_score": 0.9}}]})
    assert parse_record(nan) == (0, 1, "a", None)


@pytest.fixture
def dataset(tmp_path):
    """3 layers x 4 neurons, with one file of each kind of problem."""
    root = tmp_path / "explanations"
    for layer in range(3):
        for neuron in range(4):
            _write(root, layer, f"{neuron}.jsonl",
                   neuron_record(layer, neuron, f"words {layer}-{neuron}", 0.1 * neuron))
    _write(root, 0, "1.jsonl", "{not json")                                          # bad_json
    _write(root, 0, "2.jsonl", json.dumps({"neuron_id": {"layer_index": 0, "neuron_index": 2}}))
    _write(root, 1, "0.jsonl", neuron_record(1, 0, "words", None).replace('"words"', "17"))
    _write(root, 1, "1.jsonl", neuron_record(1, 5, "wrong neuron", 0.3))           # mismatch
    _write(root, 1, "01.jsonl", neuron_record(1, 1, "the same neuron again", 0.3))  # duplicate
    _write(root, 2, "3.jsonl", neuron_record(2, 3, "no score", None))              # null score
    (root / "2" / "0.jsonl").unlink()                                                # missing
    _write(root, 3, "0.jsonl", neuron_record(3, 0, "a fourth layer", 0.5))         # out of range
    _write(root, 2, "notes.txt", "stray file")                                       # unexpected
    return root


def test_reader_keeps_valid_rows_and_lists_every_problem_with_its_path(dataset):
    read = read_openai_explanations(dataset, n_layers=3, neurons_per_layer=4, workers=2)
    kept = {(r[0], r[1]) for r in read.explanations.rows()}
    assert kept == {(l, n) for l in range(3) for n in range(4)} - {
        (0, 1), (0, 2), (1, 0), (2, 0)}
    # 1.jsonl claims neuron 5 (rejected), so 01.jsonl is the one valid file of neuron (1, 1).
    assert read.explanations.filter((pl.col("layer") == 1) & (pl.col("neuron") == 1))[
        "explanation"].to_list() == ["the same neuron again"]
    problems = {(r["path"].split("explanations/")[1], r["problem"])
                for r in read.rejects.iter_rows(named=True)}
    assert problems == {
        ("0/1.jsonl", "bad_json"), ("0/2.jsonl", "missing_field"), ("1/0.jsonl", "wrong_type"),
        ("1/1.jsonl", "neuron_id_mismatch"), ("2/3.jsonl", "null_score"),
        ("3/0.jsonl", "layer_out_of_range"), ("2/notes.txt", "unexpected_path"),
        ("0/1.jsonl", "missing"), ("0/2.jsonl", "missing"), ("1/0.jsonl", "missing"),
        ("2/0.jsonl", "missing")}
    assert read.explanations.filter(pl.col("layer") == 2)["score"].null_count() == 1


def test_a_second_valid_file_for_a_neuron_is_a_duplicate(tmp_path):
    root = tmp_path / "e"
    _write(root, 0, "0.jsonl", neuron_record(0, 0, "first", 0.5))
    _write(root, 0, "00.jsonl", neuron_record(0, 0, "second", 0.5))
    read = read_openai_explanations(root, workers=1)
    assert read.explanations.rows() == [(0, 0, "first", 0.5)]  # 0.jsonl sorts first
    assert read.rejects.select("problem").to_series().to_list() == ["duplicate"]
    assert read.rejects["path"][0].endswith("0/00.jsonl")


def test_the_grid_is_inferred_when_not_given(tmp_path):
    root = tmp_path / "e"
    _write(root, 0, "0.jsonl", neuron_record(0, 0, "a", 0.5))
    _write(root, 1, "2.jsonl", neuron_record(1, 2, "b", 0.5))
    read = read_openai_explanations(root, workers=1)
    missing = read.rejects.filter(pl.col("problem") == "missing")
    assert sorted(zip(missing["layer"], missing["neuron"])) == [(0, 1), (0, 2), (1, 0), (1, 1)]


def test_a_folder_without_layers_or_a_url_is_refused_with_its_name(tmp_path):
    with pytest.raises(ValueError, match="holds no <layer>/ folders"):
        read_openai_explanations(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        read_openai_explanations(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="nwh explanations fetch"):
        read_openai_explanations("https://example.org/explanations")
