"""The checkpoint's fidelity gate and what a checkpoint without its language-model head runs."""

import duckdb
from transformers import BertForMaskedLM, BertTokenizerFast

from extract import lake
from extract.checkpoints import find_checkpoints
from tests.conftest import run_tiny_study, write_study


def _query(home, sql):
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        return con.sql(sql).pl()


def test_the_fidelity_of_every_checkpoint_is_recorded(built):
    home, _, outcome = built
    row = _query(home, "select * from stg_checkpoint_fidelity").row(0, named=True)
    assert row["compared"] == "logits" and row["loss_usable"]
    assert row["max_abs_diff"] <= row["tolerance"] and row["n_missing_weights"] == 0
    assert outcome.checks["checkpoint_fidelity_expectations"]


def test_an_encoder_without_its_head_runs_the_activation_studies_and_skips_the_losses(
        tmp_path, tiny_bert):
    """A sentence-transformers style BertModel folder: extraction, both clusterings, probing
    and the weight enmeshment run; ablation, cluster ON/OFF, circuit size and the gradient
    similarity (each a loss through the random head the loader made up) are skipped."""
    source = find_checkpoints(tiny_bert)[-1][1]
    folder = tmp_path / "encoder" / "checkpoint-1"
    BertForMaskedLM.from_pretrained(source).bert.save_pretrained(folder)
    BertTokenizerFast.from_pretrained(source).save_pretrained(folder)
    study = write_study(tmp_path, folder.parent,
                        activation_clusters={"ks": [4], "refine": False, "min_token_count": 3,
                                             "ablation_max_clusters": 2},
                        modularity={"ks": [2], "baseline_draws": 2})
    home = tmp_path / "home"
    outcome = run_tiny_study(home, study)
    assert outcome.success and all(outcome.checks.values())
    fidelity = _query(home, "select * from stg_checkpoint_fidelity").row(0, named=True)
    assert not fidelity["loss_usable"] and fidelity["compared"] == "hidden_states"
    assert "cls.predictions" in fidelity["missing_weights"]

    def rows(table):
        return lake.read_table(home / "lake", table, "tiny", "checkpoint-1").height

    assert rows("neuron_moments") > 0 and rows("activation_clusters") > 0
    assert rows("probe_accuracy") > 0 and rows("explanations") > 0
    assert rows("activation_ablations") == rows("cluster_class_effect") == 0
    assert rows("effective_circuit_size") == 0
    similarities = lake.read_table(home / "lake", "enmeshment", "tiny", "checkpoint-1")
    assert set(similarities["similarity"]) == {"weight"}
