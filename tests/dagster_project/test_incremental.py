"""A re-run does exactly as much work as the change requires: Dagster's stale status (code
versions, config sections as observed sources, upstream data versions) decides what runs."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
import duckdb
import pytest
import yaml

from dagster_project.studies import all_assets
from dagster_project.runner import run_study
from extract.lake import CORPUS_TABLES, STUDY_TABLES, exists, partition_path
from tests.conftest import run_tiny_study


def _copy_home(built, tmp_path):
    """A copy of the session's built home (lake, warehouse, Dagster instance) and its study."""
    home, study_file, _ = built
    copy = tmp_path / "home"
    shutil.copytree(home, copy)
    study = tmp_path / "study.yaml"
    shutil.copy(study_file, study)
    return copy, study, dg.DagsterInstance.local_temp(str(copy / "dagster"))


def _rounded(value):
    """`value` with every float to 9 significant digits (DuckDB's parallel sums may differ in
    the last bits from one build to the next)."""
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, (list, tuple)):
        return type(value)(_rounded(v) for v in value)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def _marts(home) -> dict[str, list]:
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_name like 'fct_%' "
            "or table_name like 'dim_%'").fetchall()]
        return {n: sorted(repr(_rounded(row)) for row in con.execute(f"select * from {n}").fetchall())
                for n in names}


@pytest.fixture
def copied(built, tmp_path):
    return _copy_home(built, tmp_path)


def test_nothing_changed_nothing_runs(copied):
    home, study, instance = copied
    said = []
    outcome = run_study(home, str(study), instance=instance, say=said.append)
    assert outcome.success and outcome.materialized == []
    assert "lake/neuron_moments" in outcome.skipped and "fct_layer_gini" in outcome.skipped
    assert any(line.startswith("up to date, not run") for line in said)


def test_one_section_changed_reruns_that_study_and_what_depends_on_it(copied, tmp_path):
    home, study, instance = copied
    config = yaml.safe_load(study.read_text())
    config["activation_clusters"]["ks"] = [4, 6]
    study.write_text(yaml.safe_dump(config))
    outcome = run_study(home, str(study), instance=instance)

    computed = [a for a in all_assets if isinstance(a, dg.AssetsDefinition)]
    dbt_keys = {k.to_user_string() for a in computed if a.op.name == "warehouse_dbt"
                for k in a.keys}
    reports = {k.to_user_string() for a in computed for k in a.keys if k.path[0] == "reports"}
    expected = ({f"lake/{t}" for s in ("activation_clusters", "neuron_profile")
                 for t in STUDY_TABLES[s]} | dbt_keys | reports)
    assert set(outcome.materialized) == expected
    assert "lake/neuron_moments" in outcome.skipped

    fresh = tmp_path / "fresh"
    run_tiny_study(fresh, study)
    assert _marts(home) == _marts(fresh)


def test_a_second_model_in_the_same_home_gets_its_own_corpus_and_redoes_nothing_of_the_first(
        copied):
    """The corpus and the probing labels are keyed by the model in the lake but not partitioned
    in Dagster: a study of another model in a home where one has run finds them absent for its
    model and materializes them (it used to call them up to date and fail on the missing
    partition); the first model's study then has nothing to redo."""
    home, study, instance = copied
    first = yaml.safe_load(study.read_text())
    second = study.with_name("second.yaml")
    second.write_text(yaml.safe_dump({**first, "model": "tiny-second"}))
    said = []
    outcome = run_study(home, str(second), instance=instance, say=said.append)
    assert outcome.success
    assert {"lake/corpus", "lake/probe_labels"} <= set(outcome.materialized)
    assert "lake/corpus: no lake partition for model 'tiny-second'" in said
    for table in sorted(CORPUS_TABLES):
        for model in (first["model"], "tiny-second"):
            assert exists(partition_path(home / "lake", table, model)), (table, model)
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        models = {r[0] for r in con.execute("select distinct model from fct_layer_gini").fetchall()}
    assert models == {first["model"], "tiny-second"}
    assert run_study(home, str(study), instance=instance).materialized == []


def _run_materializations(instance, run_id) -> set[str]:
    return {r.event_log_entry.dagster_event.asset_key.to_user_string()
            for r in instance.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records}


def test_a_run_killed_mid_step_resumes_from_what_it_completed(copied, tmp_path):
    """`nwh run` after an extraction change, SIGKILLed in activation clustering: the
    published warehouse and the lake's other tables are as they were; the next run materializes
    only what the killed run had not, and ends equal to an uninterrupted run."""
    home, study, instance = copied
    config = yaml.safe_load(study.read_text())
    config["extraction"]["top_k"] = 4
    study.write_text(yaml.safe_dump(config))
    published = (home / "warehouse.duckdb").read_bytes()

    nwh = Path(sys.executable).parent / "nwh"
    proc = subprocess.Popen([str(nwh), "--home", str(home), "run", "--config", str(study)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + 600
    for line in proc.stdout:
        if "activation_clustering" in line and "clustering the mlp site" in line:  # mid-step
            os.killpg(proc.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "the run never reached activation clustering"
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it was killed"
    assert (home / "warehouse.duckdb").read_bytes() == published

    killed = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED]))
    assert len(killed) == 1
    completed = _run_materializations(instance, killed[0].dagster_run.run_id)
    assert {"lake/neuron_moments", "lake/neuron_token_means"} <= completed

    outcome = run_study(home, str(study), instance=instance)
    assert outcome.success
    assert not completed & set(outcome.materialized)  # nothing the killed run did is redone
    assert "lake/activation_clusters" in outcome.materialized

    fresh = tmp_path / "fresh"
    run_tiny_study(fresh, study)
    assert _marts(home) == _marts(fresh)


def test_each_explanation_step_reads_only_its_own_section():
    """A new clustering.k must not re-run the explainer or the embedding (seen on the demo);
    the two steps that run a model also read `compute`."""
    graph = AssetGraph.from_assets(all_assets)
    sections = {key: {p.path[1] for p in graph.get(dg.AssetKey(["lake", key])).parent_keys
                      if p.path[0] == "config"}
                for key in ("explanations", "explanation_embeddings", "clusterings")}
    assert sections == {"explanations": {"explanations", "compute"},
                        "explanation_embeddings": {"embedding", "compute"},
                        "clusterings": {"clustering"}}
