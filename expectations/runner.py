"""Validate a lake table against its Great Expectations (1.x) suite.

Suites are JSON files ``suites/<study>/<table>.json`` ({"name", "expectations": [{"type",
"kwargs"}]}). The table's exact column set is not written there: it is generated from the lake
schema (`core.schema`), the one declaration of every table's columns. A list column is validated
through its number of valid values (:func:`summarise_lists`).
Callers may add expectations that depend on the inputs (for example a row count equal to the
number of neurons upstream). Validation runs on an ephemeral GX context with a pandas datasource.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import polars as pl

from core.schema import SCHEMAS, STUDY_OF

SUITES_DIR = Path(__file__).resolve().parent / "suites"


@dataclass(frozen=True)
class Validation:
    table: str
    success: bool
    n_rows: int
    failures: tuple[str, ...]  # one line per failed expectation


def suite_path(table: str) -> Path:
    if table not in STUDY_OF:
        raise ValueError(f"{table!r} is not a lake table; known tables: {sorted(STUDY_OF)}")
    return SUITES_DIR / STUDY_OF[table] / f"{table}.json"


def suite_definition(table: str) -> dict:
    """The table's suite: its exact column set from the lake schema, then the suite file's
    expectations."""
    path = suite_path(table)
    if not path.is_file():
        raise ValueError(f"no expectation suite for lake table {table!r} (looked for {path})")
    suite = json.loads(path.read_text())
    columns = {"type": "expect_table_columns_to_match_set",
               "kwargs": {"column_set": list(SCHEMAS[table]), "exact_match": True}}
    return {**suite, "expectations": [columns, *suite["expectations"]]}


def summarise_lists(df: pl.DataFrame) -> pl.DataFrame:
    """Replace each numeric list column (activations, embeddings) by its number of finite
    values, and each text list column (topic words) by its number of non-empty texts, so a suite
    checks lengths and NaN/inf per row without handing pandas millions of Python objects."""
    def count(column: str, inner: pl.DataType) -> pl.Expr:
        valid = pl.element().str.len_chars() > 0 if inner == pl.Utf8 else pl.element().is_finite()
        return pl.col(column).list.eval(valid).list.sum().alias(column)

    return df.with_columns([count(c, t.inner) for c, t in df.schema.items()
                            if isinstance(t, pl.List)])


def row_count_equals(n: int) -> dict:
    """An expectation that the table has exactly `n` rows (a count derived from the inputs)."""
    return {"type": "expect_table_row_count_to_equal", "kwargs": {"value": int(n)}}


@lru_cache(maxsize=1)
def _batch_definition():
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("lake").add_dataframe_asset("table")
    return context, asset.add_batch_definition_whole_dataframe("whole")


def validate_table(table: str, df: pl.DataFrame, extra: list[dict] | None = None) -> Validation:
    """Run the table's suite (plus `extra` expectations) on `df`."""
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    definition = suite_definition(table)
    df = summarise_lists(df)
    context, batch_definition = _batch_definition()
    suite = gx.ExpectationSuite(name=f"{table}-{id(df)}")
    for e in [*definition["expectations"], *(extra or [])]:
        suite.add_expectation_configuration(ExpectationConfiguration(type=e["type"], kwargs=e["kwargs"]))
    batch = batch_definition.get_batch(batch_parameters={"dataframe": df.to_pandas()})
    result = batch.validate(suite, result_format="SUMMARY")
    failures = tuple(_describe(r) for r in result.results if not r.success)
    return Validation(table, bool(result.success), len(df), failures)


def _describe(r) -> str:
    cfg = r.expectation_config
    detail = {k: v for k, v in cfg.kwargs.items() if k not in ("batch_id",)}
    res = r.result or {}
    observed = res.get("observed_value", res.get("unexpected_count"))
    sample = res.get("partial_unexpected_list")
    text = f"{cfg.type}({detail}): observed {observed!r}"
    if r.exception_info and r.exception_info.get("raised_exception"):
        text += f"; error {r.exception_info.get('exception_message')}"
    return text + (f"; e.g. {sample[:3]}" if sample else "")
