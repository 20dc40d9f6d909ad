"""The registry of studies: each `defs/<study>.py` module, the assets and checks they define,
and which of them a study config selects. Definitions, the runner and the sensor all read it."""

from __future__ import annotations

import dagster as dg

from dagster_project.defs import (activation_clusters, activations, corpus, explanation_clusters,
                                  modularity, neuron_profile, salient_neurons, sources,
                                  universal_neurons, warehouse)
from dagster_project.defs.activations import SHARD_KEYS
from dagster_project.defs.shared import lake_key
from dagster_project.study import StudyConfig
from extract.lake import STUDY_TABLES

# Each study module has STUDY (its name), assets, checks and runs(study_config).
STUDIES = [corpus, activations, explanation_clusters, salient_neurons, activation_clusters,
           universal_neurons, modularity, neuron_profile]
all_assets = [*sources.assets, *(a for study in STUDIES for a in study.assets), *warehouse.assets]
all_checks = [c for study in STUDIES for c in study.checks]


def selection_for(study: StudyConfig) -> dg.AssetSelection:
    """Everything, minus the lake tables of every study that does not run for this config (a
    whole `main_job` run from the UI runs them anyway; they then write empty partitions), and
    minus the extraction shards when the study runs no model."""
    skipped = [lake_key(table) for s in STUDIES if not s.runs(study)
               for table in STUDY_TABLES[s.STUDY]]
    return dg.AssetSelection.all() - dg.AssetSelection.assets(
        *skipped, *([] if study.needs_model else SHARD_KEYS))
