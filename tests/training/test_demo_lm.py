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


def test_the_mlp_nonlinearity_is_gpt2s_tanh_gelu(tiny_checkpoints):
    """The demo GPT-2 names the fused kernel of GPT-2's GELU (``gelu_pytorch_tanh``, one pass
    instead of ``gelu_new``'s five tensor operations): the same function, 0.5 x (1 + tanh(
    sqrt(2 / pi) (x + 0.044715 x^3))), computed here by hand."""
    import math

    import torch
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(find_checkpoints(tiny_checkpoints)[-1][1])
    assert model.config.activation_function == "gelu_pytorch_tanh"
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    by_hand = 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    torch.testing.assert_close(model.transformer.h[0].mlp.act(x.float()).double(), by_hand,
                               rtol=0, atol=1e-6)
