"""The shared corpus: one row per word of the study's sentences, with labels and split."""

import dagster as dg

from dagster_project.defs.shared import (lake_checks, lake_key, open_model, study_code_version,
                                         upstream, write_tables)
from dagster_project.resources import NwhResource
from dagster_project.study import StudyConfig
from extract.corpus import synthetic_corpus, text_corpus

STUDY = "corpus"


def runs(study: StudyConfig) -> bool:
    """The corpus feeds every study that runs a model."""
    return study.needs_model


@dg.asset(key=lake_key("corpus"), deps=upstream(STUDY, []), code_version=study_code_version(STUDY),
          group_name=STUDY, kinds={"python", "parquet"},
          description="The study's corpus, one row per word with its labels (POS-style tag, "
                      "semantic class, suffix, sentence position; null for plain text) and its "
                      "split (train: aggregates; heldout: explanation scoring).")
def corpus(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
    opened = open_model(context, nwh)
    cfg = opened.study.corpus
    if cfg.kind == "synthetic":
        df = synthetic_corpus(cfg.n_sentences, cfg.seed, cfg.heldout_fraction)
    else:
        df = text_corpus(cfg.path, cfg.per, cfg.seed, cfg.heldout_fraction)
    return next(write_tables(opened, {"corpus": df},
                             {"corpus": {"n_sentences": df["sentence_id"].n_unique()}},
                             multi=False))


assets = [corpus]
checks = lake_checks(STUDY)
