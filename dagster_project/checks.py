"""Blocking Great Expectations checks, one per lake table: a failing table stops its downstream."""

import dagster as dg
import polars as pl

from dagster_project.assets import LAKE
from dagster_project.partitions import parse_partition_key
from dagster_project.resources import NwhResource
from expectations.runner import row_count_equals, validate_table
from extract import lake


def _expected_rows(nwh: NwhResource, table: str, model: str, checkpoint: str) -> list[dict]:
    """Row counts implied by the inputs of `table`, as extra expectations."""
    def rows(upstream: str) -> pl.DataFrame:
        return lake.read_table(nwh.lake, upstream, model, checkpoint)

    study = nwh.study()
    if table == "explanations" and study.needs_model:
        return [row_count_equals(rows("neuron_moments").height)]
    if table == "explanation_embeddings":
        return [row_count_equals(rows("explanations").height)]
    if table == "explanation_clusters":
        return [row_count_equals(int(rows("clusterings")["n_neurons"].sum()))]
    if table == "neuron_top_contexts":
        moments = rows("neuron_moments")
        k = min(study.extraction.top_k, int(moments["n_tokens"].min()))
        return [row_count_equals(moments.height * k)]
    return []


def _lake_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dg.AssetKey([*LAKE, table]), name=f"{table}_expectations", blocking=True,
                    description=f"Great Expectations suite expectations/suites/{table}.json on the "
                                "partition just written (columns, keys unique, ranges, nulls, row "
                                "counts against the inputs).")
    def check(context: dg.AssetCheckExecutionContext, nwh: NwhResource) -> dg.AssetCheckResult:
        if table in lake.CORPUS_TABLES:
            model, checkpoint = nwh.study().model, None
            extra = []
        else:
            model, checkpoint = parse_partition_key(context.partition_key)
            extra = _expected_rows(nwh, table, model, checkpoint)
        df = lake.read_table(nwh.lake, table, model, checkpoint)
        result = validate_table(table, df, extra)
        return dg.AssetCheckResult(
            passed=result.success,
            metadata={"n_rows": result.n_rows, "failed_expectations": len(result.failures),
                      "failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in result.failures)
                                                      or "none")},
            description=None if result.success else "; ".join(result.failures)[:2000])

    return check


lake_checks = [_lake_check(table) for table in lake.SCHEMAS]
