"""What every study's assets share: the asset opening, lake keys and specs, the write-and-report
loop, the Great Expectations checks of a study's tables, and report (plot) assets.

Assets exchange data through the lake (Parquet), not through IO managers: each reads its upstream
tables with :meth:`Opened.read` and writes its own with :func:`write_tables`.
"""

import base64
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import torch

from dagster_project.partitions import checkpoints_partitions, parse_partition_key
from dagster_project.resources import NwhResource
from dagster_project.study import StudyConfig
from dagster_project.versions import STUDY_SECTIONS, code_version, config_key
from expectations.runner import validate_table
from extract import lake
from extract.activations import encode, load_bridge
from extract.checkpoints import CheckpointError, find_checkpoints
from extract.corpus import sentences

LAKE = ["lake"]
ExpectedRows = Callable[["Opened", str], list[dict]]


def lake_key(table: str) -> dg.AssetKey:
    return dg.AssetKey([*LAKE, table])


def upstream(study: str, deps: Sequence[str | dg.AssetKey],
             sections: Sequence[str] | None = None) -> list[dg.AssetKey]:
    """What an asset of `study` is computed from: its upstream tables (lake table names or keys)
    and the config sections it reads (``config/<section>``; default: all the study reads)."""
    return [*(lake_key(d) if isinstance(d, str) else d for d in deps),
            *(config_key(section) for section in sections or STUDY_SECTIONS[study])]


def study_code_version(study: str) -> str:
    """The code version of `study`'s lake assets (see :mod:`dagster_project.versions`)."""
    return code_version(f"dagster_project.defs.{study}")


def lake_specs(study: str, descriptions: Mapping[str, str], deps: Sequence[str | dg.AssetKey],
               sections: Sequence[str] | None = None) -> list[dg.AssetSpec]:
    """One spec per lake table of `study` (a multi-asset's outputs), in the study's group;
    `sections`: the config sections it reads (default: all the study reads)."""
    return [dg.AssetSpec(lake_key(table), deps=upstream(study, deps, sections), group_name=study,
                         kinds={"python", "parquet"}, code_version=study_code_version(study),
                         description=descriptions[table])
            for table in lake.STUDY_TABLES[study] if table in descriptions]


def checkpoint_folder(study: StudyConfig, checkpoint: str) -> Path:
    """The folder of checkpoint `checkpoint` among the study's checkpoints."""
    found = dict(find_checkpoints(study.checkpoints))
    if checkpoint not in found:
        raise CheckpointError(f"checkpoint {checkpoint!r} not found in {study.checkpoints!r}; "
                              f"found: {sorted(found)}")
    return found[checkpoint]


@dataclass
class Opened:
    """An asset's view of its run: the study, the partition's model and checkpoint, the lake."""

    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext
    nwh: NwhResource
    study: StudyConfig
    model: str
    checkpoint: str | None

    def read(self, table: str) -> pl.DataFrame:
        """This partition of lake table `table` (tables keyed by model only: the model's)."""
        checkpoint = None if table in lake.CORPUS_TABLES else self.checkpoint
        return lake.read_table(self.nwh.lake, table, self.model, checkpoint)

    def bridge(self, checkpoint: str | None = None, folder: Path | None = None,
               dtype: torch.dtype | None = None):
        """The TransformerLens bridge of a checkpoint of the study (default: this partition's)
        or of a checkpoint `folder`, on the study's ``compute`` device, in its dtype unless
        `dtype` says otherwise."""
        compute = self.study.compute.settings()
        return load_bridge(folder or checkpoint_folder(self.study, checkpoint or self.checkpoint),
                           self.study.extraction.trust_pickle_checkpoints,
                           device=compute.torch_device(), dtype=dtype or compute.torch_dtype())

    def heldout_ids(self, bridge) -> list[list[int]]:
        """The corpus's held-out sentences as the model's token ids, framed and cut to its
        context: the evaluation pool of every loss-based step."""
        return [encode(bridge.tokenizer, text)[: bridge.cfg.n_ctx]
                for _, text in sentences(self.read("corpus"), "heldout")]

    def progress(self, what: str, unit: str = "sentences",
                 every: int = 10) -> Callable[[int, int], None]:
        """A progress callback that logs every `every` calls and at the end."""
        calls = {"n": 0}

        def report(done: int, total: int) -> None:
            calls["n"] += 1
            if calls["n"] % every == 0 or done == total:
                self.context.log.info(f"{what}: {done}/{total} {unit} ({100 * done / total:.0f}%)")

        return report

    def log(self, message: str) -> None:
        self.context.log.info(message)


def open_partition(context, nwh: NwhResource) -> Opened:
    """Open a checkpoint-partitioned asset's run; fail when the partition is for another model."""
    study = nwh.study()
    model, checkpoint = parse_partition_key(context.partition_key)
    if model != study.model:
        raise dg.Failure(f"partition {context.partition_key!r} is for model {model!r}, but the "
                         f"configured study is for model {study.model!r}")
    return Opened(context, nwh, study, model, checkpoint)


def open_model(context, nwh: NwhResource) -> Opened:
    """Open an asset keyed by the study's model only (the corpus, the probing labels)."""
    study = nwh.study()
    return Opened(context, nwh, study, study.model, None)


def empty(table: str) -> pl.DataFrame:
    """A zero-row frame of lake table `table` (a study that does not run writes one)."""
    return pl.DataFrame(schema=lake.SCHEMAS[table])


def preview(df: pl.DataFrame, n: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.head(n).to_pandas().to_markdown(index=False))


def write_tables(opened: Opened, frames: Mapping[str, pl.DataFrame],
                 metadata: Mapping[str, dict] | None = None,
                 multi: bool = True) -> Iterator[dg.MaterializeResult]:
    """Write each frame as its lake table's partition and report path, row count and a
    preview, plus `metadata[table]`; `multi` names the asset key (a multi-asset's outputs)."""
    for table, df in frames.items():
        checkpoint = None if table in lake.CORPUS_TABLES else opened.checkpoint
        path = lake.write_table(opened.nwh.lake, table, df, opened.model, checkpoint=checkpoint)
        yield dg.MaterializeResult(asset_key=lake_key(table) if multi else None, metadata={
            "path": str(path), "dagster/row_count": len(df), "preview": preview(df, 10),
            **(metadata or {}).get(table, {})})


def lake_checks(study: str, expected_rows: ExpectedRows | None = None
                ) -> list[dg.AssetChecksDefinition]:
    """A blocking Great Expectations check per lake table of `study`: the table's suite plus the
    row counts `expected_rows(opened, table)` implies from the inputs."""
    return [_lake_check(table, expected_rows) for table in lake.STUDY_TABLES[study]]


def _lake_check(table: str, expected_rows: ExpectedRows | None) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=lake_key(table), name=f"{table}_expectations", blocking=True,
                    description=f"Great Expectations suite of lake table {table} on the partition "
                                "just written (columns from the lake schema, keys unique, ranges, "
                                "nulls, row counts against the inputs).")
    def check(context: dg.AssetCheckExecutionContext, nwh: NwhResource) -> dg.AssetCheckResult:
        opened = (open_model(context, nwh) if table in lake.CORPUS_TABLES
                  else open_partition(context, nwh))
        extra = expected_rows(opened, table) if expected_rows else []
        result = validate_table(table, opened.read(table), extra)
        return dg.AssetCheckResult(
            passed=result.success,
            metadata={"n_rows": result.n_rows, "failed_expectations": len(result.failures),
                      "failures": dg.MetadataValue.md("\n".join(f"- {f}" for f in result.failures)
                                                      or "none")},
            description=None if result.success else "; ".join(result.failures)[:2000])

    return check


def read_mart(nwh: NwhResource, mart: str) -> pl.DataFrame:
    with duckdb.connect(str(nwh.warehouse_path), read_only=True) as con:
        return con.sql(f"select * from {mart}").pl()


def report_asset(name: str, study: str, marts: Sequence[str], description: str,
                 *, draw: Callable[..., Path]) -> dg.AssetsDefinition:
    """A plot of marts `marts` at ``<home>/reports/<name>.png``, shown inline in the UI:
    `draw(*mart frames, path)` writes it."""
    @dg.asset(key=["reports", f"{name}_plot"], deps=[dg.AssetKey(m) for m in marts],
              group_name=study, kinds={"python", "png"}, code_version=code_version(draw.__module__),
              description=f"{description} At <home>/reports/{name}.png.")
    def plot(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
        path = draw(*(read_mart(nwh, m) for m in marts), nwh.home_dir / "reports" / f"{name}.png")
        encoded = base64.b64encode(path.read_bytes()).decode()
        return dg.MaterializeResult(metadata={
            "path": str(path),
            "plot": dg.MetadataValue.md(f"![{name}](data:image/png;base64,{encoded})")})

    return plot


def partitioned_asset(table: str, study: str, deps: Sequence[str | dg.AssetKey],
                      description: str, sections: Sequence[str] | None = None):
    """The decorator of a single-table, checkpoint-partitioned lake asset of `study`."""
    return dg.asset(key=lake_key(table), deps=upstream(study, deps, sections),
                    code_version=study_code_version(study),
                    partitions_def=checkpoints_partitions, group_name=study,
                    kinds={"python", "parquet"}, description=description)


def partitioned_multi_asset(specs: list[dg.AssetSpec]):
    """The decorator of a checkpoint-partitioned asset that writes several lake tables at once."""
    return dg.multi_asset(specs=specs, partitions_def=checkpoints_partitions, can_subset=False)
