"""Python assets: one per lake table, each a thin call into `extract/` or `models/`.

Assets exchange data through the lake (Parquet), not through IO managers: each reads its
upstream tables with `extract.lake.read_table` and writes its own with `write_table`.
"""

import base64
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import torch

from dagster_project.partitions import (checkpoints_partitions, extraction_shards,
                                        parse_partition_key)
from dagster_project.resources import NwhResource
from dagster_project.study import StudyConfig
from extract import lake
from extract.activations import (SITE_MLP, aggregate_sites, aggregate_tables, encode,
                                 is_masked_lm, load_bridge, merge_shard_states, mlp_input_weight,
                                 paired_activations, sentence_fingerprint, shard_sentences,
                                 site_hook_names, site_shape, stream_mlp_activations,
                                 token_strings)
from extract.checkpoints import CheckpointError, find_checkpoints
from extract.corpus import sentences, synthetic_corpus, text_corpus
from extract.embeddings import embed_texts, load_embedder
from extract.explainer import explain_neurons, score_explanations
from extract.explanation_sources import read_explanation_table
from extract.openai_explanations import read_openai_explanations
from extract.probe_data import (labelled_words, read_conll, token_classes, tokens_by_class,
                                word_features)
from models.activation_clusters.ablation import NeuronSet, ablate_clusters, choose_clusters
from models.activation_clusters.clustering import AGGLOMERATIVE, cluster_site
from models.explanation_clusters.clustering import cluster_explanations, null_layer_counts
from models.universal_neurons import cached
from models.universal_neurons import neuron_stability as stability_against
from models.modularity import (LossSetup, bipartite_spectral_clusters, class_effects, enmeshment,
                               gradient_losses, gradient_similarity)
from models.universal_neurons import neuron_universality as universality_against
from reports.plots import (plot_cluster_positions, plot_cluster_variance, plot_layer_gini,
                          plot_min_variance_histogram, plot_probe_layer_distribution)
from models.salient_neurons import run_lca
from models.explanation_clusters.topics import cluster_topics

LAKE = ["lake"]


def _key(table: str) -> dg.AssetKey:
    return dg.AssetKey([*LAKE, table])


def _partition(context) -> tuple[str, str]:
    return parse_partition_key(context.partition_key)


def _study_for(context, nwh: NwhResource) -> StudyConfig:
    study = nwh.study()
    model, _ = _partition(context)
    if model != study.model:
        raise dg.Failure(f"partition {context.partition_key!r} is for model {model!r}, but the "
                         f"configured study is for model {study.model!r}")
    return study


def checkpoint_folder(study: StudyConfig, checkpoint: str) -> Path:
    """The folder of checkpoint `checkpoint` among the study's checkpoints."""
    found = dict(find_checkpoints(study.checkpoints))
    if checkpoint not in found:
        raise CheckpointError(f"checkpoint {checkpoint!r} not found in {study.checkpoints!r}; "
                              f"found: {sorted(found)}")
    return found[checkpoint]


def _progress(context, what: str, unit: str = "sentences",
              every: int = 10) -> Callable[[int, int], None]:
    calls = {"n": 0}

    def report(done: int, total: int) -> None:
        calls["n"] += 1
        if calls["n"] % every == 0 or done == total:
            context.log.info(f"{what}: {done}/{total} {unit} ({100 * done / total:.0f}%)")

    return report


def _preview(df: pl.DataFrame, n: int = 5) -> dg.MetadataValue:
    return dg.MetadataValue.md(df.head(n).to_pandas().to_markdown(index=False))


@dg.asset(key=_key("corpus"), group_name="corpus", kinds={"python", "parquet"},
          description="The study's corpus, one row per word with its labels (POS-style tag, "
                      "semantic class, suffix, sentence position; null for plain text) and its "
                      "split (train: aggregates; heldout: explanation scoring).")
def corpus(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
    study = nwh.study()
    cfg = study.corpus
    if cfg.kind == "synthetic":
        df = synthetic_corpus(cfg.n_sentences, cfg.seed, cfg.heldout_fraction)
    else:
        df = text_corpus(cfg.path, cfg.per, cfg.seed, cfg.heldout_fraction)
    path = lake.write_table(nwh.lake, "corpus", df, study.model)
    return dg.MaterializeResult(metadata={
        "path": str(path), "dagster/row_count": len(df),
        "n_sentences": df["sentence_id"].n_unique(), "preview": _preview(df)})


N_SHARDS = extraction_shards()
SHARD_STATE = "activation_shards"


def _shard_key(shard: int) -> dg.AssetKey:
    return dg.AssetKey(["shards", f"activation_shard_{shard}"])


def _shard_state_path(nwh: NwhResource, model: str, checkpoint: str, shard: int, site: str) -> str:
    return lake.state_path(nwh.lake, SHARD_STATE, model, checkpoint, f"shard{shard}-{site}")


def _activation_shard(shard: int) -> dg.AssetsDefinition:
    @dg.asset(key=_shard_key(shard), deps=[_key("corpus")], partitions_def=checkpoints_partitions,
              group_name="extraction", kinds={"python", "parquet"},
              description=f"Shard {shard} of {N_SHARDS} of the train split (every "
                          f"{N_SHARDS}th sentence from sentence {shard}) streamed through the "
                          "checkpoint with hooks on the configured sites: each site's mergeable "
                          "aggregates (count, mean, central sums M2-M4, max, count > 0, token "
                          "sums, top-k) as Parquet state under <lake>/_state/. Shards run in "
                          "parallel under the multiprocess executor (`nwh run --workers`).")
    def activation_shard(context: dg.AssetExecutionContext, nwh: NwhResource):
        study = _study_for(context, nwh)
        model, checkpoint = _partition(context)
        cfg = study.extraction
        if nwh.torch_threads:
            torch.set_num_threads(nwh.torch_threads)
        bridge = load_bridge(checkpoint_folder(study, checkpoint), cfg.trust_pickle_checkpoints)
        train = sentences(lake.read_table(nwh.lake, "corpus", model), "train")
        part = shard_sentences(train, shard, N_SHARDS)
        aggs = aggregate_sites(bridge, part, cfg.sites, cfg.batch_size, cfg.top_k,
                               progress=_progress(context, f"extraction shard {shard}"))
        fingerprint = sentence_fingerprint(part)
        for site, agg in aggs.items():
            lake.atomic_write_parquet(agg.to_arrow(fingerprint),
                                      _shard_state_path(nwh, model, checkpoint, shard, site))
        return dg.MaterializeResult(metadata={
            "n_sentences": len(part), "n_tokens": next(iter(aggs.values())).n,
            "sites": ", ".join(aggs), "torch_threads": torch.get_num_threads()})

    return activation_shard


activation_shards = [_activation_shard(shard) for shard in range(N_SHARDS)]
SHARD_KEYS = [_shard_key(shard) for shard in range(N_SHARDS)]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(_key("neuron_moments"), deps=[_key("corpus"), *SHARD_KEYS],
                     group_name="extraction", kinds={"python", "parquet"},
                     description="Per neuron of each extracted site (mlp: MLP post-activation; "
                                 "resid: a layer's output hidden state, layer 0 = embedding "
                                 "output): n_tokens, mean, std (population), skew, kurtosis, "
                                 "max and fraction > 0 of its activation over the train split "
                                 "(the extraction shards merged)."),
        dg.AssetSpec(_key("neuron_token_means"), deps=[_key("corpus"), *SHARD_KEYS],
                     group_name="extraction", kinds={"python", "parquet"},
                     description="Mean activation of each neuron on each token type seen at "
                                 "least min_token_count times (Eq. 1 of Zhang et al.)."),
        dg.AssetSpec(_key("neuron_top_contexts"), deps=[_key("corpus"), *SHARD_KEYS],
                     group_name="extraction", kinds={"python", "parquet"},
                     description="Top-k activating tokens of each neuron with their context "
                                 "(ties broken by sentence, then position)."),
    ],
    partitions_def=checkpoints_partitions,
    can_subset=False,
)
def activation_aggregates(context: dg.AssetExecutionContext, nwh: NwhResource):
    """Merge the extraction shards' aggregates into the three tables (equal to one unsharded
    stream)."""
    study = _study_for(context, nwh)
    model, checkpoint = _partition(context)
    cfg = study.extraction
    bridge = load_bridge(checkpoint_folder(study, checkpoint), cfg.trust_pickle_checkpoints)
    train = sentences(lake.read_table(nwh.lake, "corpus", model), "train")
    if not train:
        raise dg.Failure("the corpus has no train sentences to extract activations from")
    shards = [shard_sentences(train, shard, N_SHARDS) for shard in range(N_SHARDS)]
    aggs = {}
    for site in cfg.sites:
        paths = [_shard_state_path(nwh, model, checkpoint, shard, site) for shard in range(N_SHARDS)]
        missing = [p for p in paths if not lake.exists(p)]
        if missing:
            raise dg.Failure(f"no extraction state for site {site!r} at {missing}; materialize "
                             f"the shard assets {[k.to_user_string() for k in SHARD_KEYS]} first")
        aggs[site] = merge_shard_states([lake.read_parquet(p) for p in paths], shards)
    result = aggregate_tables(bridge, train, aggs, cfg.min_token_count)
    shapes = ", ".join(f"{site}: {n} layers x {d}" for site, (n, d) in result.shapes.items())
    for table, df in (("neuron_moments", result.moments),
                      ("neuron_token_means", result.token_means),
                      ("neuron_top_contexts", result.top_contexts)):
        path = lake.write_table(nwh.lake, table, df, model, checkpoint)
        yield dg.MaterializeResult(asset_key=_key(table), metadata={
            "path": str(path), "dagster/row_count": len(df), "sites": shapes,
            "shards": N_SHARDS, "preview": _preview(df)})


@dg.multi_asset(
    specs=[
        dg.AssetSpec(_key("explanations"), deps=[_key("neuron_token_means"), _key("corpus")],
                     group_name="explanations", kinds={"python", "parquet"},
                     description="One explanation and score per neuron. source: local explains "
                                 "each neuron by its top tokens and scores it by the pooled "
                                 "Pearson correlation of true and simulated activations on the "
                                 "held-out split; source: table reads a CSV/Parquet file; source: "
                                 "openai reads the public dataset's {layer}/{neuron}.jsonl layout."),
        dg.AssetSpec(_key("explanation_rejects"), deps=[_key("neuron_token_means")],
                     group_name="explanations", kinds={"python", "parquet"},
                     description="What the OpenAI-layout reader could not use, one row per file "
                                 "or neuron: malformed files (bad JSON, missing fields, wrong "
                                 "types, a layer out of range, a duplicated neuron) with their "
                                 "paths, neurons missing from the grid, and null scores (kept). "
                                 "Empty for the other sources."),
    ],
    partitions_def=checkpoints_partitions,
    can_subset=False,
)
def explanations(context: dg.AssetExecutionContext, nwh: NwhResource):
    study = _study_for(context, nwh)
    model, checkpoint = _partition(context)
    cfg = study.explanations
    rejects = pl.DataFrame(schema=lake.SCHEMAS["explanation_rejects"])
    if cfg.source == "table":
        df = read_explanation_table(cfg.path)
    elif cfg.source == "openai":
        read = read_openai_explanations(cfg.path, cfg.n_layers, cfg.neurons_per_layer,
                                        progress=_progress(context, "reading", "layer folders", 8))
        df, rejects = read.explanations, read.rejects
        context.log.info(f"read {read.n_files} explanation files: {df.height} neurons kept; "
                         f"{_problem_counts(rejects)}")
        if df.is_empty():
            raise dg.Failure(f"no valid explanation file in {cfg.path!r}: "
                             f"{_problem_counts(rejects)}")
    else:
        token_means = lake.read_table(nwh.lake, "neuron_token_means", model, checkpoint).filter(
            pl.col("site") == SITE_MLP)
        df = explain_neurons(token_means, max_tokens=cfg.max_tokens)
        bridge = load_bridge(checkpoint_folder(study, checkpoint),
                             study.extraction.trust_pickle_checkpoints)
        heldout = sentences(lake.read_table(nwh.lake, "corpus", model), "heldout")
        if not heldout:
            raise dg.Failure("the corpus has no held-out sentences to score explanations on; "
                             "raise corpus.heldout_fraction or use a larger corpus")
        batches = stream_mlp_activations(bridge, heldout, study.extraction.batch_size,
                                         _progress(context, "scoring"))
        scores = score_explanations(df["explanation"].to_list(),
                                    token_strings(bridge.tokenizer, bridge.cfg.d_vocab), batches)
        df = df.with_columns(pl.Series("score", scores))
    path = lake.write_table(nwh.lake, "explanations", df, model, checkpoint)
    yield dg.MaterializeResult(asset_key=_key("explanations"), metadata={
        "path": str(path), "dagster/row_count": len(df),
        "mean_score": float(np.nanmean(df["score"].to_numpy())) if len(df) else float("nan"),
        "null_scores": int(df["score"].is_null().sum() + df["score"].is_nan().sum()),
        "preview": _preview(df.sort("score", descending=True, nulls_last=True))})
    path = lake.write_table(nwh.lake, "explanation_rejects", rejects, model, checkpoint)
    yield dg.MaterializeResult(asset_key=_key("explanation_rejects"), metadata={
        "path": str(path), "dagster/row_count": len(rejects),
        "problems": _problem_counts(rejects),
        "rejected_files": _preview(rejects.filter(~pl.col("problem").is_in(
            ["missing", "null_score"])), 50)})


def _problem_counts(rejects: pl.DataFrame) -> str:
    counts = rejects.group_by("problem").len().sort("problem")
    return ", ".join(f"{n} {p}" for p, n in counts.iter_rows()) or "no problems"


@dg.asset(key=_key("explanation_embeddings"), deps=[_key("explanations")],
          partitions_def=checkpoints_partitions, group_name="explanations",
          kinds={"python", "parquet"},
          description="Unit-length sentence embedding of each neuron's explanation (embedded "
                      "all-MiniLM-L6-v2 by default); identical texts are embedded once.")
def explanation_embeddings(context: dg.AssetExecutionContext,
                           nwh: NwhResource) -> dg.MaterializeResult:
    study = _study_for(context, nwh)
    model, checkpoint = _partition(context)
    df = lake.read_table(nwh.lake, "explanations", model, checkpoint)
    texts = df["explanation"].to_list()
    context.log.info(f"embedding {len(texts)} explanations ({len(set(texts))} distinct)")
    vectors = embed_texts(load_embedder(study.embedding.model), texts, study.embedding.batch_size)
    out = df.select("layer", "neuron").with_columns(pl.Series("embedding", list(vectors)))
    path = lake.write_table(nwh.lake, "explanation_embeddings", out, model, checkpoint)
    return dg.MaterializeResult(metadata={
        "path": str(path), "dagster/row_count": len(out), "dimensions": int(vectors.shape[1]),
        "distinct_texts": len(set(texts))})


_CLUSTERING_OUTPUTS = {
    "clusterings": "One row per clustering (method, filter percentile, seed): its number of "
                   "clusters (K, or the number found by DBSCAN / HDBSCAN), layers, clustered "
                   "neurons, noise neurons and the adjusted mutual information of cluster and layer.",
    "explanation_clusters": "Cluster id of each neuron kept by the per-layer score percentile "
                            "filter, per clustering (-1 = noise, with clustering.noise: keep).",
    "explanation_cluster_null_counts": "Permutation null: neurons per (layer, cluster) after "
                                       "shuffling the layer labels against the same clusters, "
                                       "per shuffle (non-zero counts; dbt computes gini_null).",
    "cluster_topics": "Topic words (class-based TF-IDF, BERTopic) and three representative "
                      "explanations of every cluster of every clustering.",
}


@dg.multi_asset(
    specs=[dg.AssetSpec(_key(table), deps=[_key("explanation_embeddings"), _key("explanations")],
                        group_name="clustering", kinds={"python", "parquet"}, description=text)
           for table, text in _CLUSTERING_OUTPUTS.items()],
    partitions_def=checkpoints_partitions,
    can_subset=False,
)
def explanation_clustering(context: dg.AssetExecutionContext, nwh: NwhResource):
    """KMeans, DBSCAN, HDBSCAN and the random baseline on the explanation embeddings, per score
    filter; the permutation null of the layer Gini; topic words per cluster."""
    study = _study_for(context, nwh)
    model, checkpoint = _partition(context)
    settings = study.clustering.settings()
    scores = lake.read_table(nwh.lake, "explanations", model, checkpoint)
    emb = lake.read_table(nwh.lake, "explanation_embeddings", model, checkpoint)
    joined = scores.join(emb, on=["layer", "neuron"], how="inner").sort(["layer", "neuron"])
    vectors = joined["embedding"].list.to_array(emb["embedding"].list.len().max()).to_numpy()
    clusterings, assignments = cluster_explanations(
        joined.select("layer", "neuron", "score"), vectors.astype(np.float32), settings,
        log=context.log.info)
    context.log.info(f"permutation null: {settings.null_shuffles} shuffles per clustering")
    frames = {"clusterings": clusterings, "explanation_clusters": assignments,
              "explanation_cluster_null_counts": null_layer_counts(
                  assignments, settings.null_shuffles, settings.seed),
              "cluster_topics": cluster_topics(assignments, scores, seed=settings.seed)}
    for table, df in frames.items():
        path = lake.write_table(nwh.lake, table, df, model, checkpoint)
        yield dg.MaterializeResult(asset_key=_key(table), metadata={
            "path": str(path), "dagster/row_count": len(df), "preview": _preview(df)})


@dg.asset(key=["reports", "layer_gini_plot"], deps=[dg.AssetKey("fct_layer_gini")],
          group_name="reports", kinds={"python", "png"},
          description="Plot of fct_layer_gini: Gini per layer for each method, one line per "
                      "filter percentile with its permutation null as a band (Fig. 2 of Ben "
                      "Yaakov et al.), at <home>/reports/.")
def layer_gini_plot(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
    path = plot_layer_gini(_read_mart(nwh, "fct_layer_gini"),
                           nwh.home_dir / "reports" / "layer_gini.png")
    return dg.MaterializeResult(metadata=_png_metadata(path, "layer gini"))


@dg.asset(key=["reports", "cluster_variance_plot"],
          deps=[dg.AssetKey("fct_cluster_layer_variance"),
                dg.AssetKey("fct_cluster_variance_summary")],
          group_name="reports", kinds={"python", "png"},
          description="Box plots of the clusters' layer variance per method with mean and WAVG "
                      "marked (Fig. 3 of Ben Yaakov et al.), at <home>/reports/.")
def cluster_variance_plot(context: dg.AssetExecutionContext,
                          nwh: NwhResource) -> dg.MaterializeResult:
    path = plot_cluster_variance(_read_mart(nwh, "fct_cluster_layer_variance"),
                                 _read_mart(nwh, "fct_cluster_variance_summary"),
                                 nwh.home_dir / "reports" / "cluster_variance.png")
    return dg.MaterializeResult(metadata=_png_metadata(path, "cluster variance"))


@dg.asset(key=["reports", "min_variance_cluster_plot"],
          deps=[dg.AssetKey("fct_min_variance_clusters")], group_name="reports",
          kinds={"python", "png"},
          description="Layer histogram of each method's minimal-variance cluster at filter 0, "
                      "with its topic words (Figs. 5-6 of Ben Yaakov et al.), at <home>/reports/.")
def min_variance_cluster_plot(context: dg.AssetExecutionContext,
                              nwh: NwhResource) -> dg.MaterializeResult:
    path = plot_min_variance_histogram(_read_mart(nwh, "fct_min_variance_clusters"),
                                       nwh.home_dir / "reports" / "min_variance_cluster.png")
    return dg.MaterializeResult(metadata=_png_metadata(path, "minimal-variance cluster"))


def _read_mart(nwh: NwhResource, mart: str) -> pl.DataFrame:
    with duckdb.connect(str(nwh.warehouse_path), read_only=True) as con:
        return con.sql(f"select * from {mart}").pl()


def _png_metadata(path: Path, title: str) -> dict:
    """The plot inline in the Dagster UI, and where it is on disk."""
    encoded = base64.b64encode(path.read_bytes()).decode()
    return {"path": str(path),
            "plot": dg.MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")}


def _probe_sentence_label(study: StudyConfig) -> Callable[[int], str]:
    if study.probing.labels == "conll":
        return lambda sid: f"labels file {study.probing.path!r}, sentence {sid + 1}"
    return lambda sid: f"corpus sentence_id {sid}"


@dg.asset(key=_key("probe_labels"), deps=[_key("corpus")], group_name="probing",
          kinds={"python", "parquet"},
          description="Words of the probing tasks with their label and their train / dev / test "
                      "split (seeded, by sentence): the synthetic corpus's labels or a CoNLL-style "
                      "file (word<TAB>label per line), one row per (task, word).")
def probe_labels(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
    study = nwh.study()
    cfg = study.probing
    if not study.runs_probing:
        context.log.info("probing skipped: it is disabled, the study runs no model, or the "
                         "corpus has no labels (set probing.labels: conll and probing.path)")
        df = pl.DataFrame(schema=lake.SCHEMAS["probe_labels"])
    else:
        words = (read_conll(cfg.path, cfg.tasks) if cfg.labels == "conll"
                 else lake.read_table(nwh.lake, "corpus", study.model))
        df = labelled_words(words, cfg.tasks, cfg.seed, cfg.dev_fraction, cfg.test_fraction,
                            cfg.max_sentences)
    path = lake.write_table(nwh.lake, "probe_labels", df, study.model)
    counts = df.group_by("task", "split").len().sort("task", "split")
    return dg.MaterializeResult(metadata={
        "path": str(path), "dagster/row_count": len(df),
        "n_sentences": df["sentence_id"].n_unique(), "words_per_split": _preview(counts, 20)})


@dg.asset(key=_key("probe_features"), deps=[_key("probe_labels")],
          partitions_def=checkpoints_partitions, group_name="probing",
          kinds={"python", "parquet"},
          description="Activations of all MLP neurons of all layers (concatenated layer by layer) "
                      "at each labelled word, represented by its last (or first / mean) subword "
                      "token, as the probes' input features.")
def probe_features(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
    study = _study_for(context, nwh)
    model, checkpoint = _partition(context)
    labels = lake.read_table(nwh.lake, "probe_labels", model)
    words = labels.unique(["sentence_id", "word_index"]).select("sentence_id", "word_index", "word")
    if words.is_empty():
        context.log.info("probing skipped: probe_labels is empty")
        df, n_features = pl.DataFrame(schema=lake.SCHEMAS["probe_features"]), 0
    else:
        bridge = load_bridge(checkpoint_folder(study, checkpoint),
                             study.extraction.trust_pickle_checkpoints)
        keys, features = word_features(bridge, words, study.probing.representative,
                                       study.extraction.batch_size, _probe_sentence_label(study),
                                       _progress(context, "probe features"))
        df = keys.with_columns(pl.lit(SITE_MLP).alias("site"),
                               pl.Series("activations", features.numpy()))
        n_features = int(features.shape[1])
    path = lake.write_table(nwh.lake, "probe_features", df, model, checkpoint)
    return dg.MaterializeResult(metadata={
        "path": str(path), "dagster/row_count": len(df),
        "n_features": n_features,
        "representative": study.probing.representative})


_PROBE_OUTPUTS = {
    "probe_tasks": "Per probing task: sizes, majority-class baseline, the lambdas chosen by the "
                   "grid search (Alg. 2), the oracle's dev accuracy and the minimal subset (Alg. 4).",
    "probe_grid": "Every (lambda1, lambda2) of the grid search with A_top, A_bottom, A_noreg, "
                  "A_current on dev and the score S = alpha (A_top - A_bottom) - beta (A_noreg - A_current).",
    "probe_accuracy": "Test accuracy per task, labels (task or control), selection (all, top, "
                      "random, bottom, weight_magnitude), mode (masked or retrained), percent of "
                      "neurons and seed: the ablation, retraining and control-task runs.",
    "probe_neuron_ranking": "The task's neuron ordering (Alg. 3): rank, the weight-mass threshold "
                            "at which each neuron became salient, and its total |weight|.",
    "probe_label_ranking": "Per label: neurons by |weight|, their share of the label's weight "
                           "mass and the mass ranked above them (the per-label rankings).",
}


@dg.multi_asset(
    specs=[dg.AssetSpec(_key(table), deps=[_key("probe_features"), _key("probe_labels"),
                                           _key("neuron_moments")],
                        group_name="probing", kinds={"python", "parquet"}, description=text)
           for table, text in _PROBE_OUTPUTS.items()],
    partitions_def=checkpoints_partitions,
    can_subset=False,
)
def salient_neurons(context: dg.AssetExecutionContext, nwh: NwhResource):
    """Linguistic Correlation Analysis (Durrani et al.): grid search, ranking, ablation, minimal
    subset and selectivity for every probing task."""
    study = _study_for(context, nwh)
    model, checkpoint = _partition(context)
    labels = lake.read_table(nwh.lake, "probe_labels", model)
    feats = lake.read_table(nwh.lake, "probe_features", model, checkpoint)
    if feats.is_empty():
        context.log.info("probing skipped: probe_features is empty")
        frames = {t: pl.DataFrame(schema=lake.SCHEMAS[t]) for t in _PROBE_OUTPUTS}
    else:
        n_features = feats["activations"].list.len().max()
        matrix = torch.from_numpy(feats["activations"].list.to_array(n_features).to_numpy())
        d_mlp = int(lake.read_table(nwh.lake, "neuron_moments", model, checkpoint)
                    .filter((pl.col("site") == SITE_MLP) & (pl.col("layer") == 0)).height)
        frames = run_lca(labels, feats.select("sentence_id", "word_index"), matrix, d_mlp,
                         study.probing.lca_settings(), log=context.log.info)
    for table in _PROBE_OUTPUTS:
        df = frames[table].with_columns(pl.lit(SITE_MLP).alias("site"))
        path = lake.write_table(nwh.lake, table, df, model, checkpoint)
        yield dg.MaterializeResult(asset_key=_key(table), metadata={
            "path": str(path), "dagster/row_count": len(df), "preview": _preview(df, 10)})


@dg.asset(key=["reports", "probe_layer_distribution_plot"],
          deps=[dg.AssetKey("fct_probe_layer_distribution")], group_name="reports",
          kinds={"python", "png"},
          description="Plot of fct_probe_layer_distribution: neurons of each task's minimal "
                      "subset per layer (Fig. 3 of Durrani et al.), at <home>/reports/.")
def probe_layer_distribution_plot(context: dg.AssetExecutionContext,
                                  nwh: NwhResource) -> dg.MaterializeResult:
    path = plot_probe_layer_distribution(_read_mart(nwh, "fct_probe_layer_distribution"),
                                         nwh.home_dir / "reports" / "probe_layer_distribution.png")
    return dg.MaterializeResult(metadata=_png_metadata(path, "probe layer distribution"))


_ACTIVATION_CLUSTER_OUTPUTS = {
    "activation_clusters": "Members (layer, neuron) of every activation cluster (Zhang et al.): "
                           "per site, representation (filter, tfidf, smoothed), K and refined "
                           "flag, the agglomerative clusters (complete linkage on 1 - cosine) and "
                           "a random clustering of the same sizes (method random).",
    "activation_cluster_distances": "Per cluster: neurons, and the max and mean 1 - cosine "
                                    "distance over its pairs (null for a single neuron).",
    "activation_cluster_tokens": "Top-activating token types of each cluster: the largest "
                                 "entries of the mean of its members' representations.",
    "token_classes": "How often each token id occurs inside words of each semantic class of the "
                     "synthetic corpus, tokenized as the model sees it (empty for plain text).",
}


@dg.multi_asset(
    specs=[dg.AssetSpec(_key(table), deps=[_key("neuron_token_means"), _key("corpus")],
                        group_name="activation_clusters", kinds={"python", "parquet"},
                        description=text)
           for table, text in _ACTIVATION_CLUSTER_OUTPUTS.items()],
    partitions_def=checkpoints_partitions,
    can_subset=False,
)
def activation_clustering(context: dg.AssetExecutionContext, nwh: NwhResource):
    """Token-mean representations, agglomerative clustering, refinement and random twins, per
    site; the smoothing uses the checkpoint's input embedding matrix as token similarity."""
    study = _study_for(context, nwh)
    model, checkpoint = _partition(context)
    cfg = study.activation_clusters
    frames = {t: pl.DataFrame(schema=lake.SCHEMAS[t]) for t in _ACTIVATION_CLUSTER_OUTPUTS}
    if not study.runs_activation_clusters:
        context.log.info("activation clusters skipped: activation_clusters.enabled is false")
    else:
        bridge = load_bridge(checkpoint_folder(study, checkpoint),
                             study.extraction.trust_pickle_checkpoints)
        embeddings = bridge.W_E.detach().double().numpy()
        token_means = lake.read_table(nwh.lake, "neuron_token_means", model, checkpoint)
        parts = {t: [] for t in frames}
        for site in cfg.sites:
            context.log.info(f"clustering the {site} site")
            out = cluster_site(token_means.filter(pl.col("site") == site), embeddings,
                               cfg.settings(), log=context.log.info)
            for table, df in out.items():
                parts[table].append(df.with_columns(pl.lit(site).alias("site")))
        frames.update({t: pl.concat(dfs) for t, dfs in parts.items() if dfs})
        frames["token_classes"] = token_classes(bridge.tokenizer,
                                                lake.read_table(nwh.lake, "corpus", model))
    for table, df in frames.items():
        path = lake.write_table(nwh.lake, table, df, model, checkpoint)
        yield dg.MaterializeResult(asset_key=_key(table), metadata={
            "path": str(path), "dagster/row_count": len(df), "preview": _preview(df, 10)})


@dg.asset(key=_key("activation_ablations"),
          deps=[_key("activation_clusters"), _key("activation_cluster_tokens"), _key("corpus")],
          partitions_def=checkpoints_partitions, group_name="activation_clusters",
          kinds={"python", "parquet"},
          description="Zero-ablation of each agglomerative cluster and of its random, "
                      "random_layer and random_position baselines (several seeded draws each): "
                      "the loss on the cluster's top-activating tokens in held-out sequences "
                      "that contain them, without (loss_base) and with (loss_ablated) the "
                      "ablation; next-token loss for a causal model, masked-LM loss for a "
                      "masked one.")
def activation_ablations(context: dg.AssetExecutionContext,
                         nwh: NwhResource) -> dg.MaterializeResult:
    study = _study_for(context, nwh)
    model, checkpoint = _partition(context)
    cfg = study.activation_clusters
    rows: list[dict] = []
    if study.runs_activation_clusters:
        bridge = load_bridge(checkpoint_folder(study, checkpoint),
                             study.extraction.trust_pickle_checkpoints)
        tok, masked = bridge.tokenizer, is_masked_lm(bridge)
        heldout = [encode(tok, text)[: bridge.cfg.n_ctx]
                   for _, text in sentences(lake.read_table(nwh.lake, "corpus", model), "heldout")]
        members = lake.read_table(nwh.lake, "activation_clusters", model, checkpoint).filter(
            pl.col("method") == AGGLOMERATIVE)
        tokens = lake.read_table(nwh.lake, "activation_cluster_tokens", model, checkpoint).filter(
            pl.col("method") == AGGLOMERATIVE)
        keys = ["site", "representation", "k", "refined"]
        for (site, *rest), group in members.group_by(keys, maintain_order=True):
            config = dict(zip(keys, [site, *rest]))
            chosen = choose_clusters(group["cluster_id"].to_list(), cfg.ablation_max_clusters,
                                     cfg.seed)
            top = tokens.filter(*(pl.col(k) == v for k, v in config.items()))
            clusters = []
            for cid in chosen:
                m = group.filter(pl.col("cluster_id") == cid)
                clusters.append(({**config, "cluster_id": cid},
                                 NeuronSet(m["layer"].to_numpy(), m["neuron"].to_numpy()),
                                 set(top.filter(pl.col("cluster_id") == cid)["token_id"])))
            context.log.info(f"ablating {len(clusters)} clusters of {config} "
                             f"({'masked' if masked else 'causal'} LM loss)")
            width = site_shape(bridge, site)[1]
            rows += ablate_clusters(bridge, site_hook_names(site, bridge.cfg.n_layers), width,
                                    clusters, heldout, tok.pad_token_id or 0, masked,
                                    tok.mask_token_id, cfg.ablation_settings(),
                                    _progress(context, "ablation", "clusters", 25))
    df = (pl.DataFrame(rows) if rows else pl.DataFrame(schema=lake.SCHEMAS["activation_ablations"]))
    path = lake.write_table(nwh.lake, "activation_ablations", df, model, checkpoint)
    return dg.MaterializeResult(metadata={
        "path": str(path), "dagster/row_count": len(df),
        "ablated_clusters": df.filter(pl.col("baseline") == "cluster").height,
        "preview": _preview(df, 10)})


@dg.asset(key=["reports", "cluster_positions_plot"],
          deps=[dg.AssetKey("fct_ablation_summary"), dg.AssetKey("stg_activation_clusters")],
          group_name="reports", kinds={"python", "png"},
          description="Layer and index of the neurons of the activation clusters with the "
                      "largest ablation drop per site (Fig. 5 of Zhang et al.), at <home>/reports/.")
def cluster_positions_plot(context: dg.AssetExecutionContext,
                           nwh: NwhResource) -> dg.MaterializeResult:
    path = plot_cluster_positions(_read_mart(nwh, "fct_ablation_summary"),
                                  _read_mart(nwh, "stg_activation_clusters"),
                                  nwh.home_dir / "reports" / "cluster_positions.png")
    return dg.MaterializeResult(metadata=_png_metadata(path, "cluster positions"))


@dg.asset(key=_key("neuron_universality"), deps=[_key("corpus")],
          partitions_def=checkpoints_partitions, group_name="universality",
          kinds={"python", "parquet"},
          description="Universal neurons (Gurnee et al.): for every MLP neuron of the checkpoint "
                      "and every other model (another seed, its newest checkpoint), the best "
                      "Pearson correlation with any of its neurons over the same tokens, which "
                      "neuron that is, and the best correlation after rotating the other model's "
                      "neuron basis by a random orthogonal matrix per layer (the baseline).")
def neuron_universality(context: dg.AssetExecutionContext,
                        nwh: NwhResource) -> dg.MaterializeResult:
    study = _study_for(context, nwh)
    model, checkpoint = _partition(context)
    cfg = study.universality
    frames = []
    if study.runs_universality:
        bridge = load_bridge(checkpoint_folder(study, checkpoint),
                             study.extraction.trust_pickle_checkpoints)
        n_layers, width = site_shape(bridge, SITE_MLP)
        train = sentences(lake.read_table(nwh.lake, "corpus", model), "train")[:cfg.max_sentences]
        for folder in cfg.other_models:
            name, path = find_checkpoints(folder)[-1]
            other = load_bridge(path, study.extraction.trust_pickle_checkpoints)
            if site_shape(other, SITE_MLP) != (n_layers, width):
                raise dg.Failure(f"universality: {folder!r} has {site_shape(other, SITE_MLP)} MLP "
                                 f"neurons (layers, width), the study's model {(n_layers, width)}")
            label = Path(folder).name
            context.log.info(f"correlating {n_layers * width} neurons with {label}/{name} over "
                             f"{len(train)} sentences")
            budget = cfg.memory_budget_mb * 2**20
            df = universality_against(
                cached(paired_activations(bridge, other, train, SITE_MLP,
                                          study.extraction.batch_size), budget),
                n_layers, width, budget, cfg.seed,
                _progress(context, f"correlation with {label}", "passes", 1))
            frames.append(df.with_columns(pl.lit(label).alias("other_model")))
    df = (pl.concat(frames).with_columns(pl.lit(SITE_MLP).alias("site"),
                                         pl.lit(cfg.threshold).alias("threshold"))
          if frames else pl.DataFrame(schema=lake.SCHEMAS["neuron_universality"]))
    path = lake.write_table(nwh.lake, "neuron_universality", df, model, checkpoint)
    return dg.MaterializeResult(metadata={
        "path": str(path), "dagster/row_count": len(df), "other_models": len(frames),
        "preview": _preview(df.sort("best_corr", descending=True, nulls_last=True), 10)})


@dg.asset(key=_key("neuron_stability"), deps=[_key("corpus")],
          partitions_def=checkpoints_partitions, group_name="universality",
          kinds={"python", "parquet"},
          description="Checkpoint dynamics: for every MLP neuron, its activation correlation "
                      "with the same neuron (layer and index) at the previous checkpoint of the "
                      "run, and with its best match there, over the same tokens (streaming, "
                      "blocked like the universality correlations). Empty for the first "
                      "checkpoint.")
def neuron_stability(context: dg.AssetExecutionContext, nwh: NwhResource) -> dg.MaterializeResult:
    study = _study_for(context, nwh)
    model, checkpoint = _partition(context)
    cfg = study.universality
    names = [name for name, _ in find_checkpoints(study.checkpoints)] if study.needs_model else []
    previous = names[names.index(checkpoint) - 1] if checkpoint in names[1:] else None
    df = pl.DataFrame(schema=lake.SCHEMAS["neuron_stability"])
    if previous is None:
        context.log.info(f"no checkpoint before {checkpoint!r}: nothing to compare with")
    else:
        trust = study.extraction.trust_pickle_checkpoints
        bridge = load_bridge(checkpoint_folder(study, checkpoint), trust)
        before = load_bridge(checkpoint_folder(study, previous), trust)
        n_layers, width = site_shape(bridge, SITE_MLP)
        train = sentences(lake.read_table(nwh.lake, "corpus", model), "train")[:cfg.max_sentences]
        context.log.info(f"correlating {n_layers * width} neurons with {previous}")
        budget = cfg.memory_budget_mb * 2**20
        df = stability_against(
            cached(paired_activations(bridge, before, train, SITE_MLP,
                                      study.extraction.batch_size), budget),
            n_layers, width, budget,
            _progress(context, f"correlation with {previous}", "passes", 1)
        ).with_columns(pl.lit(SITE_MLP).alias("site"), pl.lit(previous).alias("previous_checkpoint"))
    path = lake.write_table(nwh.lake, "neuron_stability", df, model, checkpoint)
    return dg.MaterializeResult(metadata={
        "path": str(path), "dagster/row_count": len(df), "previous_checkpoint": previous or "none",
        "mean_self_corr": float(df["self_corr"].mean()) if len(df) else float("nan")})


_MODULARITY_OUTPUTS = {
    "enmeshment": "Enmeshment / clusterability E (Golechha et al., Sec. 2) of every MLP weight "
                  "matrix (mlp_in: d_model x d_mlp, mlp_out: d_mlp x d_model) split into k "
                  "bipartite clusters by BSGC (Algorithm 1) on the weight similarity |W| and, "
                  "for mlp_in, on the gradient similarity (mean |dL/dW| over held-out batches): "
                  "the share of squared weight mass inside matched clusters.",
    "cluster_class_effect": "Cluster ON/OFF (Sec. 3.1): for the chosen layer's effect_k MLP "
                            "neuron clusters and each semantic class of the corpus, the loss on "
                            "that class's tokens unablated, with the cluster zero-ablated (OFF) "
                            "and with every other cluster zero-ablated (ON).",
    "effective_circuit_size": "Effective circuit size (Sec. 3.2): per semantic class, the "
                              "fraction of the chosen layer's MLP input weights left by "
                              "iterative magnitude pruning while the class's loss stays within "
                              "the tolerance.",
}


@dg.multi_asset(
    specs=[dg.AssetSpec(_key(table), deps=[_key("corpus")], group_name="modularity",
                        kinds={"python", "parquet"}, description=text)
           for table, text in _MODULARITY_OUTPUTS.items()],
    partitions_def=checkpoints_partitions,
    can_subset=False,
)
def modularity(context: dg.AssetExecutionContext, nwh: NwhResource):
    """BSGC and enmeshment of every MLP layer; ON/OFF and circuit size per class for one layer."""
    study = _study_for(context, nwh)
    model, checkpoint = _partition(context)
    cfg = study.modularity
    frames = {t: pl.DataFrame(schema=lake.SCHEMAS[t]) for t in _MODULARITY_OUTPUTS}
    if study.runs_modularity:
        bridge = load_bridge(checkpoint_folder(study, checkpoint),
                             study.extraction.trust_pickle_checkpoints)
        n_layers = bridge.cfg.n_layers
        corpus = lake.read_table(nwh.lake, "corpus", model)
        tok, masked = bridge.tokenizer, is_masked_lm(bridge)
        heldout = [encode(tok, t)[: bridge.cfg.n_ctx] for _, t in sentences(corpus, "heldout")]
        lm = LossSetup(bridge, site_hook_names(SITE_MLP, n_layers), bridge.cfg.d_mlp, masked,
                       tok.pad_token_id or 0, tok.mask_token_id, set(tok.all_special_ids))
        gradient_batches = gradient_losses(lm, heldout, cfg.max_sentences, cfg.seed)
        rows = []
        for layer in range(n_layers):
            param, transposed = mlp_input_weight(bridge, layer)
            grads = gradient_similarity(param, gradient_batches)
            similarities = [("mlp_in", "weight", bridge.W_in[layer], None),
                            ("mlp_in", "gradient", bridge.W_in[layer], grads.T if transposed else grads),
                            ("mlp_out", "weight", bridge.W_out[layer], None)]
            for matrix, kind, w, sim in similarities:
                w = w.detach().double().numpy()
                for k in cfg.ks:
                    u, v = bipartite_spectral_clusters(np.abs(w) if sim is None else sim, k, cfg.seed)
                    rows.append({"layer": layer, "matrix": matrix, "similarity": kind, "k": k,
                                 "enmeshment": enmeshment(w, u, v)})
        frames["enmeshment"] = pl.DataFrame(rows)
        layer = n_layers // 2 if cfg.layer is None else cfg.layer
        if not 0 <= layer < n_layers:
            raise dg.Failure(f"modularity.layer {layer} is not a layer of the model (0.."
                             f"{n_layers - 1})")
        classes = tokens_by_class(token_classes(tok, corpus))
        effects, circuits = class_effects(
            lm, layer, *mlp_input_weight(bridge, layer), classes, heldout, cfg.effect_k,
            cfg.max_sentences, cfg.tolerance, cfg.prune_step, cfg.seed, log=context.log.info)
        for table, rows in (("cluster_class_effect", effects), ("effective_circuit_size", circuits)):
            frames[table] = pl.DataFrame(rows, schema=lake.SCHEMAS[table])
    for table, df in frames.items():
        path = lake.write_table(nwh.lake, table, df, model, checkpoint)
        yield dg.MaterializeResult(asset_key=_key(table), metadata={
            "path": str(path), "dagster/row_count": len(df), "preview": _preview(df, 10)})
