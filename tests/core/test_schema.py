"""The lake schema is the one declaration of every table's columns: the Great Expectations
suites, the dbt sources and the staging models must agree with it, and this test fails on any
drift between them."""

import json
import re
from pathlib import Path

import polars as pl
import pytest
import yaml

from core.schema import CORPUS_TABLES, SCHEMAS, STUDY_OF, STUDY_TABLES
from expectations.runner import SUITES_DIR, suite_definition

DBT = Path(__file__).resolve().parents[2] / "dbt"
STAGING = DBT / "models" / "staging"
# polars type -> the DuckDB type its staging view casts to
DUCKDB_TYPES = {pl.Int64: "bigint", pl.Float64: "double", pl.Utf8: "varchar",
                pl.Boolean: "boolean", pl.List(pl.Utf8): "varchar[]"}
CAST = re.compile(r"^\s*cast\((.+) as ([\w\[\]]+)\) as (\w+),?$", re.M)


def _columns_named(expectation: dict) -> set[str]:
    kwargs = expectation["kwargs"]
    names = {kwargs.get("column"), kwargs.get("column_A"), kwargs.get("column_B")}
    return ({n for n in names if n} | set(kwargs.get("column_list", []))
            | set(kwargs.get("column_set", [])))


def test_every_table_belongs_to_one_study_named_in_every_layer():
    from dagster_project.studies import STUDIES

    assert set(STUDY_TABLES) == {study.STUDY for study in STUDIES}  # a Dagster module each
    assert set(STUDY_TABLES) >= {"explanation_clusters", "salient_neurons", "activation_clusters",
                                 "universal_neurons", "modularity"}  # the five papers
    assert sum(len(t) for t in STUDY_TABLES.values()) == len(SCHEMAS) == len(STUDY_OF)
    suites = {p.stem: p.parent.name for p in SUITES_DIR.glob("*/*.json")}
    assert suites == STUDY_OF  # one suite per table, in its study's folder, no stray suite
    assert CORPUS_TABLES <= set(SCHEMAS)


@pytest.mark.parametrize("table", sorted(SCHEMAS))
def test_suite_columns_come_from_the_schema(table):
    suite = suite_definition(table)
    [column_set] = [e for e in suite["expectations"]
                    if e["type"] == "expect_table_columns_to_match_set"]
    assert column_set["kwargs"]["column_set"] == list(SCHEMAS[table])
    raw = json.loads((SUITES_DIR / STUDY_OF[table] / f"{table}.json").read_text())
    for expectation in raw["expectations"]:
        assert expectation["type"] != "expect_table_columns_to_match_set"  # generated only
        assert _columns_named(expectation) <= set(SCHEMAS[table]), expectation


def test_dbt_sources_are_the_lake_tables():
    sources = yaml.safe_load((STAGING / "_sources.yml").read_text())["sources"]
    [lake] = [s for s in sources if s["name"] == "lake"]
    assert sorted(t["name"] for t in lake["tables"]) == sorted(SCHEMAS)


def _staged_tables() -> list[str]:
    return sorted(p.stem[len("stg_"):] for p in STAGING.glob("stg_*.sql"))


def test_every_staging_model_stages_a_lake_table():
    assert set(_staged_tables()) <= set(SCHEMAS)


@pytest.mark.parametrize("table", _staged_tables())
def test_staging_columns_and_types_match_the_schema(table):
    sql = (STAGING / f"stg_{table}.sql").read_text()
    assert f"source('lake', '{table}')" in sql
    casts = CAST.findall(sql)
    keys = ["model"] if table in CORPUS_TABLES else ["model", "checkpoint"]
    expected = {**{k: "varchar" for k in keys},
                **{c: DUCKDB_TYPES[t] for c, t in SCHEMAS[table].items() if t in DUCKDB_TYPES}}
    # staging renames and casts only: each output is one lake column, cast to the schema's type
    staged = {}
    for expression, typ, _ in casts:
        [column] = set(re.findall(r"\w+", expression)) & (set(SCHEMAS[table]) | set(keys))
        staged[column] = typ
    lists = {c for c, t in SCHEMAS[table].items() if t not in DUCKDB_TYPES}
    assert {c: t for c, t in staged.items() if c not in lists} == expected
    documented = yaml.safe_load((STAGING / "_staging.yml").read_text())["models"]
    [model] = [m for m in documented if m["name"] == f"stg_{table}"]
    assert [c["name"] for c in model["columns"]] == [out for _, _, out in casts]
    assert all(c.get("description") for c in model["columns"])
