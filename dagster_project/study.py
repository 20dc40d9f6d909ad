"""The study configuration: a YAML file that says which model, corpus, explanations and methods.

Unknown keys and wrong types are errors that name the key. Relative paths are resolved against
the folder of the YAML file. ``demo_study(home)`` is the embedded default used by ``nwh demo``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from extract.embeddings import DEFAULT_EMBEDDING_MODEL
from extract.lake import LakeError, safe_name


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
    source: str = "local"  # local | table
    path: str | None = None  # CSV or Parquet of layer, neuron, explanation, score (source: table)
    max_tokens: int = 8


@dataclass(frozen=True)
class ExtractionConfig:
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
    methods: list[str] = field(default_factory=lambda: ["kmeans", "random"])
    k: int | None = None
    filter_percentiles: list[int] = field(default_factory=lambda: [0, 50, 90])
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

    @property
    def needs_model(self) -> bool:
        """Whether the study runs a model (false for explanations read from a table)."""
        return self.explanations.source == "local"


_SECTIONS = {"corpus": CorpusConfig, "explanations": ExplanationsConfig,
             "extraction": ExtractionConfig, "embedding": EmbeddingConfig,
             "clustering": ClusteringConfig}
_CHOICES = {("corpus", "kind"): ("synthetic", "text"), ("corpus", "per"): ("line", "file"),
            ("explanations", "source"): ("local", "table")}


def _check_type(where: str, value: Any, annotation: str) -> Any:
    if value is None and "None" in annotation:
        return None
    if "list" in annotation:
        inner = int if "int" in annotation else str
        if not isinstance(value, list) or not all(isinstance(v, inner) and not isinstance(v, bool)
                                                  for v in value):
            raise StudyConfigError(f"study config: {where} must be a list of {inner.__name__}, "
                                   f"got {value!r}")
        return value
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
    if study.explanations.source == "table" and not study.explanations.path:
        raise StudyConfigError("study config: explanations.path is required when "
                               "explanations.source is 'table'")
    if study.needs_model and not study.checkpoints:
        raise StudyConfigError("study config: 'checkpoints' is required unless explanations "
                               "come from a table (explanations.source: table)")
    bad = [p for p in study.clustering.filter_percentiles if not 0 <= p < 100]
    if bad:
        raise StudyConfigError(f"study config: clustering.filter_percentiles {bad} not in [0, 100)")
    return StudyConfig(
        **{**{f.name: getattr(study, f.name) for f in fields(StudyConfig)},
           "checkpoints": _resolve(base_dir, study.checkpoints),
           "corpus": CorpusConfig(**{**study.corpus.__dict__,
                                     "path": _resolve(base_dir, study.corpus.path)}),
           "explanations": ExplanationsConfig(**{**study.explanations.__dict__,
                                                 "path": _resolve(base_dir, study.explanations.path)})})


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
    """The embedded default: the demo GPT-2 on the synthetic corpus with the local explainer."""
    return StudyConfig(model="demo", checkpoints=str(Path(home) / "checkpoints" / "demo"))
