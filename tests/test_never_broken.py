"""A warehouse that never breaks: atomic lake writes and an atomic warehouse publication."""

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from dagster_project.defs.warehouse import DBT_DIR, warehouse_dbt
from dagster_project.definitions import resources
from dagster_project.partitions import parse_partition_key
from dagster_project.studies import all_assets
from extract import lake
from tests.conftest import lock_holder, run_tiny_study, write_study

WRITER = """
import sys, numpy as np, polars as pl
from dagster_project.defs.warehouse import warehouse_dbt
from dagster_project.definitions import resources
from dagster_project.studies import all_assets
from extract import lake
n = int(sys.argv[2])
df = pl.DataFrame({"layer": np.zeros(n, dtype=np.int64), "neuron": np.arange(n),
                   "explanation": ["x" * 200] * n, "score": np.ones(n)})
print("writing", flush=True)
lake.write_table(sys.argv[1], "explanations", df, "m", "final")
print("done", flush=True)
"""


def test_a_write_killed_midway_leaves_the_previous_file_whole(tmp_path):
    old = pl.DataFrame({"layer": [0], "neuron": [0], "explanation": ["old"], "score": [0.5]})
    path = Path(lake.write_table(tmp_path, "explanations", old, "m", checkpoint="final"))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), "3000000"],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    assert pl.read_parquet(path).equals(old)  # no partial file is visible under the real name
    visible = [p.name for p in path.parent.iterdir() if p.suffix == ".parquet"]
    assert visible == ["data.parquet"]


def _explanations_csv(folder: Path, scores) -> str:
    pl.DataFrame({"layer": [0, 0, 1, 1, 2, 2], "neuron": [0, 1] * 3,
                  "explanation": ["months", "cities", "months", "colours", "cities", "animals"],
                  "score": scores}).write_csv(folder / "e.csv")
    return "e.csv"


def test_a_reader_keeps_its_snapshot_while_a_refresh_publishes_a_new_one(tmp_path):
    home = tmp_path / "home"
    study = write_study(tmp_path, None, model="m", clustering={"k": 2},
                        explanations={"source": "table", "path": _explanations_csv(tmp_path, [0.1] * 6)})
    run_tiny_study(home, study)
    reader = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    before = reader.execute("select count(*) from fct_layer_gini").fetchone()[0]

    # A refresh with a different table: fewer layers.
    pl.DataFrame({"layer": [0, 0], "neuron": [0, 1], "explanation": ["a", "b"],
                  "score": [0.2, 0.3]}).write_csv(tmp_path / "e.csv")
    run_tiny_study(home, study)  # not blocked by the open reader

    assert reader.execute("select count(*) from fct_layer_gini").fetchone()[0] == before
    reader.close()
    fresh = subprocess.run([str(Path(sys.executable).parent / "nwh"), "--home", str(home), "query",
                            "select count(*) as n from fct_layer_gini", "--format", "csv"],
                           capture_output=True, text=True, check=True)
    assert before == 2 * 3 * 3  # methods x filters x layers
    assert fresh.stdout.split()[1] == str(2 * 3 * 1)  # the new snapshot has one layer
    assert not list(home.glob(".warehouse.duckdb.*"))  # no build file left behind


def _folders(path: Path) -> set[str]:
    return {p.name for p in path.iterdir() if p.is_dir()} if path.exists() else set()


def test_a_failed_dbt_build_leaves_the_previous_warehouse(tmp_path):
    """... and its compiled SQL, run results and log in the home's dbt-target folder, beside
    the good build's (none in the repository's dbt/target, which every home shares). The second
    build waits while another process holds the home's build lock, and dbt re-parses only what
    changed since the first build (whose saved parse it starts from)."""
    home = tmp_path / "home"
    study = write_study(tmp_path, None, model="m", clustering={"k": 2},
                        explanations={"source": "table", "path": _explanations_csv(tmp_path, [0.1] * 6)})
    repo_targets = _folders(DBT_DIR / "target")
    run_tiny_study(home, study)
    before = (home / "warehouse.duckdb").read_bytes()
    # Break a cross-table invariant no single-table suite sees: clusters 0 and 1 exist, K says 1.
    clusterings = lake.read_table(home / "lake", "clusterings", "m", "final")
    lake.write_table(home / "lake", "clusterings", clusterings.with_columns(n_clusters=pl.lit(1)),
                     "m", checkpoint="final")
    other_build = lock_holder(home, "build.lock")
    instance = dg.DagsterInstance.ephemeral()
    with pytest.raises(Exception, match="dbt"):
        dg.materialize([*all_assets], selection=dg.AssetSelection.assets(warehouse_dbt),
                       resources=resources(str(home), str(study)), instance=instance)
    assert other_build.wait(30) == 0
    assert any(f"another warehouse build is working on {home} (pid {other_build.pid})"
               in (e.user_message or "") for e in instance.all_logs(instance.get_runs()[0].run_id))
    assert (home / "warehouse.duckdb").read_bytes() == before
    assert not list(home.glob(".warehouse.duckdb.*"))
    builds = sorted((home / "dbt-target").iterdir(), key=lambda p: p.stat().st_mtime)
    assert len(builds) == 2
    results = json.loads((builds[-1] / "run_results.json").read_text())["results"]
    assert any(r["status"] == "fail" and r["unique_id"].startswith("test.") for r in results)
    second_log = (builds[-1] / "dbt.log").read_text()
    assert "UnableToPartialParse" not in second_log and "Partial parsing enabled" in second_log
    assert _folders(DBT_DIR / "target") == repo_targets


@pytest.fixture
def full_disk_lake(tmp_path):
    """A 16 MiB tmpfs for the lake (root only: mount), unmounted after the test; `fill()` takes
    every byte left on it."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")

    def fill():
        try:
            with open(mount / "filler", "wb", buffering=0) as out:
                while True:
                    out.write(b"\0" * (1 << 16))
        except OSError:  # ENOSPC: full
            pass

    try:
        yield mount, fill
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def _lake_files(lake_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lake_dir)): p.read_bytes() for p in sorted(lake_dir.rglob("*"))
            if p.is_file() and p.name != "filler"}


def test_a_lake_write_that_fails_names_the_table_and_the_cause_and_keeps_every_table(
        tmp_path, full_disk_lake, monkeypatch):
    from dagster_project.errors import user_message

    lake_dir, fill = full_disk_lake
    monkeypatch.setenv("NWH_LAKE_URL", str(lake_dir))
    home = tmp_path / "home"
    study = write_study(tmp_path, None, model="m", clustering={"k": 2},
                        explanations={"source": "table", "path": _explanations_csv(tmp_path, [0.1] * 6)})
    run_tiny_study(home, study)
    before, warehouse = _lake_files(lake_dir), (home / "warehouse.duckdb").read_bytes()

    fill()  # the disk is full: the next table written fails
    write_study(tmp_path, None, model="m", clustering={"k": 3},
                explanations={"source": "table", "path": "e.csv"})
    with pytest.raises(Exception) as failed:
        run_tiny_study(home, study)
    message = user_message(failed.value)
    assert re.search(r"lake table '\w+' could not be written to .*: No space left on device",
                     message), message

    assert _lake_files(lake_dir) == before  # no table changed, no temporary file left
    for name in before:
        if name.endswith(".parquet"):
            pl.read_parquet(lake_dir / name)  # every table is readable
    assert (home / "warehouse.duckdb").read_bytes() == warehouse


def _write_columns(path: Path, columns: list[str]) -> None:
    """A one-row Parquet file with these (int64) columns, as an older version of a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({c: [0] for c in columns}).write_parquet(path)


def test_partitions_of_an_older_schema_are_named_and_an_old_placeholder_is_rewritten(tmp_path):
    null = "explanation_cluster_null_counts"
    lake.write_table(tmp_path, null, pl.DataFrame(schema=lake.SCHEMAS[null]), "m", checkpoint="new")
    old_null = ["method", "filter_percentile", "seed", "shuffle", "layer", "cluster_id", "n_neurons"]
    _write_columns(tmp_path / null / "model=m" / "checkpoint=old" / "data.parquet", old_null)
    corpus = [c for c in lake.SCHEMAS["corpus"] if c != "split"] + ["old"]
    _write_columns(tmp_path / "corpus" / "model=m" / "data.parquet", corpus)
    placeholder = tmp_path / null / "model=_none" / "checkpoint=_none" / "data.parquet"
    _write_columns(placeholder, old_null)

    lake.ensure_placeholders(tmp_path)
    assert lake.file_columns(placeholder) == list(lake.SCHEMAS[null])
    assert lake.outdated_partitions(tmp_path) == [
        "corpus model=m: missing ['split'], extra ['old']",
        f"{null} model=m/checkpoint=old: missing ['n_clusters_holding'], extra ['cluster_id']"]


def test_a_partition_of_an_older_schema_stops_the_build_and_keeps_the_warehouse(built, tmp_path):
    """A home built before a table's columns changed, with a second checkpoint not yet re-run:
    the build stops before dbt, says which partition to re-run and how, and the published
    warehouse stays."""
    from dagster_project.errors import user_message

    home = tmp_path / "home"
    shutil.copytree(built[0], home, ignore=shutil.ignore_patterns("dagster"))
    model, _ = parse_partition_key(built[2].partition_key)
    null = "explanation_cluster_null_counts"
    _write_columns(home / "lake" / null / f"model={model}" / "checkpoint=checkpoint-1" /
                   "data.parquet", ["method", "shuffle", "layer", "cluster_id", "n_neurons"])
    before = (home / "warehouse.duckdb").read_bytes()
    with pytest.raises(Exception) as failed:
        dg.materialize([*all_assets], selection=dg.AssetSelection.assets(warehouse_dbt),
                       resources=resources(str(home), str(built[1])),
                       instance=dg.DagsterInstance.ephemeral())
    message = user_message(failed.value)
    assert f"{null} model={model}/checkpoint=checkpoint-1: missing" in message
    assert "nwh run --config" in message and "--checkpoint" in message
    assert (home / "warehouse.duckdb").read_bytes() == before
