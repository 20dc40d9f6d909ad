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
    if table.startswith("probe_"):
        return _expected_probe_rows(nwh, table, model, checkpoint)
    if table == "explanations" and study.needs_model:  # one per MLP neuron
        return [row_count_equals(rows("neuron_moments").filter(pl.col("site") == "mlp").height)]
    if table == "explanation_embeddings":
        return [row_count_equals(rows("explanations").height)]
    if table == "explanation_clusters":
        return [row_count_equals(int(rows("clusterings")["n_neurons"].sum()))]
    if table == "cluster_topics":  # one row per non-empty cluster
        clustered = rows("explanation_clusters").filter(pl.col("cluster_id") >= 0)
        return [row_count_equals(clustered.select(
            "method", "filter_percentile", "seed", "cluster_id").unique().height)]
    if table == "neuron_top_contexts":
        moments = rows("neuron_moments")
        k = min(study.extraction.top_k, int(moments["n_tokens"].min()))
        return [row_count_equals(moments.height * k)]
    return []


def _expected_probe_rows(nwh: NwhResource, table: str, model: str,
                         checkpoint: str | None) -> list[dict]:
    """Probing tables: empty when the study does not probe, else sized by their inputs."""
    study = nwh.study()
    if not study.runs_probing:
        return [row_count_equals(0)]
    if table == "probe_labels":
        return [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}]
    labels = lake.read_table(nwh.lake, "probe_labels", model)
    n_tasks = labels["task"].n_unique()
    if table == "probe_features":
        n_features = lake.read_table(nwh.lake, "neuron_moments", model, checkpoint).filter(
            pl.col("site") == "mlp").height
        return [row_count_equals(labels.unique(["sentence_id", "word_index"]).height),
                {"type": "expect_column_values_to_be_between",  # every activation finite
                 "kwargs": {"column": "activations", "min_value": n_features,
                            "max_value": n_features}}]
    tasks = lake.read_table(nwh.lake, "probe_tasks", model, checkpoint)
    p = study.probing
    expected = {
        "probe_tasks": n_tasks,
        "probe_grid": n_tasks * len(p.lambdas) ** 2,
        # all x2, masked top/bottom/weight_magnitude, retrained top/bottom, control all/top,
        # and n_random random selections masked and retrained
        "probe_accuracy": n_tasks * (9 + 2 * p.n_random),
        "probe_neuron_ranking": int(tasks["n_neurons"].sum()),
        "probe_label_ranking": int((tasks["n_neurons"] * tasks["n_labels"]).sum()),
    }
    return [row_count_equals(expected[table])]


def _lake_check(table: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=dg.AssetKey([*LAKE, table]), name=f"{table}_expectations", blocking=True,
                    description=f"Great Expectations suite expectations/suites/{table}.json on the "
                                "partition just written (columns, keys unique, ranges, nulls, row "
                                "counts against the inputs).")
    def check(context: dg.AssetCheckExecutionContext, nwh: NwhResource) -> dg.AssetCheckResult:
        if table in lake.CORPUS_TABLES:
            model, checkpoint = nwh.study().model, None
            extra = _expected_probe_rows(nwh, table, model, None) if table == "probe_labels" else []
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
