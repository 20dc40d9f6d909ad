"""The checkpoint dimension: one dynamic partition per (model, checkpoint), keyed ``model/checkpoint``."""

from __future__ import annotations

import dagster as dg

from extract.lake import safe_name

checkpoints_partitions = dg.DynamicPartitionsDefinition(name="checkpoints")


def partition_key(model: str, checkpoint: str) -> str:
    return f"{safe_name(model, 'model')}/{safe_name(checkpoint, 'checkpoint')}"


def parse_partition_key(key: str) -> tuple[str, str]:
    """(model, checkpoint) of a partition key ``model/checkpoint``."""
    model, sep, checkpoint = key.partition("/")
    if not sep:
        raise ValueError(f"partition key {key!r} is not of the form 'model/checkpoint'")
    return safe_name(model, "model"), safe_name(checkpoint, "checkpoint")
