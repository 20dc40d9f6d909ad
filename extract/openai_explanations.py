"""The public OpenAI neuron-explanation dataset (Bills et al. 2023) in its own layout.

A folder ``<root>/{layer}/{neuron}.jsonl``; each file holds one JSON line of
``NeuronSimulationResults``: ``neuron_id`` {``layer_index``, ``neuron_index``} and
``scored_explanations``, a list whose first entry's ``explanation`` is the text and whose
``scored_simulation.ev_correlation_score`` is the score (null or NaN allowed). Extra fields such
as ``dataclass_name`` are ignored.

Files are parsed in parallel, one task per layer folder. Nothing malformed stops the read: every
problem becomes a row of the rejects table (path, layer, neuron, problem, detail), as do the
neurons missing from the expected grid and the neurons whose score is null (those stay in the
explanations, with a null score).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from core.schema import SCHEMAS


class RecordError(ValueError):
    """One explanation file is not a valid NeuronSimulationResults record."""

    def __init__(self, problem: str, detail: str):
        super().__init__(detail)
        self.problem = problem


@dataclass(frozen=True)
class OpenAIExplanations:
    explanations: pl.DataFrame  # layer, neuron, explanation, score
    rejects: pl.DataFrame  # path, layer, neuron, problem, detail
    n_files: int


def _field(obj, key: str, where: str):
    if not isinstance(obj, dict) or key not in obj:
        raise RecordError("missing_field", f"no field {where}{key}")
    return obj[key]


def _int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecordError("wrong_type", f"{where} must be an integer, got {value!r}")
    return value


def parse_record(text: str) -> tuple[int, int, str, float | None]:
    """(layer, neuron, explanation, score) of one NeuronSimulationResults JSON line.

    Raises RecordError with its problem kind: bad_json, missing_field or wrong_type."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        raise RecordError("bad_json", f"expected one JSON line, found {len(lines)}")
    try:
        record = json.loads(lines[0])
    except json.JSONDecodeError as e:
        raise RecordError("bad_json", f"invalid JSON: {e}") from None
    neuron_id = _field(record, "neuron_id", "")
    layer = _int(_field(neuron_id, "layer_index", "neuron_id."), "neuron_id.layer_index")
    neuron = _int(_field(neuron_id, "neuron_index", "neuron_id."), "neuron_id.neuron_index")
    scored = _field(record, "scored_explanations", "")
    if not isinstance(scored, list) or not scored:
        raise RecordError("wrong_type", "scored_explanations must be a non-empty list")
    first = scored[0]
    explanation = _field(first, "explanation", "scored_explanations[0].")
    if not isinstance(explanation, str):
        raise RecordError("wrong_type", f"explanation must be a string, got {explanation!r}")
    simulation = _field(first, "scored_simulation", "scored_explanations[0].")
    score = _field(simulation, "ev_correlation_score", "scored_simulation.")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise RecordError("wrong_type", f"ev_correlation_score must be a number or null, "
                                        f"got {score!r}")
    score = None if score is None or math.isnan(score) else float(score)
    return layer, neuron, explanation, score


def _read_layer(folder: str, layer: int) -> tuple[list[tuple], list[tuple]]:
    """Parse every file of one layer folder: (rows, rejects)."""
    rows, rejects = [], []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        stem, dot, ext = entry.name.partition(".")
        if not (entry.is_file() and dot and ext == "jsonl" and stem.isdigit()):
            rejects.append((entry.path, layer, None, "unexpected_path",
                            "not a <neuron>.jsonl file"))
            continue
        neuron = int(stem)
        try:
            with open(entry.path, encoding="utf-8") as f:
                got_layer, got_neuron, text, score = parse_record(f.read())
        except UnicodeDecodeError:
            rejects.append((entry.path, layer, neuron, "bad_json", "not UTF-8 text"))
            continue
        except RecordError as e:
            rejects.append((entry.path, layer, neuron, e.problem, str(e)))
            continue
        if (got_layer, got_neuron) != (layer, neuron):
            rejects.append((entry.path, layer, neuron, "neuron_id_mismatch",
                            f"neuron_id says layer {got_layer}, neuron {got_neuron}"))
            continue
        rows.append((layer, neuron, text, score, entry.path))
    return rows, rejects


def read_openai_explanations(
    root: str | Path, n_layers: int | None = None, neurons_per_layer: int | None = None,
    workers: int | None = None, *, progress: Callable[[int, int], None] | None = None,
) -> OpenAIExplanations:
    """Read ``root/{layer}/{neuron}.jsonl`` in parallel into explanations and rejects.

    The expected grid is layers 0..n_layers-1 x neurons 0..neurons_per_layer-1 (each inferred
    from the largest index found when not given); a layer folder outside 0..n_layers-1 is
    rejected as layer_out_of_range, a second file for the same neuron (e.g. 5.jsonl and
    05.jsonl) as duplicate, and every grid neuron without a valid file is listed as missing.
    Raises ValueError only when `root` is not a folder of layer folders.
    """
    base = Path(root)
    if str(root).startswith(("http://", "https://")):
        raise ValueError(f"explanations path {str(root)!r} is a URL: mirror it first with "
                         "`nwh explanations fetch --base-url URL --dest DIR`, then use DIR")
    if not base.is_dir():
        raise ValueError(f"explanations folder {str(base)!r} does not exist")
    layer_dirs, rejects = [], []
    for entry in sorted(os.scandir(base), key=lambda e: e.name):
        if entry.is_dir() and entry.name.isdigit():
            layer_dirs.append((entry.path, int(entry.name)))
        else:
            rejects.append((entry.path, None, None, "unexpected_path", "not a <layer>/ folder"))
    if not layer_dirs:
        raise ValueError(f"explanations folder {str(base)!r} holds no <layer>/ folders of "
                         "<neuron>.jsonl files (the OpenAI dataset layout)")
    n_layers = n_layers or max(layer for _, layer in layer_dirs) + 1
    rows = []
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        futures = [pool.submit(_read_layer, path, layer) for path, layer in layer_dirs]
        for i, future in enumerate(futures):
            layer_rows, layer_rejects = future.result()
            rows.extend(layer_rows)
            rejects.extend(layer_rejects)
            if progress:
                progress(i + 1, len(futures))
    n_files = len(rows) + sum(1 for r in rejects if r[3] != "unexpected_path")
    explanations, seen = [], set()
    for layer, neuron, text, score, path in sorted(rows, key=lambda r: (r[0], r[1], r[4])):
        if not 0 <= layer < n_layers:
            rejects.append((path, layer, neuron, "layer_out_of_range",
                            f"layer {layer} is not in 0..{n_layers - 1}"))
        elif (layer, neuron) in seen:
            rejects.append((path, layer, neuron, "duplicate",
                            f"a second file for layer {layer}, neuron {neuron}"))
        else:
            seen.add((layer, neuron))
            explanations.append((layer, neuron, text, score))
            if score is None:
                rejects.append((path, layer, neuron, "null_score",
                                "ev_correlation_score is null or NaN (kept, score null)"))
    width = neurons_per_layer or max((n for _, n in seen), default=-1) + 1
    rejects.extend((str(base / str(layer) / f"{neuron}.jsonl"), layer, neuron, "missing",
                    "no valid explanation file for this neuron")
                   for layer in range(n_layers) for neuron in range(width)
                   if (layer, neuron) not in seen)
    return OpenAIExplanations(
        explanations=pl.DataFrame(explanations, schema=SCHEMAS["explanations"], orient="row"),
        rejects=pl.DataFrame(rejects, schema=SCHEMAS["explanation_rejects"], orient="row")
                  .sort(["layer", "neuron", "path"], nulls_last=True),
        n_files=n_files)


def neuron_record(layer: int, neuron: int, explanation: str, score: float | None) -> str:
    """One NeuronSimulationResults JSON line in the public dataset's shape (for fixtures,
    benchmarks and users who export their own explanations in this layout)."""
    return json.dumps({
        "dataclass_name": "NeuronSimulationResults",
        "neuron_id": {"dataclass_name": "NeuronId", "layer_index": layer, "neuron_index": neuron},
        "scored_explanations": [{
            "dataclass_name": "ScoredExplanation", "explanation": explanation,
            "scored_simulation": {"dataclass_name": "ScoredSimulation",
                                  "ev_correlation_score": score}}],
    }) + "\n"
