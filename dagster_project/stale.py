"""Which assets of a checkpoint partition need materializing: Dagster's stale status of each
(code version, config sections and upstream data versions, see :mod:`dagster_project.versions`),
closed over what depends on them."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import dagster as dg
# Dagster has no public call for an asset's stale status outside the UI; this is the resolver
# the UI and the sensors' `stale_assets_only` use.
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._time import get_current_datetime

from dagster_project.defs.shared import lake_key
from dagster_project.partitions import parse_partition_key
from dagster_project.studies import all_assets
from extract import lake


@cache
def asset_graph() -> AssetGraph:
    """The graph of every registered asset, built once per process."""
    return AssetGraph.from_assets(all_assets)


def stale_assets(instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey],
                 partition_key: str) -> dict[dg.AssetKey, str]:
    """Each of `keys` that is stale or missing for `partition_key` (unpartitioned assets: as a
    whole), with why: 'missing' or its stale causes."""
    graph = asset_graph()
    view = AssetGraphView(temporal_context=TemporalContext(effective_dt=get_current_datetime(),
                                                           last_event_id=None),
                          instance=instance, asset_graph=graph)
    resolver = CachingStaleStatusResolver(instance, graph, view)
    found = {}
    for key in keys:
        partition = partition_key if graph.get(key).is_partitioned else None
        status = resolver.get_status(key, partition)
        if status == StaleStatus.MISSING:
            found[key] = "missing"
        elif status == StaleStatus.STALE:
            found[key] = "; ".join(sorted({
                f"{c.reason} ({c.dependency.asset_key.to_user_string()})" if c.dependency
                else c.reason for c in resolver.get_stale_causes(key, partition)}))
    return found


def with_downstream(start: set[dg.AssetKey], within: set[dg.AssetKey]) -> set[dg.AssetKey]:
    """`start` and everything in `within` downstream of it; an asset that computes several keys
    at once (a multi-asset that cannot subset, the dbt build that publishes one warehouse file)
    is taken whole."""
    graph = asset_graph()
    whole = [set(a.keys) for a in all_assets
             if isinstance(a, dg.AssetsDefinition) and len(a.keys) > 1]
    selected = set(start) & within
    while True:
        grown = {child for key in selected for child in graph.get(key).child_keys} & within
        grown |= {key for keys in whole if keys & (selected | grown) for key in keys} & within
        if grown <= selected:
            return selected
        selected |= grown


def absent_model_tables(lake_root: str, model: str) -> dict[dg.AssetKey, str]:
    """The tables keyed by the model only (the corpus, the probing labels) that have no lake
    partition for `model`. Their assets are not partitioned, so Dagster calls them up to date
    once any study in the home has materialized them; a study of another model in the same home
    still needs its own partition."""
    return {lake_key(table): f"no lake partition for model {model!r}"
            for table in sorted(lake.CORPUS_TABLES)
            if not lake.exists(lake.partition_path(lake_root, table, model))}


def to_materialize(instance: dg.DagsterInstance, selected: set[dg.AssetKey], key: str,
                   lake_root: str, *, everything: bool = False
                   ) -> tuple[set[dg.AssetKey], dict[dg.AssetKey, str]]:
    """Of the `selected` assets, those of partition `key` to materialize: all when `everything`,
    else the stale and missing ones, the model's tables absent from the lake at `lake_root`
    (:func:`absent_model_tables`), and what depends on them; and the stale ones with why. The
    sources' versions must have been recorded first
    (:func:`dagster_project.defs.sources.record_versions`)."""
    if everything:
        return selected, {}
    absent = absent_model_tables(lake_root, parse_partition_key(key)[0])
    stale = {**stale_assets(instance, sorted(selected), key),
             **{k: why for k, why in absent.items() if k in selected}}
    return with_downstream(set(stale), selected), stale
