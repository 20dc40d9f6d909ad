"""Modularity (Golechha, Cope, Schoots): BSGC and enmeshment of every MLP weight matrix for each
k, cluster ON/OFF and effective circuit size per semantic class for one layer."""

import dagster as dg
import polars as pl

from dagster_project.defs.activations import loss_usable
from dagster_project.defs.shared import (Opened, empty, lake_checks, lake_specs, open_partition,
                                         partitioned_multi_asset, report_asset, write_tables)
from dagster_project.resources import NwhResource
from dagster_project.study import StudyConfig
from extract.activations import SITE_MLP, loss_inputs, mlp_input_weight
from extract.probe_data import token_classes, tokens_by_class
from models.lm_loss import LossSetup
from reports.plots import plot_enmeshment
from models.modularity import (class_effects, enmeshment_table, gradient_losses,
                               gradient_similarity)

STUDY = "modularity"


def runs(study: StudyConfig) -> bool:
    return study.runs_modularity


_DESCRIPTIONS = {
    "enmeshment": "Enmeshment / clusterability E (Golechha et al., Sec. 2) of every MLP weight "
                  "matrix (mlp_in: d_model x d_mlp, mlp_out: d_mlp x d_model) split into k "
                  "bipartite clusters by BSGC (Algorithm 1) on the weight similarity |W| and, "
                  "for mlp_in, on the gradient similarity (mean |dL/dW| over held-out batches): "
                  "the share of squared weight mass inside matched clusters; with the mean and sd "
                  "of E over copies of the matrix with its entries shuffled (the baseline).",
    "spectral_modules": "The BSGC clusters of the enmeshment sweep as neuron modules: for every "
                        "MLP matrix, similarity and k, the cluster of each MLP neuron (a column "
                        "of mlp_in, a row of mlp_out), the co-cluster it shares with its "
                        "d_model inputs or outputs.",
    "cluster_class_effect": "Cluster ON/OFF (Sec. 3.1): for the chosen layer's effect_k MLP "
                            "neuron clusters and each semantic class of the corpus, the loss on "
                            "that class's tokens unablated, with the cluster zero-ablated (OFF) "
                            "and with every other cluster zero-ablated (ON).",
    "effective_circuit_size": "Effective circuit size (Sec. 3.2): per semantic class, the "
                              "smallest share of the chosen layer's MLP input weights that keeps "
                              "the class's loss within the tolerance, pruning in the order of "
                              "the class's own attribution |W dL/dW| (bisected to "
                              "prune_resolution).",
}


def _mlp_matrices(bridge, lm: LossSetup | None, heldout: list[list[int]], opened: Opened):
    """(keys, W, similarity, neuron axis) of every layer's MLP matrices for the enmeshment sweep: mlp_in by
    weight and by gradient similarity (gradients computed layer by layer; none without a usable
    loss, `lm` None), mlp_out by weight."""
    cfg = opened.study.modularity
    batches = gradient_losses(lm, heldout, cfg.max_sentences, cfg.seed) if lm else []
    for layer in range(bridge.cfg.n_layers):
        w_in = bridge.W_in[layer].detach().double().cpu().numpy()
        yield {"layer": layer, "matrix": "mlp_in", "similarity": "weight"}, w_in, None, 1
        if lm:
            param, transposed = mlp_input_weight(bridge, layer)
            grads = gradient_similarity(param, batches)
            yield ({"layer": layer, "matrix": "mlp_in", "similarity": "gradient"}, w_in,
                   grads.T if transposed else grads, 1)
        yield ({"layer": layer, "matrix": "mlp_out", "similarity": "weight"},
               bridge.W_out[layer].detach().double().cpu().numpy(), None, 0)


@partitioned_multi_asset(lake_specs(STUDY, _DESCRIPTIONS, ["corpus", "checkpoint_fidelity"]))
def modularity(context: dg.AssetExecutionContext, nwh: NwhResource):
    """BSGC and enmeshment of every MLP layer; ON/OFF and circuit size per class for one layer."""
    opened = open_partition(context, nwh)
    cfg = opened.study.modularity
    frames = {t: empty(t) for t in _DESCRIPTIONS}
    if runs(opened.study):
        bridge = opened.bridge()
        n_layers = bridge.cfg.n_layers
        layer = n_layers // 2 if cfg.layer is None else cfg.layer
        if not 0 <= layer < n_layers:
            raise dg.Failure(f"modularity.layer {layer} is not a layer of the model (0.."
                             f"{n_layers - 1})")
        corpus = opened.read("corpus")
        heldout = opened.heldout_ids(bridge)
        lm = LossSetup(**loss_inputs(bridge, SITE_MLP)) if loss_usable(opened) else None
        rows, modules = enmeshment_table(_mlp_matrices(bridge, lm, heldout, opened), cfg.ks,
                                         cfg.seed, baseline_draws=cfg.baseline_draws)
        frames["enmeshment"] = pl.DataFrame(rows, schema=empty("enmeshment").schema)
        frames["spectral_modules"] = pl.DataFrame(modules, schema=empty("spectral_modules").schema)
        if lm is not None:  # ON/OFF and circuit size measure a loss: never through random weights
            effects, circuits = class_effects(
                lm, layer, *mlp_input_weight(bridge, layer),
                classes=tokens_by_class(token_classes(bridge.tokenizer, corpus)),
                sequences=heldout, k=cfg.effect_k, max_sentences=cfg.max_sentences,
                tolerance=cfg.tolerance, resolution=cfg.prune_resolution, seed=cfg.seed,
                log=opened.log)
            for table, rows in (("cluster_class_effect", effects),
                                ("effective_circuit_size", circuits)):
                frames[table] = pl.DataFrame(rows, schema=empty(table).schema)
    yield from write_tables(opened, frames)


assets = [modularity,
          report_asset("enmeshment", STUDY, ["fct_enmeshment"],
                       "Enmeshment E against k per MLP matrix and similarity, each model and "
                       "layer a line, the shuffled-weight baseline dotted (Golechha et al.).",
                       draw=plot_enmeshment)]
checks = lake_checks(STUDY)
