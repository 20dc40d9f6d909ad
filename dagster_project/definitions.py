"""The Definitions of Neuron Warehouse: the registered studies' assets and checks
(:mod:`dagster_project.studies`), the jobs, the sensor, the schedule and the resources."""

from __future__ import annotations

import os

import dagster as dg

from dagster_project.defs import warehouse
from dagster_project.home import default_home, default_lake
from dagster_project.jobs import extraction_shards_celery_job, extraction_shards_job, main_job
from dagster_project.resources import NwhResource
from dagster_project.sensors import checkpoint_sensor, daily_refresh
from dagster_project.studies import all_assets, all_checks


def resources(home: str | None = None, study_file: str | None = None,
              lake_url: str | None = None) -> dict:
    return {
        "nwh": NwhResource(home=str(home or default_home()),
                           study_file=study_file if study_file is not None
                           else os.environ.get("NWH_STUDY", ""),
                           lake_url=lake_url if lake_url is not None else default_lake()),
        "dbt": warehouse.WarehouseDbt(project_dir=warehouse.dbt_project,
                                      dbt_executable=warehouse.DBT_EXECUTABLE),
    }


defs = dg.Definitions(assets=all_assets, asset_checks=all_checks,
                      jobs=[main_job, extraction_shards_job,
                            extraction_shards_celery_job], sensors=[checkpoint_sensor],
                      schedules=[daily_refresh], resources=resources())


def extraction_shards_job_def() -> dg.JobDefinition:
    """The resolved extraction job, for `dg.reconstructable` (its steps run in other processes)."""
    return defs.resolve_job_def(extraction_shards_job.name)


def extraction_shards_celery_job_def() -> dg.JobDefinition:
    """The resolved Celery extraction job, for `dg.reconstructable` (the workers rebuild it)."""
    return defs.resolve_job_def(extraction_shards_celery_job.name)
