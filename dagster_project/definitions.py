"""The Definitions of Neuron Warehouse: only collects what `defs/<study>.py` define."""

from __future__ import annotations

import os

import dagster as dg
from dagster_dbt import DbtCliResource

from dagster_project.defs import (activation_clusters, activations, corpus, explanation_clusters,
                                  modularity, neuron_profile, salient_neurons, sources,
                                  universal_neurons, warehouse)
from dagster_project.home import default_home, default_lake
from dagster_project.jobs import extraction_shards_job, main_job
from dagster_project.resources import NwhResource
from dagster_project.sensors import checkpoint_sensor, daily_refresh

# Each study module has STUDY (its name), assets, checks and runs(study_config).
STUDIES = [corpus, activations, explanation_clusters, salient_neurons, activation_clusters,
           universal_neurons, modularity, neuron_profile]
all_assets = [*sources.assets, *(a for study in STUDIES for a in study.assets), *warehouse.assets]
all_checks = [c for study in STUDIES for c in study.checks]


def resources(home: str | None = None, study_file: str | None = None,
              lake_url: str | None = None) -> dict:
    return {
        "nwh": NwhResource(home=str(home or default_home()),
                           study_file=study_file if study_file is not None
                           else os.environ.get("NWH_STUDY", ""),
                           lake_url=lake_url if lake_url is not None else default_lake()),
        "dbt": DbtCliResource(project_dir=warehouse.dbt_project,
                              dbt_executable=warehouse.DBT_EXECUTABLE),
    }


defs = dg.Definitions(assets=all_assets, asset_checks=all_checks,
                      jobs=[main_job, extraction_shards_job], sensors=[checkpoint_sensor],
                      schedules=[daily_refresh], resources=resources())


def extraction_shards_job_def() -> dg.JobDefinition:
    """The resolved extraction job, for `dg.reconstructable` (its steps run in other processes)."""
    return defs.resolve_job_def(extraction_shards_job.name)
