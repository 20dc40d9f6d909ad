"""The lake schema: the one module that `extract/`, `models/` and `dagster_project/` share.

Every lake table is a folder of Parquet files under ``<lake>/<table>/``, hive-partitioned by
``model=<m>/checkpoint=<c>/`` (the corpus by ``model=<m>/`` only). The partition columns live in the
path, not in the files, so DuckDB reads them back with ``hive_partitioning=true``.

The lake is ``<home>/lake`` by default, or any fsspec URL (``s3://bucket/lake``): every read and
write goes through fsspec. Writes are atomic: a file is written under a temporary name in the same folder and renamed into
place, so a reader (or a killed run) never sees a partial file.
"""

from __future__ import annotations

import os
import posixpath
import re
import uuid
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

# Column types of every lake table, without the hive partition columns (model, checkpoint).
SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "corpus": {
        "sentence_id": pl.Int64, "split": pl.Utf8, "word_index": pl.Int64, "word": pl.Utf8,
        "pos": pl.Utf8, "semantic_class": pl.Utf8, "suffix": pl.Utf8, "position": pl.Utf8,
    },
    "neuron_moments": {
        "site": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "n_tokens": pl.Int64,
        "mean": pl.Float64, "std": pl.Float64, "skew": pl.Float64, "kurtosis": pl.Float64,
        "max": pl.Float64, "frac_positive": pl.Float64,
    },
    "neuron_token_means": {
        "site": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "token_id": pl.Int64,
        "token": pl.Utf8, "token_count": pl.Int64, "mean_activation": pl.Float64,
    },
    "neuron_top_contexts": {
        "site": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "rank": pl.Int64,
        "activation": pl.Float64, "sentence_id": pl.Int64, "position": pl.Int64,
        "token": pl.Utf8, "context": pl.Utf8,
    },
    "explanations": {
        "layer": pl.Int64, "neuron": pl.Int64, "explanation": pl.Utf8, "score": pl.Float64,
    },
    "explanation_embeddings": {
        "layer": pl.Int64, "neuron": pl.Int64, "embedding": pl.List(pl.Float32),
    },
    "explanation_rejects": {
        "path": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "problem": pl.Utf8,
        "detail": pl.Utf8,
    },
    "clusterings": {
        "method": pl.Utf8, "filter_percentile": pl.Int64, "seed": pl.Int64,
        "n_clusters": pl.Int64, "n_layers": pl.Int64, "n_neurons": pl.Int64,
        "n_noise": pl.Int64, "ami_layer": pl.Float64,
    },
    "explanation_clusters": {
        "method": pl.Utf8, "filter_percentile": pl.Int64, "seed": pl.Int64,
        "layer": pl.Int64, "neuron": pl.Int64, "cluster_id": pl.Int64,
    },
    "explanation_cluster_null_counts": {
        "method": pl.Utf8, "filter_percentile": pl.Int64, "seed": pl.Int64,
        "shuffle": pl.Int64, "layer": pl.Int64, "cluster_id": pl.Int64, "n_neurons": pl.Int64,
    },
    "cluster_topics": {
        "method": pl.Utf8, "filter_percentile": pl.Int64, "seed": pl.Int64,
        "cluster_id": pl.Int64, "topic_words": pl.List(pl.Utf8),
        "representative_explanations": pl.List(pl.Utf8),
    },
    "probe_labels": {
        "sentence_id": pl.Int64, "word_index": pl.Int64, "word": pl.Utf8, "split": pl.Utf8,
        "task": pl.Utf8, "label": pl.Utf8,
    },
    "probe_features": {
        "sentence_id": pl.Int64, "word_index": pl.Int64, "site": pl.Utf8,
        "activations": pl.List(pl.Float32),
    },
    "probe_tasks": {
        "site": pl.Utf8, "task": pl.Utf8, "n_labels": pl.Int64, "n_neurons": pl.Int64,
        "n_train": pl.Int64, "n_dev": pl.Int64, "n_test": pl.Int64,
        "majority_accuracy": pl.Float64, "lambda1": pl.Float64, "lambda2": pl.Float64,
        "oracle_dev_accuracy": pl.Float64, "delta": pl.Float64, "top_percent": pl.Float64,
        "minimal_percent": pl.Float64, "minimal_n_neurons": pl.Int64,
        "minimal_dev_accuracy": pl.Float64, "minimal_mass_threshold": pl.Float64,
    },
    "probe_grid": {
        "site": pl.Utf8, "task": pl.Utf8, "lambda1": pl.Float64, "lambda2": pl.Float64,
        "top_percent": pl.Float64, "alpha": pl.Float64, "beta": pl.Float64,
        "accuracy_top": pl.Float64, "accuracy_bottom": pl.Float64,
        "accuracy_noreg": pl.Float64, "accuracy_current": pl.Float64, "score": pl.Float64,
        "selected": pl.Boolean,
    },
    "probe_accuracy": {
        "site": pl.Utf8, "task": pl.Utf8, "labels": pl.Utf8, "selection": pl.Utf8,
        "mode": pl.Utf8, "percent": pl.Float64, "n_neurons": pl.Int64, "seed": pl.Int64,
        "accuracy": pl.Float64,
    },
    "probe_neuron_ranking": {
        "site": pl.Utf8, "task": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64,
        "rank": pl.Int64, "mass_threshold": pl.Float64, "weight_mass": pl.Float64,
    },
    "probe_label_ranking": {
        "site": pl.Utf8, "task": pl.Utf8, "label": pl.Utf8, "layer": pl.Int64,
        "neuron": pl.Int64, "label_rank": pl.Int64, "weight": pl.Float64,
        "mass_share": pl.Float64, "mass_before": pl.Float64,
    },
    "token_classes": {
        "token_id": pl.Int64, "semantic_class": pl.Utf8, "n_occurrences": pl.Int64,
    },
    "activation_clusters": {
        "site": pl.Utf8, "representation": pl.Utf8, "k": pl.Int64, "refined": pl.Boolean,
        "method": pl.Utf8, "cluster_id": pl.Int64, "layer": pl.Int64, "neuron": pl.Int64,
    },
    "activation_cluster_distances": {
        "site": pl.Utf8, "representation": pl.Utf8, "k": pl.Int64, "refined": pl.Boolean,
        "method": pl.Utf8, "cluster_id": pl.Int64, "n_neurons": pl.Int64,
        "max_distance": pl.Float64, "mean_distance": pl.Float64,
    },
    "activation_cluster_tokens": {
        "site": pl.Utf8, "representation": pl.Utf8, "k": pl.Int64, "refined": pl.Boolean,
        "method": pl.Utf8, "cluster_id": pl.Int64, "rank": pl.Int64, "token_id": pl.Int64,
        "token": pl.Utf8, "activation": pl.Float64,
    },
    "activation_ablations": {
        "site": pl.Utf8, "representation": pl.Utf8, "k": pl.Int64, "refined": pl.Boolean,
        "cluster_id": pl.Int64, "baseline": pl.Utf8, "repeat": pl.Int64, "n_neurons": pl.Int64,
        "n_sentences": pl.Int64, "n_targets": pl.Int64, "loss_base": pl.Float64,
        "loss_ablated": pl.Float64,
    },
    "neuron_universality": {
        "site": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "other_model": pl.Utf8,
        "n_tokens": pl.Int64, "best_corr": pl.Float64, "best_layer": pl.Int64,
        "best_neuron": pl.Int64, "baseline_corr": pl.Float64, "threshold": pl.Float64,
    },
    "neuron_stability": {
        "site": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "previous_checkpoint": pl.Utf8,
        "n_tokens": pl.Int64, "self_corr": pl.Float64, "best_corr": pl.Float64,
    },
    "enmeshment": {
        "layer": pl.Int64, "matrix": pl.Utf8, "similarity": pl.Utf8, "k": pl.Int64,
        "enmeshment": pl.Float64,
    },
    "cluster_class_effect": {
        "layer": pl.Int64, "k": pl.Int64, "cluster_id": pl.Int64, "semantic_class": pl.Utf8,
        "n_neurons": pl.Int64, "n_sentences": pl.Int64, "n_targets": pl.Int64,
        "loss_base": pl.Float64, "loss_off": pl.Float64, "loss_on": pl.Float64,
    },
    "effective_circuit_size": {
        "layer": pl.Int64, "semantic_class": pl.Utf8, "n_weights": pl.Int64,
        "fraction_left": pl.Float64, "loss_base": pl.Float64, "loss_pruned": pl.Float64,
        "tolerance": pl.Float64,
    },
}

# Tables keyed by model only (they do not depend on a checkpoint).
CORPUS_TABLES = {"corpus", "probe_labels"}
PLACEHOLDER = "_none"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class LakeError(ValueError):
    """A lake table or name is not what the schema says."""


def safe_name(value: str, what: str) -> str:
    """Return `value` if it is a safe folder name (no path separators, no '..'), else raise."""
    if not isinstance(value, str) or not _SAFE_NAME.match(value) or ".." in value:
        raise LakeError(
            f"{what} {value!r} is not a valid name: use letters, digits, '.', '_' or '-' "
            "(no '/', no '..', at most 128 characters)"
        )
    return value


def table_dir(lake: str | Path, table: str) -> str:
    """The folder (path or URL) of a lake table."""
    if table not in SCHEMAS:
        raise LakeError(f"unknown lake table {table!r}; known tables: {sorted(SCHEMAS)}")
    return f"{str(lake).rstrip('/')}/{table}"


def partition_path(lake: str | Path, table: str, model: str, checkpoint: str | None = None) -> str:
    """Path (or URL) of the single Parquet file that holds one model/checkpoint partition of `table`."""
    folder = f"{table_dir(lake, table)}/model={safe_name(model, 'model')}"
    if table not in CORPUS_TABLES:
        if checkpoint is None:
            raise LakeError(f"lake table {table!r} is partitioned by checkpoint; pass one")
        folder = f"{folder}/checkpoint={safe_name(checkpoint, 'checkpoint')}"
    return f"{folder}/data.parquet"


def state_path(lake: str | Path, name: str, model: str, checkpoint: str, part: str) -> str:
    """Path (or URL) of an intermediate state file under ``<lake>/_state/`` (e.g. one shard's
    activation aggregates): handed from one asset to another, never a table, never read by dbt."""
    return (f"{str(lake).rstrip('/')}/_state/{safe_name(name, 'state')}"
            f"/model={safe_name(model, 'model')}/checkpoint={safe_name(checkpoint, 'checkpoint')}"
            f"/{safe_name(part, 'part')}.parquet")


def conform(df: pl.DataFrame, table: str) -> pl.DataFrame:
    """Select and cast `df` to the table's schema; raise naming missing columns."""
    schema = SCHEMAS[table]
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise LakeError(f"lake table {table!r}: frame lacks columns {missing}")
    return df.select([pl.col(c).cast(t) for c, t in schema.items()])


def atomic_write_parquet(table: pa.Table, path: str | Path) -> str:
    """Write `table` to `path` (a local path or an fsspec URL) through a temporary file in the same
    folder and a rename: atomic on a local disk; on object stores, where a rename is a copy, a
    reader still never sees the temporary name."""
    fs, target = url_to_fs(str(path))
    fs.makedirs(posixpath.dirname(target), exist_ok=True)
    tmp = posixpath.join(posixpath.dirname(target),
                         f".{posixpath.basename(target)}.{uuid.uuid4().hex}.tmp")
    try:
        with fs.open(tmp, "wb") as out:
            pq.write_table(table, out, compression="zstd")
        if isinstance(fs, LocalFileSystem):
            os.replace(tmp, target)
        else:
            fs.mv(tmp, target)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp)
    return str(path)


def read_parquet(path: str | Path) -> pa.Table:
    """Read one Parquet file from a local path or an fsspec URL."""
    fs, target = url_to_fs(str(path))
    with fs.open(target, "rb") as f:
        return pq.read_table(f)


def exists(path: str | Path) -> bool:
    fs, target = url_to_fs(str(path))
    return fs.exists(target)


def write_table(
    lake: str | Path, table: str, df: pl.DataFrame, model: str, checkpoint: str | None = None
) -> str:
    """Conform `df` to the schema of `table` and write it as the model/checkpoint partition."""
    path = partition_path(lake, table, model, checkpoint)
    return atomic_write_parquet(conform(df, table).to_arrow(), path)


def read_table(lake: str | Path, table: str, model: str,
               checkpoint: str | None = None) -> pl.DataFrame:
    """Read one model/checkpoint partition of `table`; raise a clear error if it is absent."""
    path = partition_path(lake, table, model, checkpoint)
    if not exists(path):
        raise LakeError(
            f"lake table {table!r} has no partition for model={model!r}"
            + (f", checkpoint={checkpoint!r}" if checkpoint else "")
            + f" (looked for {path}); materialize its asset first"
        )
    return pl.from_arrow(read_parquet(path))


def ensure_placeholders(lake: str | Path) -> None:
    """Give every table a zero-row typed file so dbt staging views compile in any study.

    The placeholder lives at ``model=_none/checkpoint=_none/``, a name no user model can take
    (names start with a letter or digit), and contributes no rows.
    """
    for table, schema in SCHEMAS.items():
        folder = f"{table_dir(lake, table)}/model={PLACEHOLDER}"
        if table not in CORPUS_TABLES:
            folder = f"{folder}/checkpoint={PLACEHOLDER}"
        path = f"{folder}/data.parquet"
        if not exists(path):
            atomic_write_parquet(pl.DataFrame(schema=schema).to_arrow(), path)
