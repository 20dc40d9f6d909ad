"""The study configuration: a YAML file that says which model, corpus, explanations and methods.

It is parsed once into a typed, frozen pydantic model (:class:`StudyConfig`): an unknown key, a
wrong type or a value out of range is a one-line :class:`StudyConfigError` that names the key.
Sections that configure a library take their fields and defaults from that library's settings
class (:func:`_settings_fields`), so a default is written in one place. Relative paths are
resolved against the folder of the YAML file. ``demo_study(home)`` is the embedded default used
by ``nwh demo``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from extract.activations import SITE_MLP, SITES
from extract.embeddings import DEFAULT_EMBEDDING_MODEL
from extract.lake import LakeError, safe_name
from extract.probe_data import REPRESENTATIVES, SYNTHETIC_TASKS
from models.activation_clusters.ablation import AblationSettings
from models.activation_clusters.clustering import ActivationClusterSettings
from models.explanation_clusters.clustering import NOISE_CHOICES, ClusteringSettings
from models.salient_neurons import LcaSettings, TrainSettings


class StudyConfigError(ValueError):
    """The study configuration file is missing, unreadable, or has unknown keys or wrong types."""


_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Section(BaseModel):
    model_config = _STRICT


def _settings_fields(cls, *, prefix: str = "", exclude: Sequence[str] = ()) -> dict[str, Any]:
    """The fields of library settings dataclass `cls` as pydantic fields, with its defaults
    (tuples and sequences become lists, as YAML writes them), named `prefix` + field name."""
    hints = get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        if f.name in exclude:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        annotation = hints[f.name]
        if get_origin(annotation) in (tuple, Sequence):
            annotation, default = list[get_args(annotation)[0]], list(default)
        out[prefix + f.name] = (annotation, Field(default))
    return out


def _library_values(section: BaseModel, cls, *, prefix: str = "", **extra) -> Any:
    """An instance of settings class `cls` from the section's fields named `prefix` + field."""
    values = {f.name: getattr(section, prefix + f.name) for f in dataclasses.fields(cls)
              if hasattr(section, prefix + f.name)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**values, **extra)


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
    batch_size: int = 64


class _ClusteringBase(_Section):
    """The explanation-clusters study (Ben Yaakov et al.): exactly ClusteringSettings."""

    def settings(self) -> ClusteringSettings:
        return _library_values(self, ClusteringSettings)


ClusteringConfig = create_model("ClusteringConfig", __base__=_ClusteringBase,
                                **_settings_fields(ClusteringSettings))


class _ProbingData(_Section):
    """The salient-neurons study's data; the LCA fields come from LcaSettings and TrainSettings."""

    enabled: bool = True
    labels: Literal["corpus", "conll"] = "corpus"  # the synthetic corpus's labels | a CoNLL file
    path: str | None = None  # CoNLL-style file: word<TAB>label[<TAB>label...] (labels: conll)
    tasks: list[str] = Field(default_factory=lambda: ["pos", "semantic_class"])
    representative: str = "last"  # last | first | mean subword of a word
    max_sentences: int | None = 1000  # seeded sample of the labelled sentences
    dev_fraction: float = 0.1
    test_fraction: float = 0.1

    def lca_settings(self) -> LcaSettings:
        return _library_values(self, LcaSettings, train=_library_values(self, TrainSettings))


ProbingConfig = create_model("ProbingConfig", __base__=_ProbingData,
                             **_settings_fields(LcaSettings, exclude=("train",)),
                             **_settings_fields(TrainSettings))


class _ActivationClustersData(_Section):
    """The activation-clusters study (Zhang et al.): which sites, and how many clusters to
    ablate; the method's fields come from ActivationClusterSettings and AblationSettings
    (``ablation_`` + field)."""

    enabled: bool = True
    sites: list[str] = Field(default_factory=lambda: list(SITES))
    ablation_max_clusters: int | None = None  # seeded sample per clustering (None = all)

    def settings(self) -> ActivationClusterSettings:
        return _library_values(self, ActivationClusterSettings)

    def ablation_settings(self) -> AblationSettings:
        return _library_values(self, AblationSettings, prefix="ablation_", seed=self.seed)


ActivationClustersConfig = create_model(
    "ActivationClustersConfig", __base__=_ActivationClustersData,
    **_settings_fields(ActivationClusterSettings),
    **_settings_fields(AblationSettings, prefix="ablation_", exclude=("seed",)))


class UniversalityConfig(_Section):
    """The universal-neurons study (Gurnee et al.): the study's model against other models
    trained from other seeds on the same data (each a folder of checkpoints; its newest is used)."""

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
    prune_step: float = 0.1  # share of the remaining weights pruned per round
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

    @property
    def needs_model(self) -> bool:
        """Whether the study runs a model (false for explanations read from a table or the
        OpenAI dataset layout)."""
        return self.explanations.source == "local"

    @property
    def runs_probing(self) -> bool:
        """Whether the probing assets run: a model, and labels (a CoNLL file or the synthetic
        corpus; a plain text corpus has none)."""
        p = self.probing
        return (self.needs_model and p.enabled
                and (p.labels == "conll" or self.corpus.kind == "synthetic"))

    @property
    def runs_universality(self) -> bool:
        """Whether the universal-neurons asset runs: a model and at least one other model."""
        return self.needs_model and bool(self.universality.other_models)

    @property
    def runs_modularity(self) -> bool:
        """Whether the modularity assets run: a model, and the study enabled."""
        return self.needs_model and self.modularity.enabled

    @property
    def runs_activation_clusters(self) -> bool:
        """Whether the activation-clusters assets run: a model, and the study enabled."""
        return self.needs_model and self.activation_clusters.enabled


_TYPE_NAMES = {"int_type": "int", "int_from_float": "int", "float_type": "float",
               "float_parsing": "float", "string_type": "str", "bool_type": "bool",
               "list_type": "a list", "model_type": "a mapping", "dict_type": "a mapping"}


def _message(error: ValidationError, data: Any) -> str:
    """The first problem of a pydantic error as one line naming the key."""
    e = error.errors()[0]
    loc = [str(part) for part in e["loc"] if not isinstance(part, int)]
    path = ".".join(loc) or "top level"
    if e["type"] == "extra_forbidden":
        where = ".".join(loc[:-1]) or "top level"
        section = StudyConfig
        for name in loc[:-1]:
            section = StudyConfig.model_fields[name].annotation
        unknown = sorted(set(_get(data, loc[:-1])) - set(section.model_fields))
        return (f"study config: unknown key(s) {unknown} in {where}; "
                f"known keys: {sorted(section.model_fields)}")
    if e["type"] == "literal_error":
        choices = [a for a in get_args(_annotation(loc)) if a is not None]
        return f"study config: {path} must be one of {choices}, got {e['input']!r}"
    if e["type"] == "missing":
        return f"study config: {path} is required"
    if any(isinstance(part, int) for part in e["loc"]):
        inner = _TYPE_NAMES.get(e["type"], e["type"])
        return f"study config: {path} must be a list of {inner}, got {_get(data, loc)!r}"
    expected = _TYPE_NAMES.get(e["type"], e["msg"])
    return f"study config: {path} must be {expected}, got {e['input']!r}"


def _get(data: Any, keys: list[str]) -> Any:
    for key in keys:
        data = data[key]
    return data


def _annotation(loc: list[str]):
    section = StudyConfig
    for name in loc[:-1]:
        section = section.model_fields[name].annotation
    annotation = section.model_fields[loc[-1]].annotation
    return next((a for a in get_args(annotation) if get_origin(a) is Literal), annotation)


def _choose(path: str, value: Any, choices: Sequence) -> None:
    if value not in choices:
        raise StudyConfigError(f"study config: {path} must be one of {list(choices)}, "
                               f"got {value!r}")


def _check_probing(p) -> None:
    _choose("probing.representative", p.representative, REPRESENTATIVES)
    if p.labels == "conll" and not p.path:
        raise StudyConfigError("study config: probing.path (a CoNLL-style file) is required when "
                               "probing.labels is 'conll'")
    if p.labels == "corpus":
        unknown = sorted(set(p.tasks) - set(SYNTHETIC_TASKS))
        if unknown:
            raise StudyConfigError(f"study config: probing.tasks {unknown} are not labels of the "
                                   f"synthetic corpus; choose from {list(SYNTHETIC_TASKS)}")
    if not p.tasks or len(set(p.tasks)) != len(p.tasks):
        raise StudyConfigError(f"study config: probing.tasks must be distinct names, got {p.tasks}")
    if not p.lambdas or any(v < 0 for v in p.lambdas):
        raise StudyConfigError(f"study config: probing.lambdas must be non-negative, got {p.lambdas}")
    for name in ("dev_fraction", "test_fraction"):
        if not 0 < getattr(p, name) < 0.5:
            raise StudyConfigError(f"study config: probing.{name} must be in (0, 0.5)")
    for name in ("top_percent", "ranking_step", "minimal_step"):
        if not 0 < getattr(p, name) <= 100:
            raise StudyConfigError(f"study config: probing.{name} must be in (0, 100] percent")
    if p.epochs < 1 or p.batch_size < 1 or p.n_random < 1:
        raise StudyConfigError("study config: probing.epochs, batch_size and n_random must be >= 1")


def _check_extraction(e: ExtractionConfig) -> None:
    if SITE_MLP not in e.sites or not set(e.sites) <= set(SITES) or len(set(e.sites)) != len(e.sites):
        raise StudyConfigError(f"study config: extraction.sites must be distinct names from "
                               f"{list(SITES)} and include 'mlp' (explanations and probes use it), "
                               f"got {e.sites}")
    if e.batch_size < 1 or e.min_token_count < 1 or e.top_k < 1:
        raise StudyConfigError("study config: extraction.batch_size, min_token_count and top_k "
                               "must be >= 1")


def _check_activation_clusters(a, extraction: ExtractionConfig) -> None:
    missing = sorted(set(a.sites) - set(extraction.sites))
    if not a.sites or missing or len(set(a.sites)) != len(a.sites):
        raise StudyConfigError(f"study config: activation_clusters.sites must be distinct sites "
                               f"that extraction.sites extracts ({extraction.sites}), got {a.sites}")
    try:
        a.settings()
    except ValueError as e:
        raise StudyConfigError(f"study config: {e}") from None
    if a.ablation_repeats < 5:
        raise StudyConfigError("study config: activation_clusters.ablation_repeats must be >= 5 "
                               "(a baseline's spread needs several draws)")
    for name in ("ablation_max_sentences", "ablation_batch_rows"):
        if getattr(a, name) < 1:
            raise StudyConfigError(f"study config: activation_clusters.{name} must be >= 1")
    if a.ablation_max_clusters is not None and a.ablation_max_clusters < 1:
        raise StudyConfigError("study config: activation_clusters.ablation_max_clusters must be "
                               ">= 1 or null (all clusters)")


def _check_clustering(c) -> None:
    bad = [p for p in c.filter_percentiles if not 0 <= p < 100]
    if bad:
        raise StudyConfigError(f"study config: clustering.filter_percentiles {bad} not in [0, 100)")
    _choose("clustering.noise", c.noise, NOISE_CHOICES)
    try:
        c.settings()
    except ValueError as e:
        raise StudyConfigError(f"study config: {e}") from None
    for name in ("kmeans_n_init", "dbscan_min_samples", "hdbscan_dims", "max_fit_neurons"):
        if getattr(c, name) < 1:
            raise StudyConfigError(f"study config: clustering.{name} must be >= 1")
    if c.hdbscan_min_cluster_size < 2 or c.null_shuffles < 20:
        raise StudyConfigError("study config: clustering.hdbscan_min_cluster_size must be >= 2 "
                               "and clustering.null_shuffles >= 20")
    if not 0 < c.dbscan_eps <= 2:
        raise StudyConfigError("study config: clustering.dbscan_eps is a cosine distance in (0, 2]")


def _check_study(study: StudyConfig) -> None:
    try:
        safe_name(study.model, "study config: model")
        safe_name(study.checkpoint_name, "study config: checkpoint_name")
    except LakeError as e:
        raise StudyConfigError(str(e)) from None
    if study.corpus.kind == "text" and not study.corpus.path:
        raise StudyConfigError("study config: corpus.path is required when corpus.kind is 'text'")
    if study.explanations.source in ("table", "openai") and not study.explanations.path:
        raise StudyConfigError("study config: explanations.path is required when "
                               f"explanations.source is {study.explanations.source!r}")
    if study.needs_model and not study.checkpoints:
        raise StudyConfigError("study config: 'checkpoints' is required unless explanations "
                               "come from a table or the OpenAI layout (explanations.source: "
                               "table or openai)")
    _check_probing(study.probing)
    _check_extraction(study.extraction)
    _check_activation_clusters(study.activation_clusters, study.extraction)
    m = study.modularity
    if not m.ks or min(m.ks) < 2 or m.effect_k < 2 or m.max_sentences < 1:
        raise StudyConfigError("study config: modularity.ks and effect_k must be >= 2 and "
                               "max_sentences >= 1")
    if not 0 < m.prune_step < 1 or m.tolerance <= 0:
        raise StudyConfigError("study config: modularity.prune_step must be in (0, 1) and "
                               "tolerance > 0")
    u = study.universality
    if u.max_sentences < 1 or u.memory_budget_mb < 1 or not -1 <= u.threshold <= 2:
        raise StudyConfigError("study config: universality.max_sentences and memory_budget_mb "
                               "must be >= 1 and threshold an excess correlation in [-1, 2]")
    _check_clustering(study.clustering)


def _resolve(base: Path, path: str | None) -> str | None:
    return None if path is None else str((base / path).resolve())


def parse_study(data: Any, base_dir: Path) -> StudyConfig:
    """Validate a study mapping; resolve its relative paths against `base_dir`."""
    if not isinstance(data, dict) or "model" not in data:
        raise StudyConfigError("study config: the top level must be a mapping with a 'model' key")
    try:
        study = StudyConfig.model_validate(data)
    except ValidationError as e:
        raise StudyConfigError(_message(e, data)) from None
    _check_study(study)
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


def demo_study(home: Path) -> StudyConfig:
    """The embedded default: the demo GPT-2 on the synthetic corpus with the local explainer.
    Every activation clustering is built, and a seeded sample of 10 clusters of each is ablated
    (all 3,000 take about 13 minutes on 2 cores)."""
    return parse_study({"model": "demo", "checkpoints": str(Path(home) / "checkpoints" / "demo"),
                        "activation_clusters": {"ablation_max_clusters": 10}}, Path(home))
