"""What an asset's result depends on, in Dagster's own terms, so that Dagster knows what is stale.

- Each config section of the study is an observable source asset ``config/<section>`` whose data
  version is a hash of the section; a study's assets depend on the sections the study reads
  (:data:`STUDY_SECTIONS`), and on the files those sections name.
- The checkpoint's files are the partitioned source asset ``checkpoint`` whose data version is
  the files' fingerprint (sizes and modification times); the fidelity check, upstream of every
  model-reading step, depends on it.
- Each study's lake assets carry a code version: a hash of the source of the study's wiring
  module and of every project library module it imports, directly or not; a report asset's is
  that of its drawing module (a change to a plot does not make the tables stale).

An asset is then stale when its code, a section it reads or an upstream table has a new version,
and `nwh run` materializes only stale and missing assets and what depends on them.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import cache
from pathlib import Path

import dagster as dg
from pydantic import BaseModel

from dagster_project.home import REPO_ROOT

CONFIG = "config"
CHECKPOINT_KEY = dg.AssetKey("checkpoint")
LIBRARIES = ("core", "extract", "models", "training")  # what computes the lake's tables


# The config sections each study's assets read (their results depend on them); what a study
# reads through an upstream table (the extraction's top contexts, say) comes with that table. An
# asset may name the part it reads (the explanation study's explainer, embedding and clustering
# steps each read one section, so a new clustering.k does not re-explain).
# Every step that runs a model (or the embedding model) reads `compute`: a new dtype changes
# results, and a new device may change them in the last bits.
STUDY_SECTIONS = {
    "corpus": ("corpus",),
    "activations": ("extraction", "compute"),
    "explanation_clusters": ("explanations", "embedding", "clustering", "compute"),
    "salient_neurons": ("probing", "compute"),
    "activation_clusters": ("activation_clusters", "compute"),
    "universal_neurons": ("universality", "compute"),
    "modularity": ("modularity", "compute"),
    "neuron_profile": ("agreement",),
}


def config_key(section: str) -> dg.AssetKey:
    return dg.AssetKey([CONFIG, section])


def path_fingerprint(path: Path) -> str:
    """Names, sizes and modification times (ns) of a file, or of every file under a folder."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return "|".join(f"{p.relative_to(path.parent)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
                    for p in files)


def section_version(section: BaseModel) -> dg.DataVersion:
    """The data version of a config section: a hash of its JSON and of the fingerprint of every
    file or folder that one of its values names (an explanations table, a text corpus, a CoNLL
    file, the other models' checkpoints), so a rewritten input file is a change too."""
    parts = [section.model_dump_json()]
    for value in section.model_dump().values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and item and Path(item).exists():
                parts.append(f"{item}={path_fingerprint(Path(item))}")
    return dg.DataVersion(hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16])


def _imported_modules(path: Path) -> set[str]:
    """The project library modules that the file at `path` imports (absolute imports)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.split(".")[0] in LIBRARIES}


def _module_file(name: str) -> Path | None:
    """The source file of module `name`; None when `name` is not a module (an imported name)."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # `from package.module import function` names no module
        return None
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


@cache
def source_files(module: str) -> tuple[Path, ...]:
    """The source file of `module` and of every project library module it imports, transitively."""
    seen: dict[str, Path | None] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen[name] = _module_file(name)
            if seen[name] is not None:
                todo.extend(_imported_modules(seen[name]))
    return tuple(sorted(p for p in seen.values() if p is not None))


@cache
def code_version(module: str) -> str:
    """A hash of the contents of :func:`source_files` of `module` (for a study's lake assets,
    ``dagster_project.defs.<study>``)."""
    digest = hashlib.sha256()
    for path in source_files(module):
        digest.update(str(path.relative_to(REPO_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
