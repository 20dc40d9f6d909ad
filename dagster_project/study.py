"""The study configuration: a YAML file that says which model, corpus, explanations and methods.

It is parsed once into a typed, frozen pydantic model (:class:`StudyConfig`): an unknown key, a
wrong type or a value out of range is a one-line :class:`StudyConfigError` that names the key.
Sections that configure a library take their fields and defaults from that library's settings
class (:func:`~dagster_project.study_rules.settings_fields`), so a default is written in one place. Relative paths are
resolved against the folder of the YAML file. ``dagster_project.demo.demo_study(home)`` is the embedded default used
by ``nwh demo``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from core.compute import Compute
from dagster_project.study_rules import (StudyConfigError, check_study, describe,
                                         library_values, settings_fields)
from extract.activations import SITES
from extract.embeddings import DEFAULT_EMBEDDING_MODEL
from models.activation_clusters.ablation import AblationSettings
from models.activation_clusters.clustering import ActivationClusterSettings
from models.explanation_clusters.clustering import ClusteringSettings
from models.salient_neurons import LcaSettings, TrainSettings


_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Section(BaseModel):
    model_config = _STRICT


class CorpusConfig(_Section):
    kind: Literal["synthetic", "text"] = "synthetic"
    path: str | None = None  # folder of .txt files (kind: text)
    per: Literal["line", "file"] = "line"  # one document per line or per file (kind: text)
    n_sentences: int = 4000  # kind: synthetic
    seed: int = 0
    heldout_fraction: float = 0.1


class ExplanationsConfig(_Section):
    source: Literal["local", "table", "openai"] = "local"
    path: str | None = None  # table: CSV or Parquet; openai: folder of {layer}/{neuron}.jsonl
    max_tokens: int = 8
    n_layers: int | None = None  # openai: expected layers (None = inferred from the folders)
    neurons_per_layer: int | None = None  # openai: expected neurons per layer (None = inferred)


class ExtractionConfig(_Section):
    sites: list[str] = Field(default_factory=lambda: list(SITES))  # neuron sites to extract
    batch_size: int = 32
    min_token_count: int = 5
    top_k: int = 10
    trust_pickle_checkpoints: bool = False  # load pytorch_model.bin with weights_only=True


class EmbeddingConfig(_Section):
    model: str = DEFAULT_EMBEDDING_MODEL
    batch_size: int = 256


class _ComputeBase(_Section):
    """Where the model-running steps run (:class:`core.compute.Compute`)."""

    def settings(self) -> Compute:
        return library_values(self, Compute)


ComputeConfig = create_model("ComputeConfig", __base__=_ComputeBase, **settings_fields(Compute))


class _ClusteringBase(_Section):
    """The explanation-clusters study (Ben Yaakov et al.): exactly ClusteringSettings."""

    def settings(self) -> ClusteringSettings:
        return library_values(self, ClusteringSettings)


ClusteringConfig = create_model("ClusteringConfig", __base__=_ClusteringBase,
                                **settings_fields(ClusteringSettings))


class _ProbingData(_Section):
    """The salient-neurons study's data; the LCA fields come from LcaSettings and TrainSettings."""

    enabled: bool = True
    labels: Literal["corpus", "conll"] = "corpus"  # the synthetic corpus's labels | a CoNLL file
    path: str | None = None  # CoNLL-style file: word<TAB>label[<TAB>label...] (labels: conll)
    tasks: list[str] = Field(default_factory=lambda: ["pos", "semantic_class"])
    site: Literal["resid", "mlp"] = "resid"  # the paper's layer outputs (13 x 768 on BERT-base)
    representative: str = "last"  # last | first | mean subword of a word
    max_sentences: int | None = 1000  # seeded sample of the labelled sentences
    dev_fraction: float = 0.1
    test_fraction: float = 0.1

    def lca_settings(self) -> LcaSettings:
        return library_values(self, LcaSettings, train=library_values(self, TrainSettings))


ProbingConfig = create_model("ProbingConfig", __base__=_ProbingData,
                             **settings_fields(LcaSettings, exclude=("train",)),
                             **settings_fields(TrainSettings))


class _ActivationClustersData(_Section):
    """The activation-clusters study (Zhang et al.): which sites, and how many clusters to
    ablate; the method's fields come from ActivationClusterSettings and AblationSettings
    (``ablation_`` + field)."""

    enabled: bool = True
    sites: list[str] = Field(default_factory=lambda: list(SITES))
    ablation: Literal["mean", "zero"] = "mean"  # an ablated neuron's value: the paper's mean
    ablation_max_clusters: int | None = None  # seeded sample per clustering (None = all)

    def settings(self) -> ActivationClusterSettings:
        return library_values(self, ActivationClusterSettings)

    def ablation_settings(self) -> AblationSettings:
        return library_values(self, AblationSettings, prefix="ablation_", seed=self.seed)


ActivationClustersConfig = create_model(
    "ActivationClustersConfig", __base__=_ActivationClustersData,
    **settings_fields(ActivationClusterSettings),
    **settings_fields(AblationSettings, prefix="ablation_", exclude=("seed",)))


class UniversalityConfig(_Section):
    """The universal-neurons study (Gurnee et al.): the model against models trained from other
    seeds on the same data (folders of checkpoints; the newest of each is used)."""

    other_models: list[str] = Field(default_factory=list)  # empty: the study does not run
    max_sentences: int = 1000  # first sentences of the train split, the same tokens for all
    threshold: float = 0.5  # universal when excess_corr is above it (the paper's)
    memory_budget_mb: int = 1024  # float64 working set of the blocked correlation
    seed: int = 0  # of the random rotations of the baseline


class ModularityConfig(_Section):
    """The modularity study (Golechha et al.): BSGC and enmeshment of every MLP weight matrix for
    each k; cluster ON/OFF and effective circuit size per semantic class for one layer."""

    enabled: bool = True
    ks: list[int] = Field(default_factory=lambda: [2, 3, 4, 5, 6, 7, 8])
    layer: int | None = None  # ON/OFF and circuit size: null = the middle layer (n_layers // 2)
    effect_k: int = 4  # clusters of that layer for ON/OFF (the paper's 4)
    max_sentences: int = 32  # held-out sequences per semantic class
    tolerance: float = 0.1  # circuit size: relative loss increase allowed while pruning
    prune_resolution: float = 0.001  # circuit size: share of the matrix the bisection resolves
    baseline_draws: int = 5  # shuffled-weight copies per matrix and k (E's baseline)
    seed: int = 0


class AgreementConfig(_Section):
    """Cross-study agreement (the neuron profile): AMI of two studies' partitions of the same
    neurons against a permutation null."""

    permutations: int = Field(199, ge=19)  # shuffles per pair; the smallest p is 1/(1 + this)
    seed: int = 0


class StudyConfig(_Section):
    model: str
    checkpoints: str | None = None
    checkpoint_name: str = "final"  # the checkpoint key of an explanation-only study
    corpus: CorpusConfig = CorpusConfig()
    explanations: ExplanationsConfig = ExplanationsConfig()
    extraction: ExtractionConfig = ExtractionConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    clustering: ClusteringConfig = ClusteringConfig()
    probing: ProbingConfig = ProbingConfig()
    activation_clusters: ActivationClustersConfig = ActivationClustersConfig()
    universality: UniversalityConfig = UniversalityConfig()
    modularity: ModularityConfig = ModularityConfig()
    agreement: AgreementConfig = AgreementConfig()
    compute: ComputeConfig = ComputeConfig()

    @property
    def needs_model(self) -> bool:  # false for explanations from a table or the OpenAI layout
        return self.explanations.source == "local"

    @property
    def runs_probing(self) -> bool:  # a model, and labels (CoNLL, or the synthetic corpus's)
        p = self.probing
        return (self.needs_model and p.enabled
                and (p.labels == "conll" or self.corpus.kind == "synthetic"))

    @property
    def runs_universality(self) -> bool:  # a model, and at least one other model
        return self.needs_model and bool(self.universality.other_models)

    @property
    def runs_modularity(self) -> bool:  # a model, and the study enabled
        return self.needs_model and self.modularity.enabled

    @property
    def runs_activation_clusters(self) -> bool:  # a model, and the study enabled
        return self.needs_model and self.activation_clusters.enabled


def _resolve(base: Path, path: str | None) -> str | None:
    return None if path is None else str((base / path).resolve())


def parse_study(data: Any, base_dir: Path) -> StudyConfig:
    """Validate a study mapping; resolve its relative paths against `base_dir`."""
    if not isinstance(data, dict) or "model" not in data:
        raise StudyConfigError("study config: the top level must be a mapping with a 'model' key")
    try:
        study = StudyConfig.model_validate(data)
    except ValidationError as e:
        raise StudyConfigError(describe(e, data, StudyConfig)) from None
    check_study(study)
    resolved = {"checkpoints": _resolve(base_dir, study.checkpoints)}
    for section in ("corpus", "explanations", "probing"):
        part = getattr(study, section)
        resolved[section] = part.model_copy(update={"path": _resolve(base_dir, part.path)})
    resolved["universality"] = study.universality.model_copy(update={
        "other_models": [_resolve(base_dir, p) for p in study.universality.other_models]})
    return study.model_copy(update=resolved)


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML file."""
    file = Path(path)
    if not file.is_file():
        raise StudyConfigError(f"study config file {str(file)!r} does not exist")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as e:
        raise StudyConfigError(f"study config file {str(file)!r} is not valid YAML: {e}") from None
    return parse_study(data, file.resolve().parent)
