"""The lake: where the tables declared in `core.schema` are read and written.

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

from core.schema import CORPUS_TABLES, SCHEMAS, STUDY_OF, STUDY_TABLES  # noqa: F401 (re-exported)

PLACEHOLDER = "_none"
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class LakeError(ValueError):
    """A lake table or name is not what the schema says."""


class LakeWriteError(OSError):
    """A lake table's file could not be written (disk full, permission denied, ...); the
    previous file, if any, is unchanged."""


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


def state_path(lake: str | Path, name: str, model: str, checkpoint: str, *, part: str) -> str:
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


def file_columns(path: str | Path) -> list[str]:
    """The column names of one Parquet file (its footer only)."""
    fs, target = url_to_fs(str(path))
    with fs.open(target, "rb") as f:
        return pq.read_schema(f).names


def write_table(
    lake: str | Path, table: str, df: pl.DataFrame, model: str, *, checkpoint: str | None = None
) -> str:
    """Conform `df` to the schema of `table` and write it as the model/checkpoint partition."""
    path = partition_path(lake, table, model, checkpoint)
    try:
        return atomic_write_parquet(conform(df, table).to_arrow(), path)
    except OSError as e:
        raise LakeWriteError(f"lake table {table!r} could not be written to {path}: "
                             f"{e.strerror or e}; the previous version of the table is "
                             "unchanged") from e


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
    (names start with a letter or digit), and contributes no rows. One written before a table's
    columns changed is rewritten.
    """
    for table, schema in SCHEMAS.items():
        folder = f"{table_dir(lake, table)}/model={PLACEHOLDER}"
        if table not in CORPUS_TABLES:
            folder = f"{folder}/checkpoint={PLACEHOLDER}"
        path = f"{folder}/data.parquet"
        if not exists(path) or file_columns(path) != list(schema):
            atomic_write_parquet(pl.DataFrame(schema=schema).to_arrow(), path)


def outdated_partitions(lake: str | Path) -> list[str]:
    """The partitions whose columns are not their table's (written before the table changed),
    one line each naming the table, model, checkpoint and the columns missing and extra: dbt
    reads every partition of a table together, so it cannot build beside them."""
    found = []
    for table, schema in SCHEMAS.items():
        fs, root = url_to_fs(table_dir(lake, table))
        for path in sorted(fs.glob(f"{root}/model=*/**/data.parquet")):
            partition = posixpath.dirname(path)[len(root) + 1:]
            if partition.startswith(f"model={PLACEHOLDER}"):
                continue
            columns = file_columns(fs.unstrip_protocol(path))
            if columns != list(schema):
                missing = [c for c in schema if c not in columns]
                extra = [c for c in columns if c not in schema]
                found.append(f"{table} {partition}: missing {missing}, extra {extra}")
    return found
