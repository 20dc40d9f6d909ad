"""Jobs: the main job materializes the whole graph for one checkpoint partition."""

import dagster as dg

# In-process: on 2 cores a subprocess per step costs ~12 s of imports each and buys nothing.
main_job = dg.define_asset_job("main_job", selection=dg.AssetSelection.all(),
                               executor_def=dg.in_process_executor,
                               description="Everything for one checkpoint: corpus, extraction, "
                                           "explanations, clustering, the dbt warehouse, reports.")
