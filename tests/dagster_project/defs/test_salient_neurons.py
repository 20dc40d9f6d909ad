"""The probing assets outside `nwh run`: a study without labels writes empty, valid tables."""

import dagster as dg

from dagster_project.defs.salient_neurons import probe_labels
from dagster_project.studies import all_checks as lake_checks
from dagster_project.definitions import resources
from extract import lake
from tests.conftest import write_study


def test_a_study_without_labels_writes_an_empty_probe_labels_table(tmp_path, tiny_checkpoints):
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "a.txt").write_text("plain text has no labels\n")
    study_file = write_study(tmp_path, tiny_checkpoints,
                             corpus={"kind": "text", "path": "texts"})
    home = tmp_path / "home"
    result = dg.materialize([probe_labels, *lake_checks], selection=[dg.AssetKey(["lake", "probe_labels"])],
                            resources=resources(str(home), str(study_file)),
                            instance=dg.DagsterInstance.ephemeral())
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"probe_labels_expectations": True}
    assert lake.read_table(home / "lake", "probe_labels", "tiny").is_empty()
