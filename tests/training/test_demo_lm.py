import json

from extract.checkpoints import find_checkpoints


def test_training_beats_unigram_entropy_and_saves_hf_checkpoints(tiny_checkpoints):
    found = find_checkpoints(tiny_checkpoints)
    assert [name for name, _ in found] == ["checkpoint-40", "checkpoint-120"]
    folder = found[-1][1]
    for f in ("config.json", "model.safetensors", "tokenizer.json", "trainer_state.json"):
        assert (folder / f).is_file(), f
    first = json.loads((found[0][1] / "trainer_state.json").read_text())
    last = json.loads((folder / "trainer_state.json").read_text())
    assert last["eval_loss"] < first["eval_loss"]
    assert last["eval_loss"] < 0.75 * last["unigram_entropy"]
    assert not list(tiny_checkpoints.glob(".tmp-*"))
