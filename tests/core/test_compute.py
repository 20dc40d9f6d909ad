"""The `compute` setting: which device and dtype the model-running steps use."""

import numpy as np
import pytest
import torch

from core.compute import Compute, ComputeError
from extract.activations import extract_aggregates, load_bridge
from extract.checkpoints import find_checkpoints
from extract.corpus import sentences

AVAILABLE = {"cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}


def test_auto_is_cuda_where_there_is_one_else_the_cpu():
    assert Compute().torch_device().type == ("cuda" if AVAILABLE["cuda"] else "cpu")
    assert Compute(device="cpu").torch_device() == torch.device("cpu")


@pytest.mark.parametrize("device", ["cuda", "mps"])
def test_an_unavailable_device_is_an_error_that_names_the_setting(device):
    if AVAILABLE[device]:
        pytest.skip(f"this machine has {device}")
    with pytest.raises(ComputeError, match=rf"compute.device: '{device}' is not available on "
                                           r"this machine .*set compute.device to 'auto' or 'cpu'"):
        Compute(device=device).torch_device()


def _token_means(bridge, corpus) -> np.ndarray:
    result = extract_aggregates(bridge, sentences(corpus, "train")[:60], batch_size=16,
                                min_token_count=1)
    return result.token_means.sort("token_id", "layer", "neuron")["mean_activation"].to_numpy()


@pytest.mark.parametrize("dtype, bits", [(torch.bfloat16, 8), (torch.float16, 11)])
def test_a_lower_precision_model_gives_float32_results_within_its_precision(
        tiny_checkpoints, tiny_corpus, dtype, bits):
    """The weights and the forward in `dtype` (8 / 11 significant bits), the aggregates in
    float64 on the host: token means within 4 units in the last place of `dtype` (2^-bits,
    relative to the largest mean; measured: 0.4 % and 0.04 %), and not equal (the dtype is used)."""
    folder = find_checkpoints(tiny_checkpoints)[-1][1]
    exact = _token_means(load_bridge(folder), tiny_corpus)
    low = _token_means(load_bridge(folder, dtype=dtype), tiny_corpus)
    diff = np.abs(low - exact).max()
    assert 0 < diff <= 4 * 2.0 ** -bits * np.abs(exact).max()


@pytest.mark.skipif(not AVAILABLE["cuda"], reason="needs a CUDA GPU")
def test_extraction_on_cuda_equals_the_cpu(tiny_checkpoints, tiny_corpus):
    folder = find_checkpoints(tiny_checkpoints)[-1][1]
    np.testing.assert_allclose(_token_means(load_bridge(folder, device="cuda"), tiny_corpus),
                               _token_means(load_bridge(folder), tiny_corpus), atol=1e-5)
