"""Each lake table's suite passes on the tables the pipeline wrote and fails on broken copies."""

import polars as pl
import pytest

from expectations.runner import row_count_equals, validate_table
from extract import lake


def _written(home, table):
    return lake.read_table(home / "lake", table, "tiny", None if table in lake.CORPUS_TABLES
                           else "checkpoint-120")


# Tables the tiny study (local explainer) legitimately writes empty: one row as a reader writes it.
ONE_ROW = {"explanation_rejects": {"path": ["/data/explanations/0/7.jsonl"], "layer": [0],
                                   "neuron": [7], "problem": ["bad_json"],
                                   "detail": ["invalid JSON: Expecting value"]}}


@pytest.mark.parametrize("table", sorted(lake.SCHEMAS))
def test_suite_passes_on_the_written_table_and_fails_on_a_duplicated_row(built, table):
    home, _, _ = built
    df = _written(home, table)
    if table in ONE_ROW:
        assert df.is_empty()
        df = lake.conform(pl.DataFrame(ONE_ROW[table]), table)
    assert validate_table(table, df).success
    broken = validate_table(table, pl.concat([df, df.head(1)]))
    assert not broken.success
    assert any("unique" in f for f in broken.failures)


def test_a_missing_column_and_an_out_of_range_value_are_named(built):
    home, _, _ = built
    moments = _written(home, "neuron_moments")
    result = validate_table("neuron_moments", moments.drop("max").with_columns(
        pl.lit(1.5).alias("frac_positive")))
    assert not result.success
    text = " ".join(result.failures)
    assert "expect_table_columns_to_match_set" in text
    assert "frac_positive" in text


def test_row_count_against_the_inputs(built):
    home, _, _ = built
    moments = _written(home, "neuron_moments")
    assert validate_table("neuron_moments", moments, [row_count_equals(moments.height)]).success
    short = validate_table("neuron_moments", moments.head(10), [row_count_equals(moments.height)])
    assert any("row_count_to_equal" in f for f in short.failures)


def test_a_nan_inside_a_list_column_is_caught():
    """List columns are checked through their count of finite values."""
    rows = {"sentence_id": [0, 0, 1], "word_index": [0, 1, 0], "site": ["mlp"] * 3,
            "activations": [[0.5, 1.0], [0.0, -2.0], [1.0, 3.0]]}
    exact = [{"type": "expect_column_values_to_be_between",
              "kwargs": {"column": "activations", "min_value": 2, "max_value": 2}}]
    good = pl.DataFrame(rows, schema_overrides={"activations": pl.List(pl.Float32)})
    assert validate_table("probe_features", good, exact).success
    bad = good.with_columns(pl.Series("activations", [[0.5, 1.0], [float("nan"), -2.0], [1.0, 3.0]],
                                      dtype=pl.List(pl.Float32)))
    result = validate_table("probe_features", bad, exact)
    assert not result.success and "activations" in " ".join(result.failures)
