import polars as pl
import pytest

from extract.explanation_sources import read_explanation_table


def _write(tmp_path, df, name="e.csv"):
    path = tmp_path / name
    df.write_csv(path) if name.endswith(".csv") else df.write_parquet(path)
    return path


def test_csv_and_parquet_read_sorted(tmp_path):
    df = pl.DataFrame({"layer": [1, 0], "neuron": [0, 3], "explanation": ["b", "a"],
                       "score": [0.2, None]})
    for name in ("e.csv", "e.parquet"):
        out = read_explanation_table(_write(tmp_path, df, name))
        assert out.rows() == [(0, 3, "a", None), (1, 0, "b", 0.2)]


@pytest.mark.parametrize("df, message", [
    (pl.DataFrame({"layer": ["zero"], "neuron": [0], "explanation": ["x"], "score": [0.1]}),
     "wrong type"),
    (pl.DataFrame({"layer": [0], "neuron": [0], "explanation": ["x"], "score": ["high"]}),
     "wrong type"),
    (pl.DataFrame({"layer": [0], "neuron": [0], "score": [0.1]}), r"lacks column\(s\) \['explanation'\]"),
    (pl.DataFrame({"layer": [0, 0], "neuron": [1, 1], "explanation": ["x", "y"], "score": [0.1, 0.2]}),
     r"repeats \(layer, neuron\) \(0, 1\)"),
    (pl.DataFrame({"layer": [-1], "neuron": [0], "explanation": ["x"], "score": [0.1]}), "negative"),
])
def test_bad_records_are_named(tmp_path, df, message):
    path = _write(tmp_path, df)
    with pytest.raises(ValueError, match=message) as err:
        read_explanation_table(path)
    assert str(path) in str(err.value)
