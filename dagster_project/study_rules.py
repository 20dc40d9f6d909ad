"""The study configuration's error messages and value rules: a pydantic error becomes one line
that names the key (:func:`describe`); :func:`check_study` holds the rules a type cannot say;
:func:`settings_fields` and :func:`library_values` carry a library's settings dataclass into a
config section and back, so each default is written once, in the library."""

import dataclasses
from collections.abc import Sequence
from typing import Any, Literal, get_args, get_origin, get_type_hints

from pydantic import BaseModel, Field, ValidationError

from extract.activations import SITE_MLP, SITES
from extract.lake import LakeError, safe_name
from extract.probe_data import REPRESENTATIVES, SYNTHETIC_TASKS


class StudyConfigError(ValueError):
    """The study configuration file is missing, unreadable, or has unknown keys or wrong types."""


def settings_fields(cls, *, prefix: str = "", exclude: Sequence[str] = ()) -> dict[str, Any]:
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


def library_values(section: BaseModel, cls, *, prefix: str = "", **extra) -> Any:
    """An instance of settings class `cls` from the section's fields named `prefix` + field."""
    values = {f.name: getattr(section, prefix + f.name) for f in dataclasses.fields(cls)
              if hasattr(section, prefix + f.name)}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    return cls(**values, **extra)


_TYPE_NAMES = {"int_type": "int", "int_from_float": "int", "float_type": "float",
               "float_parsing": "float", "string_type": "str", "bool_type": "bool",
               "list_type": "a list", "model_type": "a mapping", "dict_type": "a mapping"}


def describe(error: ValidationError, data: Any, root: type[BaseModel]) -> str:
    """The first problem of a pydantic error as one line naming the key."""
    e = error.errors()[0]
    loc = [str(part) for part in e["loc"] if not isinstance(part, int)]
    path = ".".join(loc) or "top level"
    if e["type"] == "extra_forbidden":
        where = ".".join(loc[:-1]) or "top level"
        section = root
        for name in loc[:-1]:
            section = section.model_fields[name].annotation
        unknown = sorted(set(_get(data, loc[:-1])) - set(section.model_fields))
        return (f"study config: unknown key(s) {unknown} in {where}; "
                f"known keys: {sorted(section.model_fields)}")
    if e["type"] == "literal_error":
        choices = [a for a in get_args(_annotation(root, loc)) if a is not None]
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


def _annotation(root: type[BaseModel], loc: list[str]):
    section = root
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


def _check_extraction(e) -> None:
    if SITE_MLP not in e.sites or not set(e.sites) <= set(SITES) or len(set(e.sites)) != len(e.sites):
        raise StudyConfigError(f"study config: extraction.sites must be distinct names from "
                               f"{list(SITES)} and include 'mlp' (explanations and probes use it), "
                               f"got {e.sites}")
    if e.batch_size < 1 or e.min_token_count < 1 or e.top_k < 1:
        raise StudyConfigError("study config: extraction.batch_size, min_token_count and top_k "
                               "must be >= 1")


def _check_probing_site(p, extraction) -> None:
    if p.enabled and p.site not in extraction.sites:
        raise StudyConfigError(f"study config: probing.site {p.site!r} must be one of "
                               f"extraction.sites ({extraction.sites}): the features are that "
                               "site's activations")


def _check_activation_clusters(a, extraction) -> None:
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
    try:
        c.settings()
    except ValueError as e:
        raise StudyConfigError(f"study config: {e}") from None
    for name in ("kmeans_n_init", "dbscan_min_samples", "hdbscan_dims", "max_fit_neurons"):
        if getattr(c, name) < 1:
            raise StudyConfigError(f"study config: clustering.{name} must be >= 1")
    if c.hdbscan_min_cluster_size < 2 or c.null_shuffles < 99:
        raise StudyConfigError("study config: clustering.hdbscan_min_cluster_size must be >= 2 "
                               "and clustering.null_shuffles >= 99 (p-values need shuffles)")
    if not 0 < c.dbscan_eps <= 2:
        raise StudyConfigError("study config: clustering.dbscan_eps is a cosine distance in (0, 2]")


def check_study(study) -> None:
    """The rules a type cannot say: choices, ranges, and keys that require one another."""
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
    _check_probing_site(study.probing, study.extraction)
    _check_activation_clusters(study.activation_clusters, study.extraction)
    m = study.modularity
    if (not m.ks or min(m.ks) < 2 or m.effect_k < 2 or m.max_sentences < 1
            or m.baseline_draws < 2):
        raise StudyConfigError("study config: modularity.ks and effect_k must be >= 2, "
                               "max_sentences >= 1 and baseline_draws >= 2")
    if not 0 < m.prune_resolution < 1 or m.tolerance <= 0:
        raise StudyConfigError("study config: modularity.prune_resolution must be in (0, 1) and "
                               "tolerance > 0")
    u = study.universality
    if u.max_sentences < 1 or u.memory_budget_mb < 1 or not -1 <= u.threshold <= 2:
        raise StudyConfigError("study config: universality.max_sentences and memory_budget_mb "
                               "must be >= 1 and threshold an excess correlation in [-1, 2]")
    _check_clustering(study.clustering)
