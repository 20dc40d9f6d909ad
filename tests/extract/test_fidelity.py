"""The bridge against plain transformers, and the weights a loader makes up."""

import torch

from extract.activations import load_bridge
from extract.checkpoints import find_checkpoints
from extract.fidelity import FIDELITY_TOLERANCE, compare, reference_model

TEXTS = ["Alice drank espresso in Reykjavik .", "The cat sat on the mat ."]


def test_the_bridge_gives_the_logits_transformers_gives(tiny_checkpoints):
    folder = find_checkpoints(tiny_checkpoints)[-1][1]
    bridge = load_bridge(folder)
    reference, missing = reference_model(folder, bridge)
    assert missing == ()
    found = compare(bridge, reference, TEXTS)
    assert found.compared == "logits" and found.loss_usable
    assert found.max_abs_diff < FIDELITY_TOLERANCE / 10 and found.n_tokens > 10
    with torch.no_grad():  # a model that is not the checkpoint is caught
        reference.transformer.ln_f.weight[0] += 1.0
    assert compare(bridge, reference, TEXTS).max_abs_diff > FIDELITY_TOLERANCE


def test_an_encoder_saved_without_its_head_is_flagged(tiny_bert, tmp_path):
    """A BertModel folder (no cls.predictions, as sentence-transformers saves encoders) loads
    as BertForMaskedLM with a random head: the head's weights are reported, and the encoder's
    hidden states are compared instead of logits."""
    from transformers import BertForMaskedLM, BertTokenizerFast

    source = find_checkpoints(tiny_bert)[-1][1]
    headless = tmp_path / "encoder"
    BertForMaskedLM.from_pretrained(source).bert.save_pretrained(headless)
    BertTokenizerFast.from_pretrained(source).save_pretrained(headless)
    bridge = load_bridge(headless)
    reference, missing = reference_model(headless, bridge)
    assert any(name.startswith("cls.predictions") for name in missing)
    found = compare(bridge, reference, TEXTS, missing)
    assert found.compared == "hidden_states" and not found.loss_usable
    assert found.max_abs_diff < FIDELITY_TOLERANCE
