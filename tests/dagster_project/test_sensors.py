"""The checkpoint sensor on an ephemeral instance, over checkpoint folders written by the test."""

import json
import os
import shutil

import dagster as dg
import duckdb
import pytest

from dagster_project.defs.shared import lake_key
from dagster_project.definitions import resources
from dagster_project.studies import all_assets, all_checks
from dagster_project.jobs import main_job
from dagster_project.sensors import checkpoint_sensor, daily_refresh
from extract import lake
from tests.conftest import write_study


def _write_checkpoint(folder, weights=b"w" * 10, marker=True):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (folder / "model.safetensors").write_bytes(weights)
    if marker:
        (folder / "trainer_state.json").write_text("{}")


class Watcher:
    """Ticks the sensor like the daemon does, carrying the cursor from tick to tick."""

    def __init__(self, tmp_path):
        self.root = tmp_path / "ckpts"
        self.root.mkdir()
        self.study = write_study(tmp_path, self.root)
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor = None

    def tick(self):
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                          resources=resources(str(self.root.parent / "home"),
                                                              str(self.study)))
        result = checkpoint_sensor(context)
        self.cursor = result.cursor
        for request in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions(request.partitions_def_name,
                                                 list(request.partition_keys))
        return result


@pytest.fixture
def watcher(tmp_path):
    return Watcher(tmp_path)


def test_no_checkpoint_no_run(watcher):
    assert watcher.tick().run_requests == []


def test_complete_checkpoint_is_picked_up_exactly_once(watcher):
    _write_checkpoint(watcher.root / "checkpoint-100")
    first = watcher.tick()
    assert [r.partition_key for r in first.run_requests] == ["tiny/checkpoint-100"]
    assert watcher.instance.get_dynamic_partitions("checkpoints") == ["tiny/checkpoint-100"]
    assert watcher.tick().run_requests == []  # duplicate: same folder, same files


def test_incomplete_checkpoint_waits_until_unchanged_between_two_ticks(watcher):
    folder = watcher.root / "checkpoint-200"
    _write_checkpoint(folder, marker=False)
    assert watcher.tick().run_requests == []  # first sight, no marker: may still be writing
    (folder / "model.safetensors").write_bytes(b"w" * 20)  # still being written
    assert watcher.tick().run_requests == []
    ready = watcher.tick()  # unchanged since the last tick: complete
    assert [r.partition_key for r in ready.run_requests] == ["tiny/checkpoint-200"]
    assert watcher.tick().run_requests == []


def test_checkpoint_rewritten_in_place_is_picked_up_again(watcher):
    folder = watcher.root / "checkpoint-300"
    _write_checkpoint(folder)
    first = watcher.tick().run_requests[0]
    os.utime(folder / "model.safetensors", ns=(1, 1))
    (folder / "model.safetensors").write_bytes(b"x" * 30)
    again = watcher.tick().run_requests
    assert [r.partition_key for r in again] == ["tiny/checkpoint-300"]
    assert again[0].run_key != first.run_key


def test_folders_that_are_not_checkpoints_are_ignored(watcher):
    (watcher.root / "checkpoint-400").mkdir()
    (watcher.root / "checkpoint-400" / "config.json").write_text("{}")  # no weights yet
    (watcher.root / "notes").mkdir()
    assert watcher.tick().run_requests == []


def test_daily_refresh_requests_each_known_partition_with_stale_assets(watcher):
    """A known partition whose checkpoint exists and was never materialized is all missing: it
    is requested; a folder with no partition yet is the sensor's, a partition with no folder
    has nothing to run from."""
    for name in ("checkpoint-1", "checkpoint-2"):
        _write_checkpoint(watcher.root / name)
    # a schedule's context needs a persistent instance
    (watcher.root.parent / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(watcher.root.parent / "dagster"))
    instance.add_dynamic_partitions("checkpoints", ["tiny/checkpoint-1", "tiny/checkpoint-9"])
    requests = daily_refresh(dg.build_schedule_context(instance=instance, resources={
        "nwh": resources(str(watcher.root.parent / "home"), str(watcher.study))["nwh"]}))
    assert [r.partition_key for r in requests] == ["tiny/checkpoint-1"]
    assert dg.AssetKey(["lake", "neuron_moments"]) in requests[0].asset_selection


def test_the_sensor_job_builds_the_warehouse_for_a_checkpoint(tmp_path, tiny_checkpoints):
    """What the daemon runs for a sensor's request: main_job on one partition."""
    study = write_study(tmp_path, tiny_checkpoints)
    home = tmp_path / "home"
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("checkpoints", ["tiny/checkpoint-40"])
    defs = dg.Definitions(assets=all_assets, asset_checks=all_checks, jobs=[main_job],
                          resources=resources(str(home), str(study)))
    result = defs.resolve_job_def("main_job").execute_in_process(
        partition_key="tiny/checkpoint-40", instance=instance)
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations if e.check_name.endswith("_expectations")} == {
        f"{table}_expectations" for table in lake.SCHEMAS}  # probing included
    assert all(e.passed for e in evaluations)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.sql("select distinct checkpoint from fct_layer_gini").fetchall() == [("checkpoint-40",)]


def test_a_checkpoint_is_not_run_again_whoever_materialized_it(built, tmp_path):
    """After `nwh run`, the sensor launches nothing for that checkpoint; after a config change it
    asks for exactly the stale assets; once a run launched as from the UI (main_job on the
    partition, no tags of ours) materialized them, a restarted sensor launches nothing again."""
    home, study_file, outcome = built
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    instance = dg.DagsterInstance.local_temp(str(copy / "dagster"))
    [run] = instance.get_run_records(dg.RunsFilter(tags={"nwh/version": outcome.version}))
    assert run.dagster_run.status == dg.DagsterRunStatus.SUCCESS

    def tick(study):
        context = dg.build_sensor_context(instance=instance, cursor=None,
                                          resources=resources(str(copy), str(study)))
        return {r.partition_key: r for r in checkpoint_sensor(context).run_requests}

    newest = outcome.partition_key
    same = tick(study_file)
    assert newest not in same  # already done by nwh run
    assert dg.AssetKey(["lake", "neuron_moments"]) in same["tiny/checkpoint-40"].asset_selection

    changed = tmp_path / "changed.yaml"
    changed.write_text(study_file.read_text() + "\nagreement: {seed: 1}\n")
    request = tick(changed)[newest]  # the config changed: run what reads it
    computed = [a for a in all_assets if isinstance(a, dg.AssetsDefinition)]
    expected = ({lake_key(t) for t in lake.STUDY_TABLES["neuron_profile"]}
                | {k for a in computed if a.op.name == "warehouse_dbt" for k in a.keys}
                | {k for a in computed for k in a.keys if k.path[0] == "reports"})
    assert set(request.asset_selection) == expected
    assert request.tags["nwh/version"] != outcome.version

    defs = dg.Definitions(assets=all_assets, asset_checks=all_checks, jobs=[main_job],
                          resources=resources(str(copy), str(changed)))
    ui_run = defs.resolve_job_def("main_job").execute_in_process(
        partition_key=newest, instance=instance, asset_selection=request.asset_selection)
    assert ui_run.success and "nwh/version" not in ui_run.dagster_run.tags
    assert newest not in tick(changed)
