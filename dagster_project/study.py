"""The study configuration: a YAML file that says which model, corpus, explanations and methods.

Unknown keys and wrong types are errors that name the key. Relative paths are resolved against
the folder of the YAML file. ``demo_study(home)`` is the embedded default used by ``nwh demo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from extract.activations import SITE_MLP, SITES
from extract.embeddings import DEFAULT_EMBEDDING_MODEL
from extract.lake import LakeError, safe_name
from extract.probe_data import REPRESENTATIVES, SYNTHETIC_TASKS
from models.ablation import AblationSettings
from models.activation_clusters import REPRESENTATIONS, ActivationClusterSettings
from models.clustering import NOISE_CHOICES, ClusteringSettings
from models.probing import PAPER_LAMBDAS, LcaSettings, TrainSettings


class StudyConfigError(ValueError):
    """The study configuration file is missing, unreadable, or has unknown keys or wrong types."""


@dataclass(frozen=True)
class CorpusConfig:
    kind: str = "synthetic"  # synthetic | text
    path: str | None = None  # folder of .txt files (kind: text)
    per: str = "line"  # one document per line or per file (kind: text)
    n_sentences: int = 4000  # kind: synthetic
    seed: int = 0
    heldout_fraction: float = 0.1


@dataclass(frozen=True)
class ExplanationsConfig:
    source: str = "local"  # local | table | openai
    path: str | None = None  # table: CSV or Parquet; openai: folder of {layer}/{neuron}.jsonl
    max_tokens: int = 8
    n_layers: int | None = None  # openai: expected layers (None = inferred from the folders)
    neurons_per_layer: int | None = None  # openai: expected neurons per layer (None = inferred)


@dataclass(frozen=True)
class ExtractionConfig:
    sites: list[str] = field(default_factory=lambda: ["mlp", "resid"])  # neuron sites to extract
    batch_size: int = 32
    min_token_count: int = 5
    top_k: int = 10
    trust_pickle_checkpoints: bool = False  # load pytorch_model.bin with weights_only=True


@dataclass(frozen=True)
class EmbeddingConfig:
    model: str = DEFAULT_EMBEDDING_MODEL
    batch_size: int = 64


@dataclass(frozen=True)
class ClusteringConfig:
    """The explanation-clusters study (Ben Yaakov et al.); see models.clustering for each knob."""

    methods: list[str] = field(default_factory=lambda: ["kmeans", "dbscan", "hdbscan", "random"])
    k: int | None = None
    filter_percentiles: list[int] = field(default_factory=lambda: [0, 50, 90])
    seed: int = 0
    kmeans_n_init: int = 10
    dbscan_eps: float = 0.3
    dbscan_min_samples: int = 10
    hdbscan_min_cluster_size: int = 10
    hdbscan_dims: int = 5
    noise: str = "reassign"  # reassign | keep
    max_fit_neurons: int = 20000
    null_shuffles: int = 20

    def settings(self) -> ClusteringSettings:
        return ClusteringSettings(**{f.name: getattr(self, f.name) for f in fields(self)})


@dataclass(frozen=True)
class ProbingConfig:
    """The salient-neurons study (LCA); defaults are the paper's (Durrani et al., Sec. 2, 3)."""

    enabled: bool = True
    labels: str = "corpus"  # corpus (the synthetic corpus's labels) | conll
    path: str | None = None  # CoNLL-style file: word<TAB>label[<TAB>label...] (labels: conll)
    tasks: list[str] = field(default_factory=lambda: ["pos", "semantic_class"])
    representative: str = "last"  # last | first | mean subword of a word
    max_sentences: int | None = 1000  # seeded sample of the labelled sentences
    dev_fraction: float = 0.1
    test_fraction: float = 0.1
    lambdas: list[float] = field(default_factory=lambda: list(PAPER_LAMBDAS))
    epochs: int = 10
    batch_size: int = 512
    learning_rate: float = 0.001
    top_percent: float = 20.0
    ranking_step: float = 1.0
    delta: float = 0.01
    minimal_step: float = 1.0
    n_random: int = 3
    seed: int = 0

    def lca_settings(self) -> LcaSettings:
        return LcaSettings(
            lambdas=tuple(float(v) for v in self.lambdas), top_percent=self.top_percent,
            ranking_step=self.ranking_step, delta=self.delta, minimal_step=self.minimal_step,
            n_random=self.n_random,
            train=TrainSettings(self.epochs, self.batch_size, self.learning_rate, self.seed))


@dataclass(frozen=True)
class ActivationClustersConfig:
    """The activation-clusters study (Zhang et al.); defaults are the paper's (K = 50 and 200,
    lambda 0.5 over 5 neighbours, refinement threshold 0.6). See models.activation_clusters and
    models.ablation for each knob."""

    enabled: bool = True
    sites: list[str] = field(default_factory=lambda: ["mlp", "resid"])
    representations: list[str] = field(default_factory=lambda: list(REPRESENTATIONS))
    ks: list[int] = field(default_factory=lambda: [50, 200])
    refine: bool = True  # also the refined variant of every clustering
    min_token_count: int = 5
    smoothing_lambda: float = 0.5
    smoothing_neighbours: int = 5
    refine_threshold: float = 0.6
    top_tokens: int = 10
    ablation_repeats: int = 5  # draws of each random baseline per cluster
    ablation_max_sentences: int = 32  # held-out sequences per cluster
    ablation_max_clusters: int | None = None  # seeded sample per clustering (None = all)
    ablation_batch_rows: int = 64  # sequences per forward pass
    seed: int = 0

    def settings(self) -> ActivationClusterSettings:
        return ActivationClusterSettings(
            representations=tuple(self.representations), ks=tuple(self.ks), refine=self.refine,
            min_token_count=self.min_token_count, smoothing_lambda=self.smoothing_lambda,
            smoothing_neighbours=self.smoothing_neighbours,
            refine_threshold=self.refine_threshold, top_tokens=self.top_tokens, seed=self.seed)

    def ablation_settings(self) -> AblationSettings:
        return AblationSettings(self.ablation_repeats, self.ablation_max_sentences,
                                self.ablation_batch_rows, self.seed)


@dataclass(frozen=True)
class UniversalityConfig:
    """The universal-neurons study (Gurnee et al.): the study's model against other models
    trained from other seeds on the same data (each a folder of checkpoints; its newest is used)."""

    other_models: list[str] = field(default_factory=list)  # empty: the study does not run
    max_sentences: int = 1000  # first sentences of the train split, the same tokens for all
    threshold: float = 0.5  # universal when excess_corr is above it (the paper's)
    memory_budget_mb: int = 1024  # float64 working set of the blocked correlation
    seed: int = 0  # of the random rotations of the baseline


@dataclass(frozen=True)
class ModularityConfig:
    """The modularity study (Golechha et al.): BSGC and enmeshment of every MLP weight matrix for
    each k; cluster ON/OFF and effective circuit size per semantic class for one layer."""

    enabled: bool = True
    ks: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6, 7, 8])
    layer: int | None = None  # ON/OFF and circuit size: null = the middle layer (n_layers // 2)
    effect_k: int = 4  # clusters of that layer for ON/OFF (the paper's 4)
    max_sentences: int = 32  # held-out sequences per semantic class
    tolerance: float = 0.1  # circuit size: relative loss increase allowed while pruning
    prune_step: float = 0.1  # share of the remaining weights pruned per round
    seed: int = 0


@dataclass(frozen=True)
class StudyConfig:
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


_SECTIONS = {"corpus": CorpusConfig, "explanations": ExplanationsConfig,
             "extraction": ExtractionConfig, "embedding": EmbeddingConfig,
             "clustering": ClusteringConfig, "probing": ProbingConfig,
             "activation_clusters": ActivationClustersConfig, "universality": UniversalityConfig,
             "modularity": ModularityConfig}
_CHOICES = {("corpus", "kind"): ("synthetic", "text"), ("corpus", "per"): ("line", "file"),
            ("explanations", "source"): ("local", "table", "openai"),
            ("clustering", "noise"): NOISE_CHOICES,
            ("probing", "labels"): ("corpus", "conll"),
            ("probing", "representative"): REPRESENTATIVES}


def _check_type(where: str, value: Any, annotation: str) -> Any:
    if value is None and "None" in annotation:
        return None
    if "list" in annotation:
        name = next(n for n in ("int", "float", "str") if f"[{n}]" in annotation)
        inner = {"int": int, "float": (int, float), "str": str}[name]
        if not isinstance(value, list) or not all(isinstance(v, inner) and not isinstance(v, bool)
                                                  for v in value):
            raise StudyConfigError(f"study config: {where} must be a list of {name}, "
                                   f"got {value!r}")
        return [float(v) for v in value] if name == "float" else value
    expected = {"bool": bool, "int": int, "float": (int, float), "str": str}
    for name, typ in expected.items():
        if annotation.startswith(name):
            if (isinstance(value, bool) and name != "bool") or not isinstance(value, typ):
                raise StudyConfigError(f"study config: {where} must be {name}, got {value!r}")
            return float(value) if name == "float" else value
    return value


def _build(cls, data: Any, where: str):
    if not isinstance(data, dict):
        raise StudyConfigError(f"study config: {where} must be a mapping, got {data!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise StudyConfigError(f"study config: unknown key(s) {unknown} in {where}; "
                               f"known keys: {sorted(known)}")
    values = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where != "top level" else key
        if key in _SECTIONS:
            values[key] = _build(_SECTIONS[key], value, path)
            continue
        values[key] = _check_type(path, value, str(known[key].type))
        choices = _CHOICES.get((where, key))
        if choices and value not in choices:
            raise StudyConfigError(f"study config: {path} must be one of {list(choices)}, "
                                   f"got {value!r}")
    try:
        return cls(**values)
    except TypeError as e:
        raise StudyConfigError(f"study config: {where}: {e}") from None


def _check_probing(p: ProbingConfig) -> None:
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


def _check_activation_clusters(a: ActivationClustersConfig, extraction: ExtractionConfig) -> None:
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


def _check_clustering(c: ClusteringConfig) -> None:
    bad = [p for p in c.filter_percentiles if not 0 <= p < 100]
    if bad:
        raise StudyConfigError(f"study config: clustering.filter_percentiles {bad} not in [0, 100)")
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


def _resolve(base: Path, path: str | None) -> str | None:
    return None if path is None else str((base / path).resolve())


def parse_study(data: Any, base_dir: Path) -> StudyConfig:
    """Validate a study mapping; resolve its relative paths against `base_dir`."""
    if not isinstance(data, dict) or "model" not in data:
        raise StudyConfigError("study config: the top level must be a mapping with a 'model' key")
    study = _build(StudyConfig, data, "top level")
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
    return StudyConfig(
        **{**{f.name: getattr(study, f.name) for f in fields(StudyConfig)},
           "checkpoints": _resolve(base_dir, study.checkpoints),
           "corpus": CorpusConfig(**{**study.corpus.__dict__,
                                     "path": _resolve(base_dir, study.corpus.path)}),
           "explanations": ExplanationsConfig(**{**study.explanations.__dict__,
                                                 "path": _resolve(base_dir, study.explanations.path)}),
           "probing": ProbingConfig(**{**study.probing.__dict__,
                                       "path": _resolve(base_dir, study.probing.path)}),
           "universality": UniversalityConfig(**{
               **study.universality.__dict__,
               "other_models": [_resolve(base_dir, p) for p in study.universality.other_models]})})


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
    return StudyConfig(model="demo", checkpoints=str(Path(home) / "checkpoints" / "demo"),
                       activation_clusters=ActivationClustersConfig(ablation_max_clusters=10))
