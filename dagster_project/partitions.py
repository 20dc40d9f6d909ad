"""The checkpoint dimension: one dynamic partition per (model, checkpoint), keyed ``model/checkpoint``;
and the number of corpus shards extraction is split into within a checkpoint."""

from __future__ import annotations

import hashlib
import os

import dagster as dg

from extract.lake import safe_name

checkpoints_partitions = dg.DynamicPartitionsDefinition(name="checkpoints")


def partition_key(model: str, checkpoint: str) -> str:
    return f"{safe_name(model, 'model')}/{safe_name(checkpoint, 'checkpoint')}"


VERSION_TAG = "nwh/version"  # on every run of a checkpoint partition, by nwh run or the sensor


def run_version(study_json: str, fingerprint: str) -> str:
    """What a checkpoint run computes from: the checkpoint's files (their fingerprint) and the
    whole study config (as JSON). A successful run tagged with it need not run again."""
    return hashlib.sha256(f"{fingerprint}\n{study_json}".encode()).hexdigest()[:16]


def parse_partition_key(key: str) -> tuple[str, str]:
    """(model, checkpoint) of a partition key ``model/checkpoint``."""
    model, sep, checkpoint = key.partition("/")
    if not sep:
        raise ValueError(f"partition key {key!r} is not of the form 'model/checkpoint'")
    return safe_name(model, "model"), safe_name(checkpoint, "checkpoint")


def extraction_shards() -> int:
    """``NWH_EXTRACTION_SHARDS`` (default 2, one per core of the reference machine): the number
    of shard assets the train split is divided into. Fixed when the definitions load, since each
    shard is an asset (a step the multiprocess executor can run beside the others)."""
    value = os.environ.get("NWH_EXTRACTION_SHARDS", "2")
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"NWH_EXTRACTION_SHARDS={value!r} is not a whole number >= 1")
    return int(value)
