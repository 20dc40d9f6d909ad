"""The Definitions of Neuron Warehouse: only loads what the other modules define."""

from __future__ import annotations

import os

import dagster as dg
from dagster_dbt import DbtCliResource

from dagster_project import assets
from dagster_project.checks import lake_checks
from dagster_project.dbt_assets import DBT_EXECUTABLE, dbt_project, warehouse_dbt
from dagster_project.jobs import main_job
from dagster_project.resources import NwhResource, default_home
from dagster_project.sensors import checkpoint_sensor, daily_refresh

python_assets = dg.load_assets_from_modules([assets])
all_assets = [*python_assets, warehouse_dbt]
all_checks = lake_checks


def resources(home: str | None = None, study_file: str | None = None) -> dict:
    return {
        "nwh": NwhResource(home=str(home or default_home()),
                           study_file=study_file if study_file is not None
                           else os.environ.get("NWH_STUDY", "")),
        "dbt": DbtCliResource(project_dir=dbt_project,
                              dbt_executable=DBT_EXECUTABLE),
    }


defs = dg.Definitions(assets=all_assets, asset_checks=all_checks, jobs=[main_job],
                      sensors=[checkpoint_sensor], schedules=[daily_refresh], resources=resources())
