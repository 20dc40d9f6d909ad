import pytest

from dagster_project.study import StudyConfigError, load_study, parse_study


def test_relative_paths_resolve_against_the_study_file(tmp_path):
    (tmp_path / "s.yaml").write_text("model: m\ncheckpoints: ckpts\ncorpus: {kind: text, path: txt}\n")
    study = load_study(tmp_path / "s.yaml")
    assert study.checkpoints == str(tmp_path / "ckpts")
    assert study.corpus.path == str(tmp_path / "txt")
    assert study.clustering.methods == ["kmeans", "dbscan", "hdbscan", "random"]


@pytest.mark.parametrize("data, message", [
    ({"model": "m", "checkpoints": "c", "colour": 1}, r"unknown key\(s\) \['colour'\] in top level"),
    ({"model": "m", "checkpoints": "c", "clustering": {"k": "ten"}}, "clustering.k must be int"),
    ({"model": "m", "checkpoints": "c", "clustering": {"metods": []}}, r"\['metods'\] in clustering"),
    ({"model": "m", "checkpoints": "c", "clustering": {"methods": ["optics"]}},
     r"unknown methods \['optics'\]"),
    ({"model": "m", "checkpoints": "c", "clustering": {"dbscan_noise": "drop"}},
     r"clustering.dbscan_noise must be one of \['reassign', 'keep'\]"),
    ({"model": "m", "checkpoints": "c", "clustering": {"hdbscan_reduction": "tsne"}},
     r"clustering.hdbscan_reduction must be one of \['umap', 'pca'\]"),
    ({"model": "m", "checkpoints": "c", "clustering": {"null_shuffles": 50}}, "null_shuffles >= 99"),
    ({"model": "m", "explanations": {"source": "openai"}}, "explanations.path is required"),
    ({"model": "m", "checkpoints": "c", "corpus": {"kind": "poems"}}, "corpus.kind must be one of"),
    ({"model": "m"}, "'checkpoints' is required"),
    ({"model": "../up", "checkpoints": "c"}, "is not a valid name"),
    ({"checkpoints": "c"}, "with a 'model' key"),
    ({"model": "m", "explanations": {"source": "table"}}, "explanations.path is required"),
    ({"model": "m", "checkpoints": "c", "probing": {"labels": "conll"}}, "probing.path"),
    ({"model": "m", "checkpoints": "c", "probing": {"tasks": ["chunk"]}},
     r"probing.tasks \['chunk'\] are not labels of the synthetic corpus"),
    ({"model": "m", "checkpoints": "c", "probing": {"lambdas": [0.1, "x"]}},
     "probing.lambdas must be a list of float"),
    ({"model": "m", "checkpoints": "c", "probing": {"lambdas": [-1.0]}}, "non-negative"),
    ({"model": "m", "checkpoints": "c", "probing": {"representative": "middle"}},
     "probing.representative must be one of"),
    ({"model": "m", "checkpoints": "c", "probing": {"test_fraction": 0.7}}, "test_fraction"),
])
def test_bad_study_configs_name_the_key(tmp_path, data, message):
    with pytest.raises(StudyConfigError, match=message):
        parse_study(data, tmp_path)


def test_missing_study_file(tmp_path):
    with pytest.raises(StudyConfigError, match="does not exist"):
        load_study(tmp_path / "nope.yaml")


def test_probing_runs_only_with_labels(tmp_path):
    synthetic = parse_study({"model": "m", "checkpoints": "c"}, tmp_path)
    text = parse_study({"model": "m", "checkpoints": "c", "corpus": {"kind": "text", "path": "t"}},
                       tmp_path)
    conll = parse_study({"model": "m", "checkpoints": "c", "corpus": {"kind": "text", "path": "t"},
                         "probing": {"labels": "conll", "path": "pos.conll"}}, tmp_path)
    assert synthetic.runs_probing and not text.runs_probing and conll.runs_probing
    assert conll.probing.path == str(tmp_path / "pos.conll")
    assert synthetic.probing.lca_settings().lambdas == (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 0.0)


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_bad_shard_count_is_named(monkeypatch, value):
    from dagster_project.partitions import extraction_shards

    monkeypatch.setenv("NWH_EXTRACTION_SHARDS", value)
    with pytest.raises(ValueError, match=f"NWH_EXTRACTION_SHARDS='{value}'"):
        extraction_shards()
    monkeypatch.setenv("NWH_EXTRACTION_SHARDS", "3")
    assert extraction_shards() == 3


def test_library_settings_are_the_config_defaults(tmp_path):
    """A default study section builds exactly the library's default settings: one default, one place."""
    from models.activation_clusters.ablation import AblationSettings
    from models.activation_clusters.clustering import ActivationClusterSettings
    from models.explanation_clusters.clustering import ClusteringSettings
    from models.salient_neurons import LcaSettings

    study = parse_study({"model": "m", "checkpoints": "c"}, tmp_path)
    assert study.clustering.settings() == ClusteringSettings()
    assert study.probing.lca_settings() == LcaSettings()
    assert study.activation_clusters.settings() == ActivationClusterSettings()
    assert study.activation_clusters.ablation_settings() == AblationSettings()


@pytest.mark.parametrize("data, message", [
    ({"activation_clusters": {"ablation_repeats": True}},
     "activation_clusters.ablation_repeats must be int, got True"),
    ({"modularity": {"ks": 3}}, "modularity.ks must be a list, got 3"),
    ({"universality": []}, "universality must be a mapping"),
    ({"probing": {"epochs": 1.5}}, "probing.epochs must be int"),
    ({"extraction": {"top_kk": 3}}, r"unknown key\(s\) \['top_kk'\] in extraction"),
])
def test_wrong_types_are_one_line_naming_the_key(tmp_path, data, message):
    with pytest.raises(StudyConfigError, match=message) as raised:
        parse_study({"model": "m", "checkpoints": "c", **data}, tmp_path)
    assert "\n" not in str(raised.value)


def test_the_resource_parses_the_study_once_per_version_of_the_file(tmp_path, monkeypatch):
    import os

    import dagster_project.resources as resources_module
    from dagster_project.resources import NwhResource

    parses = []
    monkeypatch.setattr(resources_module, "load_study",
                        lambda path: parses.append(path) or load_study(path))
    file = tmp_path / "s.yaml"
    file.write_text("model: m\ncheckpoints: c\n")
    nwh = NwhResource(home=str(tmp_path), study_file=str(file))
    assert nwh.study() is nwh.study() and len(parses) == 1
    file.write_text("model: other\ncheckpoints: c\n")
    os.utime(file, ns=(1, 1))  # a new version, whatever the clock's resolution
    assert nwh.study().model == "other" and len(parses) == 2


def test_no_wiring_module_is_longer_than_250_lines():
    from pathlib import Path

    import dagster_project

    root = Path(dagster_project.__file__).parent
    lengths = {p.relative_to(root): len(p.read_text().splitlines()) for p in root.rglob("*.py")}
    assert max(lengths.values()) <= 250, {p: n for p, n in lengths.items() if n > 250}
