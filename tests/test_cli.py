"""The `nwh` console script, run as a user runs it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

NWH = str(Path(sys.executable).parent / "nwh")


def _nwh(*args, home):
    return subprocess.run([NWH, "--home", str(home), *args], capture_output=True, text=True,
                          timeout=300)


def test_query_formats(built):
    home, _, _ = built
    sql = "select layer, count(*) as n from dim_neurons where site = 'mlp' group by layer order by layer"
    csv = _nwh("query", sql, "--format", "csv", home=home)
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.splitlines()[:3] == ["layer,n", "0,64", "1,64"]
    rows = json.loads(_nwh("query", sql, "--format", "json", home=home).stdout)
    assert rows == [{"layer": 0, "n": 64}, {"layer": 1, "n": 64}]
    table = _nwh("query", sql, home=home)
    assert "layer" in table.stdout and "64" in table.stdout


def test_query_is_read_only(built):
    home, _, _ = built
    out = _nwh("query", "create table hack as select 1", home=home)
    assert out.returncode == 1 and "read-only" in out.stderr.lower()


def test_query_without_a_warehouse_says_what_to_do(tmp_path):
    out = _nwh("query", "select 1", home=tmp_path)
    assert out.returncode == 1
    assert "no warehouse" in out.stderr and "nwh demo" in out.stderr


def test_run_with_an_unknown_config_key_names_it(tmp_path):
    (tmp_path / "s.yaml").write_text("model: m\ncheckpoints: c\nclustring: {}\n")
    out = _nwh("run", "--config", str(tmp_path / "s.yaml"), home=tmp_path / "home")
    assert out.returncode == 1
    assert "unknown key(s) ['clustring']" in out.stderr


def test_run_with_a_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "readme.txt").write_text("not a model")
    (tmp_path / "s.yaml").write_text("model: m\ncheckpoints: ckpt\n")
    out = _nwh("run", "--config", str(tmp_path / "s.yaml"), home=tmp_path / "home")
    assert out.returncode == 1
    assert "is not a checkpoint: it has no config.json" in out.stderr
    assert str(tmp_path / "ckpt") in out.stderr


def test_run_with_an_empty_text_corpus(tmp_path, tiny_checkpoints):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "empty.txt").write_text("\n\n")
    (tmp_path / "s.yaml").write_text(
        f"model: m\ncheckpoints: {tiny_checkpoints}\ncorpus: {{kind: text, path: texts}}\n")
    out = _nwh("run", "--config", str(tmp_path / "s.yaml"), home=tmp_path / "home")
    assert out.returncode == 1
    assert "is empty" in out.stderr and "texts" in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_run_on_a_device_this_machine_lacks_names_the_setting(tmp_path, tiny_checkpoints):
    (tmp_path / "s.yaml").write_text(
        f"model: m\ncheckpoints: {tiny_checkpoints}\ncompute: {{device: cuda}}\n")
    out = _nwh("run", "--config", str(tmp_path / "s.yaml"), home=tmp_path / "home")
    assert out.returncode == 1
    assert "compute.device: 'cuda' is not available on this machine" in out.stderr
    assert not (tmp_path / "home" / "lake").exists()  # stopped before anything ran


def test_celery_without_its_servers_names_what_is_missing(tmp_path, tiny_checkpoints):
    (tmp_path / "s.yaml").write_text(f"model: m\ncheckpoints: {tiny_checkpoints}\n")
    out = _nwh("run", "--config", str(tmp_path / "s.yaml"), "--executor", "celery",
               home=tmp_path / "home")
    assert out.returncode == 1
    assert ("--executor celery needs NWH_POSTGRES_URL, NWH_CELERY_BROKER, NWH_CELERY_BACKEND set"
            in out.stderr)
    assert not (tmp_path / "home" / "lake").exists()  # stopped before anything ran


def test_ui_binds_loopback_unless_told_otherwise():
    from dagster_project.cli import build_parser

    assert build_parser().parse_args(["ui"]).host == "127.0.0.1"
    assert build_parser().parse_args(["ui", "--host", "0.0.0.0"]).host == "0.0.0.0"


def test_every_example_query_runs_on_the_warehouse(built):
    from dagster_project.cli import query
    from dagster_project.example_queries import EXAMPLE_QUERIES

    home, _, _ = built
    for title, sql in EXAMPLE_QUERIES:
        assert len(json.loads(query(home, sql, "json"))) >= 1, title


def test_home_and_lake_are_accepted_before_and_after_the_subcommand(tmp_path):
    from dagster_project.cli import build_parser

    parse = build_parser().parse_args
    after = parse(["run", "--config", "s.yaml", "--home", "A", "--lake", "L"])
    before = parse(["--home", "A", "--lake", "L", "run", "--config", "s.yaml"])
    neither = parse(["query", "select 1"])
    assert (after.home, after.lake) == (before.home, before.lake) == ("A", "L")
    assert (neither.home, neither.lake) == (None, None)
    out = subprocess.run([NWH, "query", "select 1", "--home", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and str(tmp_path / "warehouse.duckdb") in out.stderr
