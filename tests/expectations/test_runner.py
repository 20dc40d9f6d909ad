"""Each lake table's suite passes on the tables the pipeline wrote and fails on broken copies."""

import polars as pl
import pytest

from expectations.runner import row_count_equals, validate_table
from extract import lake


def _written(home, table):
    return lake.read_table(home / "lake", table, "tiny", None if table in lake.CORPUS_TABLES
                           else "checkpoint-120")


@pytest.mark.parametrize("table", sorted(lake.SCHEMAS))
def test_suite_passes_on_the_written_table_and_fails_on_a_duplicated_row(built, table):
    home, _, _ = built
    df = _written(home, table)
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
