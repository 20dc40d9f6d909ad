"""The lake schema: every lake table's columns and types, declared once, grouped by study.

This is the one module that `extract/`, `models/` and `dagster_project/` share for tables: the Great
Expectations suites take their column sets from it (`expectations.runner`), and a test checks the
dbt sources and staging models against it. The hive partition columns (model, checkpoint) live in
the lake paths, not here.
"""

from __future__ import annotations

import polars as pl

# study -> table -> column -> type. A study's name is the same in every layer.
STUDY_TABLES: dict[str, dict[str, dict[str, pl.DataType]]] = {
    "corpus": {
        "corpus": {
            "sentence_id": pl.Int64, "split": pl.Utf8, "word_index": pl.Int64, "word": pl.Utf8,
            "pos": pl.Utf8, "semantic_class": pl.Utf8, "suffix": pl.Utf8, "position": pl.Utf8,
        },
    },
    "activations": {
        "checkpoint_fidelity": {
            "compared": pl.Utf8, "max_abs_diff": pl.Float64, "tolerance": pl.Float64,
            "n_tokens": pl.Int64, "n_missing_weights": pl.Int64, "missing_weights": pl.Utf8,
            "loss_usable": pl.Boolean,
        },
        "neuron_moments": {
            "site": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "n_tokens": pl.Int64,
            "mean": pl.Float64, "std": pl.Float64, "skew": pl.Float64, "kurtosis": pl.Float64,
            "max": pl.Float64, "frac_positive": pl.Float64,
        },
        "neuron_token_means": {
            "site": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "token_id": pl.Int64,
            "token": pl.Utf8, "token_count": pl.Int64, "mean_activation": pl.Float64,
        },
        "neuron_top_contexts": {
            "site": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "rank": pl.Int64,
            "activation": pl.Float64, "sentence_id": pl.Int64, "position": pl.Int64,
            "token": pl.Utf8, "context": pl.Utf8,
        },
    },
    "explanation_clusters": {
        "explanations": {
            "layer": pl.Int64, "neuron": pl.Int64, "explanation": pl.Utf8, "score": pl.Float64,
        },
        "explanation_embeddings": {
            "layer": pl.Int64, "neuron": pl.Int64, "embedding": pl.List(pl.Float32),
        },
        "explanation_rejects": {
            "path": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "problem": pl.Utf8,
            "detail": pl.Utf8,
        },
        "clusterings": {
            "method": pl.Utf8, "filter_percentile": pl.Int64, "seed": pl.Int64,
            "n_clusters": pl.Int64, "n_layers": pl.Int64, "n_neurons": pl.Int64,
            "n_noise": pl.Int64, "ami_layer": pl.Float64,
        },
        "explanation_clusters": {
            "method": pl.Utf8, "filter_percentile": pl.Int64, "seed": pl.Int64,
            "layer": pl.Int64, "neuron": pl.Int64, "cluster_id": pl.Int64,
        },
        "explanation_cluster_null_counts": {
            "method": pl.Utf8, "filter_percentile": pl.Int64, "seed": pl.Int64,
            "shuffle": pl.Int64, "layer": pl.Int64, "n_neurons": pl.Int64,
            "n_clusters_holding": pl.Int64,
        },
        "cluster_topics": {
            "method": pl.Utf8, "filter_percentile": pl.Int64, "seed": pl.Int64,
            "cluster_id": pl.Int64, "topic_words": pl.List(pl.Utf8),
            "representative_explanations": pl.List(pl.Utf8),
        },
    },
    "salient_neurons": {
        "probe_labels": {
            "sentence_id": pl.Int64, "word_index": pl.Int64, "word": pl.Utf8, "split": pl.Utf8,
            "task": pl.Utf8, "label": pl.Utf8,
        },
        "probe_features": {
            "sentence_id": pl.Int64, "word_index": pl.Int64, "site": pl.Utf8,
            "activations": pl.List(pl.Float32),
        },
        "probe_tasks": {
            "site": pl.Utf8, "task": pl.Utf8, "n_labels": pl.Int64, "n_neurons": pl.Int64,
            "n_train": pl.Int64, "n_dev": pl.Int64, "n_test": pl.Int64,
            "majority_accuracy": pl.Float64, "lambda1": pl.Float64, "lambda2": pl.Float64,
            "oracle_dev_accuracy": pl.Float64, "delta": pl.Float64, "top_percent": pl.Float64,
            "minimal_percent": pl.Float64, "minimal_n_neurons": pl.Int64,
            "minimal_dev_accuracy": pl.Float64, "minimal_mass_threshold": pl.Float64,
        },
        "probe_grid": {
            "site": pl.Utf8, "task": pl.Utf8, "lambda1": pl.Float64, "lambda2": pl.Float64,
            "top_percent": pl.Float64, "alpha": pl.Float64, "beta": pl.Float64,
            "accuracy_top": pl.Float64, "accuracy_bottom": pl.Float64,
            "accuracy_noreg": pl.Float64, "accuracy_current": pl.Float64, "score": pl.Float64,
            "selected": pl.Boolean,
        },
        "probe_accuracy": {
            "site": pl.Utf8, "task": pl.Utf8, "labels": pl.Utf8, "selection": pl.Utf8,
            "mode": pl.Utf8, "percent": pl.Float64, "n_neurons": pl.Int64, "seed": pl.Int64,
            "accuracy": pl.Float64,
        },
        "probe_neuron_ranking": {
            "site": pl.Utf8, "task": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64,
            "rank": pl.Int64, "mass_threshold": pl.Float64, "weight_mass": pl.Float64,
        },
        "probe_label_ranking": {
            "site": pl.Utf8, "task": pl.Utf8, "label": pl.Utf8, "layer": pl.Int64,
            "neuron": pl.Int64, "label_rank": pl.Int64, "weight": pl.Float64,
            "mass_share": pl.Float64, "mass_before": pl.Float64,
        },
    },
    "activation_clusters": {
        "token_classes": {
            "token_id": pl.Int64, "semantic_class": pl.Utf8, "n_occurrences": pl.Int64,
        },
        "activation_clusters": {
            "site": pl.Utf8, "representation": pl.Utf8, "k": pl.Int64, "refined": pl.Boolean,
            "method": pl.Utf8, "cluster_id": pl.Int64, "layer": pl.Int64, "neuron": pl.Int64,
        },
        "activation_cluster_distances": {
            "site": pl.Utf8, "representation": pl.Utf8, "k": pl.Int64, "refined": pl.Boolean,
            "method": pl.Utf8, "cluster_id": pl.Int64, "n_neurons": pl.Int64,
            "max_distance": pl.Float64, "mean_distance": pl.Float64,
        },
        "activation_cluster_tokens": {
            "site": pl.Utf8, "representation": pl.Utf8, "k": pl.Int64, "refined": pl.Boolean,
            "method": pl.Utf8, "cluster_id": pl.Int64, "rank": pl.Int64, "token_id": pl.Int64,
            "token": pl.Utf8, "activation": pl.Float64,
        },
        "activation_ablations": {
            "site": pl.Utf8, "representation": pl.Utf8, "k": pl.Int64, "refined": pl.Boolean,
            "cluster_id": pl.Int64, "ablation": pl.Utf8, "baseline": pl.Utf8,
            "repeat": pl.Int64, "n_neurons": pl.Int64, "n_sentences": pl.Int64,
            "n_targets": pl.Int64, "loss_base": pl.Float64, "loss_ablated": pl.Float64,
        },
        "activation_ablation_tests": {
            "site": pl.Utf8, "representation": pl.Utf8, "k": pl.Int64, "refined": pl.Boolean,
            "cluster_id": pl.Int64, "baseline": pl.Utf8, "n_draws": pl.Int64,
            "p_value": pl.Float64,
        },
    },
    "universal_neurons": {
        "neuron_universality": {
            "site": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "other_model": pl.Utf8,
            "n_tokens": pl.Int64, "best_corr": pl.Float64, "best_layer": pl.Int64,
            "best_neuron": pl.Int64, "baseline_corr": pl.Float64, "threshold": pl.Float64,
        },
        "neuron_stability": {
            "site": pl.Utf8, "layer": pl.Int64, "neuron": pl.Int64, "previous_checkpoint": pl.Utf8,
            "n_tokens": pl.Int64, "self_corr": pl.Float64, "best_corr": pl.Float64,
        },
    },
    "modularity": {
        "enmeshment": {
            "layer": pl.Int64, "matrix": pl.Utf8, "similarity": pl.Utf8, "k": pl.Int64,
            "enmeshment": pl.Float64, "baseline_enmeshment": pl.Float64,
            "baseline_sd": pl.Float64, "baseline_draws": pl.Int64,
        },
        "spectral_modules": {
            "layer": pl.Int64, "matrix": pl.Utf8, "similarity": pl.Utf8, "k": pl.Int64,
            "neuron": pl.Int64, "module": pl.Int64,
        },
        "cluster_class_effect": {
            "layer": pl.Int64, "k": pl.Int64, "cluster_id": pl.Int64, "semantic_class": pl.Utf8,
            "n_neurons": pl.Int64, "n_sentences": pl.Int64, "n_targets": pl.Int64,
            "loss_base": pl.Float64, "loss_off": pl.Float64, "loss_on": pl.Float64,
        },
        "effective_circuit_size": {
            "layer": pl.Int64, "semantic_class": pl.Utf8, "n_weights": pl.Int64,
            "fraction_left": pl.Float64, "loss_base": pl.Float64, "loss_pruned": pl.Float64,
            "tolerance": pl.Float64,
        },
    },
    "neuron_profile": {
        "study_agreement": {
            "relation": pl.Utf8, "config_a": pl.Utf8, "config_b": pl.Utf8, "layer": pl.Int64,
            "n_neurons": pl.Int64, "ami": pl.Float64, "null_mean": pl.Float64,
            "null_sd": pl.Float64, "p_value": pl.Float64, "permutations": pl.Int64,
        },
    },
}

SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    table: columns for tables in STUDY_TABLES.values() for table, columns in tables.items()}
STUDY_OF: dict[str, str] = {
    table: study for study, tables in STUDY_TABLES.items() for table in tables}

# Tables keyed by model only (they do not depend on a checkpoint).
CORPUS_TABLES = {"corpus", "probe_labels"}
