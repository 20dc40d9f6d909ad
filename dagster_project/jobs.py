"""Jobs: the main job materializes the whole graph for one checkpoint partition; the extraction
jobs run the corpus and the extraction shards in parallel processes, or on Celery workers."""

import dagster as dg
from dagster_celery import celery_executor

from dagster_project.defs.activations import SHARD_KEYS
from dagster_project.defs.shared import LAKE

# In-process: on 2 cores a subprocess per step costs ~12 s of imports each and buys nothing.
# It observes the sources (config sections, checkpoint files) first, so every materialization
# records the versions it was computed from.
main_job = dg.define_asset_job("main_job", selection=dg.AssetSelection.all(include_sources=True),
                               executor_def=dg.in_process_executor,
                               description="Everything for one checkpoint: the config and "
                                           "checkpoint observed, corpus, extraction, "
                                           "explanations, clustering, the dbt warehouse, reports.")

EXTRACTION_ASSETS = dg.AssetSelection.assets(
    [*LAKE, "corpus"], [*LAKE, "checkpoint_fidelity"], *SHARD_KEYS)

# One process per step, forked from a server that has imported the definitions once (a step still
# costs ~10 s: Dagster rebuilds the job in it); `nwh run --workers N` sets max_concurrent to N.
extraction_shards_job = dg.define_asset_job(
    "extraction_shards_job",
    selection=EXTRACTION_ASSETS,
    executor_def=dg.multiprocess_executor,
    config={"execution": {"config": {
        "max_concurrent": len(SHARD_KEYS),
        "start_method": {"forkserver": {"preload_modules": ["dagster_project.definitions"]}}}}},
    description="The corpus, the checkpoint's fidelity check and every extraction shard of one "
                "checkpoint, shards in parallel "
                "processes (the multiprocess executor); then materialize lake/neuron_moments and "
                "everything downstream of it.")

# The same steps on Celery workers (docs/cluster.md): `nwh run --executor celery` configures the
# executor from deploy/celery.yaml, the file the workers are started on.
extraction_shards_celery_job = dg.define_asset_job(
    "extraction_shards_celery_job", selection=EXTRACTION_ASSETS, executor_def=celery_executor,
    description="The corpus, the checkpoint's fidelity check and every extraction shard of one "
                "checkpoint, each step a task for the Celery workers (deploy/celery.yaml).")
