"""Bad checkpoints are refused with an error that names the folder or file, before any run."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from extract.activations import extract_aggregates, load_bridge
from extract.checkpoints import CheckpointError
from extract.corpus import sentences
from training.demo_lm import train_tokenizer


@pytest.fixture
def copy(tmp_path, tiny_checkpoints):
    target = tmp_path / "checkpoint-120"
    shutil.copytree(tiny_checkpoints / "checkpoint-120", target)
    return target


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_truncated_or_corrupt_safetensors(copy, damage):
    weights = copy / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x13" * 64)
    with pytest.raises(CheckpointError, match="truncated or corrupt") as err:
        load_bridge(copy)
    assert str(weights) in str(err.value)


def test_pickle_weights_refused_unless_trusted_then_loaded_safely(copy, tiny_corpus):
    reference = extract_aggregates(load_bridge(copy), sentences(tiny_corpus, "train")[:20])
    state = load_file(copy / "model.safetensors")
    torch.save(state, copy / "pytorch_model.bin")
    (copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="pickle weights") as err:
        load_bridge(copy)
    assert "trust_pickle_checkpoints" in str(err.value)
    trusted = extract_aggregates(load_bridge(copy, trust_pickle=True),
                                     sentences(tiny_corpus, "train")[:20])
    assert trusted.moments["mean"].to_list() == pytest.approx(reference.moments["mean"].to_list(),
                                                              abs=1e-6)


def test_config_no_architecture_supports(copy):
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "model_type": "my-secret-arch"}))
    with pytest.raises(CheckpointError, match="'my-secret-arch' is not an architecture"):
        load_bridge(copy)


def test_tokenizer_that_does_not_match_the_model(copy, tiny_corpus):
    bigger = train_tokenizer([t for _, t in sentences(tiny_corpus)], vocab_size=600)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (copy / f).unlink(missing_ok=True)
    bigger.save_pretrained(copy)
    with pytest.raises(CheckpointError, match="tokenizer does not match the model"):
        load_bridge(copy)


def test_missing_tokenizer(copy):
    (copy / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="has no tokenizer"):
        load_bridge(copy)
