"""Mirror the OpenAI explanation dataset layout (``{base}/{layer}/{neuron}.jsonl``) to a folder.

Resumable: a file already in the destination is not fetched again, and each download is written
to a temporary name and renamed, so an interrupted mirror never leaves a partial file. Concurrent
(a thread pool; the work is network-bound). A failed request (connection error, timeout, HTTP 5xx
or 429) is retried with exponential back-off; a 404 is final and reported as missing.
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FetchReport:
    downloaded: int = 0
    skipped: int = 0  # already present (resumed)
    missing: list[str] = field(default_factory=list)  # 404
    failed: list[str] = field(default_factory=list)  # still failing after every retry


def parse_layers(spec: str) -> list[int]:
    """'0-3,7,9-10' -> [0, 1, 2, 3, 7, 9, 10]; raises ValueError naming the bad part."""
    layers: list[int] = []
    for part in spec.split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            start, end = int(lo), int(hi) if dash else int(lo)
        except ValueError:
            raise ValueError(f"--layers: {part!r} is not a layer or a range like 0-47") from None
        if start < 0 or end < start:
            raise ValueError(f"--layers: {part!r} is not a non-negative, increasing range")
        layers.extend(range(start, end + 1))
    return sorted(set(layers))


def _download(url: str, dest: Path, retries: int, backoff: float, *, timeout: float) -> str:
    """'downloaded', 'missing' (404) or 'failed' after `retries` retries."""
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                body = response.read()
            tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
            tmp.write_bytes(body)
            os.replace(tmp, dest)
            return "downloaded"
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return "missing"
            if e.code < 500 and e.code != 429:
                return "failed"
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            pass
        if attempt < retries:
            time.sleep(backoff * 2 ** attempt)
    return "failed"


def fetch_explanations(
    base_url: str, layers: Iterable[int], neurons_per_layer: int, dest: str | Path,
    *, workers: int = 16, retries: int = 4, backoff: float = 0.5, timeout: float = 30.0,
    progress: Callable[[int, int], None] | None = None,
) -> FetchReport:
    """Mirror ``{base_url}/{layer}/{neuron}.jsonl`` for the given layers and neurons
    0..neurons_per_layer-1 into ``dest/{layer}/{neuron}.jsonl``."""
    if not base_url.startswith(("http://", "https://")):
        raise ValueError(f"--base-url {base_url!r} must start with http:// or https://")
    base = base_url.rstrip("/")
    report = FetchReport()
    todo = []
    for layer in layers:
        folder = Path(dest) / str(layer)
        folder.mkdir(parents=True, exist_ok=True)
        for neuron in range(neurons_per_layer):
            target = folder / f"{neuron}.jsonl"
            if target.exists():
                report.skipped += 1
            else:
                todo.append((f"{base}/{layer}/{neuron}.jsonl", target))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_download, url, target, retries, backoff, timeout=timeout): url
                   for url, target in todo}
        for done, future in enumerate(as_completed(futures), start=1):
            outcome = future.result()
            if outcome == "downloaded":
                report.downloaded += 1
            else:
                getattr(report, outcome).append(futures[future])
            if progress:
                progress(done, len(todo))
    report.missing.sort()
    report.failed.sort()
    return report
