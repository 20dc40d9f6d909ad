"""The neuron profile: what the studies say about the same neurons, side by side. Python writes
the agreements SQL cannot compute (AMI against a permutation null); dbt builds the profile and
the agreement mart (``dbt/models/marts/neuron_profile/``)."""

import dagster as dg
import polars as pl

from dagster_project.defs.shared import (empty, lake_checks, open_partition, partitioned_asset,
                                         preview, write_tables)
from dagster_project.resources import NwhResource
from dagster_project.study import StudyConfig
from dagster_project.versions import code_version
from models.study_agreement import agreement_table
from reports.neuron_pages import build_site

STUDY = "neuron_profile"


def runs(study: StudyConfig) -> bool:
    """Always: a pair of studies that did not run gives no rows."""
    return True


@partitioned_asset("study_agreement", STUDY,
                   ["explanation_clusters", "activation_clusters", "spectral_modules"],
                   "Agreement between studies on the same MLP neurons: adjusted mutual "
                   "information of every explanation clustering with every activation "
                   "clustering, and of every activation clustering with every spectral-module "
                   "split per layer, each with its permutation null (the AMI of shuffled labels: "
                   "mean, sd, and the one-sided p-value (1 + #null >= observed) / (1 + "
                   "permutations)).")
def study_agreement(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
    opened = open_partition(context, nwh)
    cfg = opened.study.agreement
    study = opened.study  # a study that does not run for this config wrote no partition

    def read(table: str, ran: bool) -> pl.DataFrame:
        return opened.read(table) if ran else empty(table)

    rows = agreement_table(read("explanation_clusters", True),
                           read("activation_clusters", study.runs_activation_clusters),
                           read("spectral_modules", study.runs_modularity),
                           permutations=cfg.permutations, seed=cfg.seed)
    df = pl.DataFrame(rows, schema=empty("study_agreement").schema)
    opened.log(f"{len(df)} partition pairs compared, {cfg.permutations} permutations each")
    return next(write_tables(opened, {"study_agreement": df}, {"study_agreement": {
        "preview": preview(df.sort("ami", descending=True, nulls_last=True), 10)}}, multi=False))


@dg.asset(key=["reports", "neuron_pages"], group_name=STUDY, kinds={"python", "html"},
          code_version=code_version(build_site.__module__),
          deps=[dg.AssetKey("dim_neuron_profile"), dg.AssetKey("fct_study_agreement")],
          description="A static site of notable neurons at <home>/reports/neurons/index.html "
                      "(most universal, most salient per label, best explained, largest "
                      "ablation effect), one page per listed neuron with its top contexts, "
                      "token histogram, explanation and every study's verdict; built from the "
                      "warehouse alone. `nwh report` prints its path.")
def neuron_pages(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
    index = build_site(nwh.warehouse_path, nwh.home_dir / "reports" / "neurons")
    n_pages = sum(1 for _ in index.parent.rglob("*.html")) - 1
    context.log.info(f"{n_pages} neuron pages under {index.parent}")
    return dg.MaterializeResult(metadata={"index": str(index), "n_pages": n_pages})


assets = [study_agreement, neuron_pages]
checks = lake_checks(STUDY)
