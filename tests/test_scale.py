"""Scale: extraction shards in parallel processes merge to the unsharded tables; the lake may be
any fsspec URL."""

import duckdb
import numpy as np
import polars as pl
import pytest

import dagster as dg
from dagster_project.defs.activations import N_SHARDS, SHARD_KEYS
from dagster_project.definitions import resources
from dagster_project.studies import all_assets, all_checks
from dagster_project.partitions import checkpoints_partitions, partition_key
from dagster_project.runner import extract_in_parallel, instance_for
from extract import lake
from extract.activations import extract_aggregates, load_bridge
from extract.checkpoints import find_checkpoints
from extract.corpus import sentences
from tests.conftest import run_tiny_study, write_study
from tests.test_never_broken import _explanations_csv


def _assert_frames_equal(merged: pl.DataFrame, whole: pl.DataFrame, keys: list[str]) -> None:
    merged, whole = merged.sort(keys), whole.sort(keys)
    floats = [c for c, t in whole.schema.items() if t == pl.Float64]
    assert merged.drop(floats).equals(whole.drop(floats))
    for c in floats:
        np.testing.assert_allclose(merged[c].to_numpy(), whole[c].to_numpy(), rtol=1e-6,
                                   atol=1e-6, err_msg=c)


def test_shards_in_two_processes_merge_to_the_unsharded_tables(tmp_path, tiny_checkpoints,
                                                               monkeypatch):
    """The extraction job runs the shard assets under the multiprocess executor (2 workers); the
    merge asset's tables equal one unsharded stream over the whole train split. The lake is a
    file:// URL outside the home, so the step processes reach it through fsspec."""
    assert N_SHARDS == 2
    home, lake_dir = tmp_path / "home", tmp_path / "elsewhere" / "lake"
    monkeypatch.setenv("NWH_LAKE_URL", lake_dir.as_uri())
    study_file = write_study(tmp_path, tiny_checkpoints)
    instance = instance_for(home)
    key = partition_key("tiny", find_checkpoints(tiny_checkpoints)[-1][0])
    instance.add_dynamic_partitions(checkpoints_partitions.name, [key])

    extract_in_parallel(home, str(study_file), key, instance, workers=2)
    runs = instance.get_runs()
    step_pids = {e.dagster_event.pid for e in instance.all_logs(runs[0].run_id)
                 if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"}
    # the corpus, the checkpoint's fidelity gate, their checks and each shard: a process each
    assert len(step_pids) == 4 + N_SHARDS
    dg.materialize([*all_assets, *all_checks],
                   selection=dg.AssetSelection.assets(["lake", "neuron_moments"])
                   .required_multi_asset_neighbors(), partition_key=key, resources=resources(str(home), str(study_file)),
                   instance=instance, raise_on_error=True)

    bridge = load_bridge(find_checkpoints(tiny_checkpoints)[-1][1])
    train = sentences(lake.read_table(str(lake_dir), "corpus", "tiny"), "train")
    whole = extract_aggregates(bridge, train, ("mlp", "resid"), batch_size=64, min_token_count=3,
                               top_k=5)
    checkpoint = key.split("/")[1]
    for table, frame, keys in (
            ("neuron_moments", whole.moments, ["site", "layer", "neuron"]),
            ("neuron_token_means", whole.token_means, ["site", "layer", "neuron", "token_id"]),
            ("neuron_top_contexts", whole.top_contexts, ["site", "layer", "neuron", "rank"])):
        _assert_frames_equal(lake.read_table(lake_dir.as_uri(), table, "tiny", checkpoint),
                             frame, keys)
    assert not (home / "lake").exists()  # nothing went to the default local lake


def test_a_stale_shard_is_refused_by_the_merge(tmp_path, tiny_checkpoints):
    """A shard state from another corpus is not silently merged."""
    home = tmp_path / "home"
    study_file = write_study(tmp_path, tiny_checkpoints)
    instance = dg.DagsterInstance.ephemeral()
    key = partition_key("tiny", find_checkpoints(tiny_checkpoints)[-1][0])
    instance.add_dynamic_partitions(checkpoints_partitions.name, [key])
    selection = dg.AssetSelection.assets(["lake", "corpus"], *SHARD_KEYS)
    dg.materialize([*all_assets], selection=selection, partition_key=key,
                   resources=resources(str(home), str(study_file)), instance=instance)
    corpus = lake.read_table(home / "lake", "corpus", "tiny")  # the corpus changes afterwards
    lake.write_table(home / "lake", "corpus", corpus.filter(pl.col("sentence_id") != 3), "tiny")
    with pytest.raises(Exception, match="current corpus .stale.; re-materialize the shard assets"):
        dg.materialize([*all_assets], selection=dg.AssetSelection.assets(
                           ["lake", "neuron_moments"]).required_multi_asset_neighbors(),
                       partition_key=key, resources=resources(str(home), str(study_file)),
                       instance=instance)


def test_lake_tables_round_trip_through_an_fsspec_url():
    """Writes and reads go through fsspec: an in-memory filesystem holds a whole table."""
    url = "memory://nwh-test/lake"
    df = pl.DataFrame({"layer": [0, 1], "neuron": [3, 4], "explanation": ["a", "b"],
                       "score": [0.5, None]})
    path = lake.write_table(url, "explanations", df, "m", checkpoint="final")
    assert path == f"{url}/explanations/model=m/checkpoint=final/data.parquet"
    assert lake.read_table(url, "explanations", "m", "final").equals(df)
    lake.ensure_placeholders(url)
    placeholder = lake.read_parquet(f"{url}/explanations/model=_none/checkpoint=_none/data.parquet")
    assert placeholder.num_rows == 0 and placeholder.column_names == list(df.columns)
    with pytest.raises(lake.LakeError, match="materialize its asset first"):
        lake.read_table(url, "explanations", "m", "other")


def test_a_study_on_a_file_url_lake_builds_the_warehouse(tmp_path, monkeypatch):
    """dbt (DuckDB) reads the same URL the Python assets wrote through fsspec."""
    lake_dir = tmp_path / "lake-elsewhere"
    monkeypatch.setenv("NWH_LAKE_URL", lake_dir.as_uri())
    home = tmp_path / "home"
    study = write_study(tmp_path, None, model="m", clustering={"k": 2},
                        explanations={"source": "table",
                                      "path": _explanations_csv(tmp_path, [0.1] * 6)})
    run_tiny_study(home, study)
    assert (lake_dir / "explanations" / "model=m" / "checkpoint=final" / "data.parquet").exists()
    assert not (home / "lake").exists()
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from fct_layer_gini").fetchone()[0] == 2 * 3 * 3
