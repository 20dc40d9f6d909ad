"""The dbt unit tests of the metric SQL (fixed input rows, expected output rows, in the models'
YAML). The pipeline's build leaves them out (`BUILD_EXCLUDES`, as dbt recommends for production
runs: they do not depend on the lake), so they run here, once."""

import json

from tests.dbt.build import dbt_build


def test_every_dbt_unit_test_passes(tmp_path):
    """`dbt build --empty` (every model with its columns and no rows, no data tests) on an empty
    lake: every unit test of the manifest runs and passes."""
    target = tmp_path / "target"
    dbt_build(tmp_path / "lake", tmp_path / "w.duckdb", "--empty", "--exclude-resource-type",
              "test", "--target-path", str(target))
    manifest = json.loads((target / "manifest.json").read_text())
    results = json.loads((target / "run_results.json").read_text())["results"]
    unit = {r["unique_id"]: r["status"] for r in results if r["unique_id"].startswith("unit_test.")}
    assert len(manifest["unit_tests"]) >= 14
    assert unit == {name: "pass" for name in manifest["unit_tests"]}
