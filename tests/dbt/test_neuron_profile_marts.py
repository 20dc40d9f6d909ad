"""The cross-study marts built by dbt on a lake with planted relations, checked against scipy."""

import os
import re

import duckdb
import numpy as np
import polars as pl
import pytest
from scipy import stats

from extract import lake
from tests.dbt.build import dbt_build

N = 200  # MLP neurons of layer 0


def _write(lake_dir, table: str, columns: dict, checkpoint: str | None = "c") -> None:
    """Write `columns` as lake table `table`, the schema's other columns null."""
    n = max(len(v) for v in columns.values() if isinstance(v, (list, np.ndarray)))
    full = {c: columns.get(c, [None] * n) for c in lake.SCHEMAS[table]}
    lake.write_table(lake_dir, table, pl.DataFrame(full, strict=False), "m", checkpoint=checkpoint)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """Planted: the top set of task pos is ranks 1..40 (20 % of 200); 20 of them and 10 of the
    other 160 neurons are universal (odds ratio 20 x 150 / (10 x 20) = 15); the explanation score
    falls with sparsity, with ties; two AMI rows with p-values 0.01 and 0.5."""
    tmp = tmp_path_factory.mktemp("profile")
    lake_dir, rng = tmp / "lake", np.random.default_rng(0)
    neurons = np.arange(N)
    rank = rng.permutation(N) + 1
    top = rank <= 40
    universal = np.zeros(N, bool)
    universal[np.flatnonzero(top)[:20]] = True
    universal[np.flatnonzero(~top)[:10]] = True
    _write(lake_dir, "neuron_universality", {
        "site": ["mlp"] * N, "layer": [0] * N, "neuron": neurons, "other_model": ["s1"] * N,
        "n_tokens": [500] * N, "best_corr": np.where(universal, 0.9, 0.2),
        "baseline_corr": [0.1] * N, "threshold": [0.5] * N})
    _write(lake_dir, "probe_tasks", {
        "site": ["mlp"], "task": ["pos"], "n_labels": [3], "n_neurons": [N], "top_percent": [20.0],
        "minimal_n_neurons": [10], "minimal_mass_threshold": [0.5]})
    _write(lake_dir, "probe_neuron_ranking", {
        "site": ["mlp"] * N, "task": ["pos"] * N, "layer": [0] * N, "neuron": neurons,
        "rank": rank})
    _write(lake_dir, "probe_label_ranking", {
        "site": ["mlp", "mlp"], "task": ["pos", "pos"], "label": ["NOUN", "VERB"],
        "layer": [0, 0], "neuron": [int(np.argmin(rank))] * 2, "mass_before": [0.0, 0.7]})
    frac_positive = rng.integers(1, 20, N) / 20  # ties on purpose
    kurtosis = rng.gamma(2.0, 2.0, N)
    score = 0.5 * frac_positive + rng.normal(0, 0.1, N)
    _write(lake_dir, "neuron_moments", {
        "site": ["mlp"] * N + ["resid"], "layer": [0] * (N + 1), "neuron": [*neurons, 0],
        "n_tokens": [500] * (N + 1), "mean": [0.0] * (N + 1), "std": [1.0] * (N + 1),
        "skew": [0.0] * (N + 1), "kurtosis": [*kurtosis, 3.0],
        "frac_positive": [*frac_positive, 0.5], "max": [1.0] * (N + 1)})
    _write(lake_dir, "explanations", {"layer": [0] * N, "neuron": neurons,
                                      "explanation": [f"e{i}" for i in neurons], "score": score})
    _write(lake_dir, "neuron_token_means", {
        "site": ["mlp"] * 7, "layer": [0] * 7, "neuron": [3] * 7, "token_id": list(range(7)),
        "token": list("abcdefg"), "token_count": [5] * 7,
        "mean_activation": [0.1, 0.7, 0.3, 0.9, 0.2, 0.7, 0.05]})
    _write(lake_dir, "explanation_clusters", {
        "method": ["kmeans", "hdbscan"], "filter_percentile": [0, 0], "seed": [0, 0],
        "layer": [0, 0], "neuron": [3, 3], "cluster_id": [5, -1]})
    _write(lake_dir, "activation_clusters", {
        "site": ["mlp"] * N, "representation": ["filter"] * N, "k": [4] * N,
        "refined": [False] * N, "method": ["agglomerative"] * N, "cluster_id": neurons % 4,
        "layer": [0] * N, "neuron": neurons})
    _write(lake_dir, "neuron_stability", {
        "site": ["mlp"], "layer": [0], "neuron": [3], "previous_checkpoint": ["b"],
        "n_tokens": [500], "self_corr": [0.8], "best_corr": [0.9]})
    _write(lake_dir, "neuron_top_contexts", {
        "site": ["mlp"] * N, "layer": [0] * N, "neuron": neurons, "rank": [1] * N,
        "activation": [2.0] * N, "sentence_id": [0] * N, "position": [3] * N,
        "token": ["cat"] * N, "context": ["the big [[cat]] sat"] * N})
    _write(lake_dir, "study_agreement", {
        "relation": ["explanation_vs_activation_clusters"] * 2, "config_a": ["x", "y"],
        "config_b": ["z", "z"], "layer": [None, None], "n_neurons": [N, N], "ami": [0.4, 0.0],
        "null_mean": [0.0, 0.0], "null_sd": [0.01, 0.01], "p_value": [0.01, 0.5],
        "permutations": [199, 199]})
    _write(lake_dir, "spectral_modules", {
        "layer": [0, 0], "matrix": ["mlp_in", "mlp_out"], "similarity": ["weight"] * 2,
        "k": [2, 2], "neuron": [3, 3], "module": [1, 0]})
    dbt_build(lake_dir, tmp / "w.duckdb", "--select", "+fct_study_agreement +dim_neuron_profile",
              "--indirect-selection", "cautious")  # tests of the selected models only
    return dict(path=tmp / "w.duckdb", rank=rank, universal=universal, score=score,
                sparsity=1 - frac_positive, kurtosis=kurtosis)


def _rows(path, sql: str) -> list[dict]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(sql).pl().to_dicts()


def test_universal_vs_salient_recovers_the_planted_odds_ratio_and_fishers_p(warehouse):
    [row] = _rows(warehouse["path"], "select * from fct_study_agreement "
                                     "where relation = 'universal_vs_salient'")
    odds, p = stats.fisher_exact([[20, 10], [20, 150]])
    assert row["task"] == "pos" and row["n_neurons"] == N
    assert row["value"] == pytest.approx(15.0) == pytest.approx(odds)
    assert row["p_value"] == pytest.approx(p, rel=1e-6)
    assert row["ci_low"] > 1 and row["significant"]


def test_score_correlations_match_scipys_spearman(warehouse):
    rows = {r["config_b"]: r for r in _rows(
        warehouse["path"], "select * from fct_study_agreement "
                           "where relation = 'explanation_score_vs_activation_shape'")}
    for name, values in (("activation sparsity", warehouse["sparsity"]),
                         ("activation kurtosis", warehouse["kurtosis"])):
        rho = stats.spearmanr(warehouse["score"], values).statistic
        assert rows[name]["value"] == pytest.approx(rho, abs=1e-12)
        assert rows[name]["n_neurons"] == N
        z, se = np.arctanh(rho), np.sqrt((1 + rho**2 / 2) / (N - 3))
        assert rows[name]["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z) / se), abs=1e-6)
        assert rows[name]["ci_low"] == pytest.approx(np.tanh(z - 1.959964 * se))
    assert rows["activation sparsity"]["value"] < -0.5 and rows["activation sparsity"]["significant"]


def test_ami_rows_get_benjamini_hochberg_q_values(warehouse):
    rows = _rows(warehouse["path"], "select config_a, q_value, significant from "
                                    "fct_study_agreement where statistic = 'ami' order by 1")
    assert rows == [{"config_a": "x", "q_value": pytest.approx(0.02), "significant": True},
                    {"config_a": "y", "q_value": pytest.approx(0.5), "significant": False}]


def test_the_profile_has_one_row_per_neuron_with_every_study(warehouse):
    rows = _rows(warehouse["path"], "select * from dim_neuron_profile order by site, neuron")
    assert len(rows) == N + 1  # the residual dimension too, with empty study lists
    resid = rows[-1]
    assert resid["site"] == "resid" and resid["explanation"] is None and resid["probing"] == []
    three = rows[3]
    assert three["top_tokens"] == ["d", "b", "f", "c", "e"]  # by mean, ties by token id
    assert three["spectral_modules"] == [
        {"matrix": "mlp_in", "similarity": "weight", "k": 2, "module": 1},
        {"matrix": "mlp_out", "similarity": "weight", "k": 2, "module": 0}]
    assert three["is_universal"] == bool(warehouse["universal"][3])
    assert [(c["method"], c["cluster_id"]) for c in three["explanation_clusters"]] == [
        ("hdbscan", -1), ("kmeans", 5)]
    [cluster] = three["activation_clusters"]
    assert cluster["cluster_id"] == 3 and cluster["cluster_drop_pct"] is None  # not ablated
    assert (three["previous_checkpoint"], three["stability_self_corr"]) == ("b", 0.8)
    [probe] = three["probing"]
    assert probe["rank"] == warehouse["rank"][3]
    assert probe["in_top_set"] == (warehouse["rank"][3] <= 40)
    assert probe["rank_percentile"] == pytest.approx(1 - (warehouse["rank"][3] - 1) / N)
    first = rows[int(np.argmin(warehouse["rank"]))]
    assert first["probing"][0]["salient_labels"] == ["NOUN"]  # mass_before 0 < 0.5 < 0.7
    assert first["probing"][0]["in_minimal_subset"] and first["n_tasks_salient"] == 1


def test_descriptions_are_comments_in_the_warehouse(warehouse):
    """persist_docs: an analyst in the DuckDB CLI sees every mart's and column's description."""
    rows = _rows(warehouse["path"], "select column_name, comment from duckdb_columns() "
                                    "where table_name = 'dim_neuron_profile'")
    assert rows and all(r["comment"] for r in rows), [r for r in rows if not r["comment"]]
    [table] = _rows(warehouse["path"], "select comment from duckdb_tables() "
                                       "where table_name = 'fct_study_agreement'")
    assert table["comment"].startswith("Each relationship between two studies")
    [view] = _rows(warehouse["path"], "select comment from duckdb_columns() where "
                                      "table_name = 'stg_study_agreement' and column_name = 'ami'")
    assert view["comment"].startswith("Adjusted mutual information")


def test_neuron_pages_show_the_explanation_and_link_only_to_pages_that_exist(warehouse, tmp_path):
    import re

    from reports.neuron_pages import build_site

    index = build_site(warehouse["path"], tmp_path / "site", per_list=5)
    text = index.read_text()
    assert "Most universal" in text and "Best explained" in text
    assert "Most salient for pos NOUN" in text
    pages = sorted((tmp_path / "site").rglob("*.html"))
    assert len(pages) > 5
    for page in pages:  # every link resolves to a file of the site
        for href in re.findall(r"href='([^']+)'", page.read_text()):
            assert (page.parent / href).resolve().is_file(), (page, href)
    best = int(np.argmax(warehouse["score"]))
    page = (tmp_path / "site" / "m" / "c" / f"mlp-L0-N{best}.html").read_text()
    assert f"e{best}" in page  # its explanation
    assert "<mark style='background:rgba(255,140,0,1.00)' title='2.000'>cat</mark>" in page


def test_nwh_neuron_prints_the_profile(warehouse, tmp_path, capsys):
    import shutil

    from dagster_project.cli import main

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(warehouse["path"], home / "warehouse.duckdb")
    assert main(["--home", str(home), "neuron", "--model", "m", "--layer", "0", "--neuron", "3"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^explanation\s+e3$", out, re.M)
    assert re.search(rf"^is_universal\s+{bool(warehouse['universal'][3])}$", out, re.M)
    assert main(["--home", str(home), "neuron", "--model", "m", "--layer", "0",
                 "--neuron", "999"]) == 1
    assert "no neuron model='m' site='mlp' layer=0 neuron=999" in capsys.readouterr().err


def _chromium(*args: str, timeout: int = 60) -> str:
    """Headless Chromium (Debian's package; .ci/run installs it), with the flags this closed
    machine needs, on a fresh profile."""
    import shutil
    import subprocess
    import tempfile

    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does)")
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", *args],
            capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_browser_renders_the_index_and_a_neuron_page(warehouse, tmp_path):
    """Chromium renders the pages: the index's links and a neuron page's explanation and shaded
    token are in the rendered document; screenshots of both are written for the README."""
    from reports.neuron_pages import build_site

    index = build_site(warehouse["path"], tmp_path / "site", per_list=5)
    rendered = _chromium("--dump-dom", index.as_uri())
    assert "Notable neurons" in rendered and "Most universal" in rendered
    best = int(np.argmax(warehouse["score"]))
    page = tmp_path / "site" / "m" / "c" / f"mlp-L0-N{best}.html"
    assert f"href=\"m/c/mlp-L0-N{best}.html\"" in rendered  # the index links the page
    dom = _chromium("--dump-dom", page.as_uri())
    assert f"e{best}" in dom and "<mark" in dom and ">cat</mark>" in dom
    shot = tmp_path / "page.png"
    _chromium(f"--screenshot={shot}", "--window-size=1000,900", page.as_uri())
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one


def test_nwh_docs_serves_the_lineage_on_loopback(warehouse, tmp_path):
    """`nwh docs` generates dbt's docs site on the warehouse and serves it on 127.0.0.1: the
    catalog it serves documents the profile mart's columns; the server is stopped by PID."""
    import json
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(warehouse["path"], home / "warehouse.duckdb")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "dagster_project.cli", "--home", str(home),
                               "docs", "--port", str(port)], start_new_session=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, catalog = time.time() + 240, None
        while catalog is None:
            assert time.time() < deadline and server.poll() is None, server.stdout.read()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/catalog.json") as r:
                    catalog = json.load(r)
            except OSError:
                time.sleep(1)
        node = catalog["nodes"]["model.neuron_warehouse.dim_neuron_profile"]
        assert "is_universal" in node["columns"]  # read from the warehouse
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/manifest.json") as r:
            described = json.load(r)["nodes"]["model.neuron_warehouse.dim_neuron_profile"]
        assert described["description"].startswith("One row per neuron")
        assert "fct_neuron_universality" in " ".join(described["depends_on"]["nodes"])  # lineage
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html") as r:
            assert r.status == 200
    finally:
        os.killpg(server.pid, signal.SIGKILL)  # dbt docs serve may ignore SIGTERM
        server.wait(30)
