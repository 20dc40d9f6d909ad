"""Is the loaded checkpoint the checkpoint? Two checks before any study runs a model.

* **Numerical fidelity**: the same fixed batch goes through the TransformerLens bridge and through
  the model as plain transformers loads it from the folder; the largest absolute difference of
  their logits must stay within a tolerance. When transformers had to initialise part of the
  model (then each load draws its own random head), the hidden states are compared instead: the
  embedding output and every layer's output but the last (whose transformers form may be
  normalised, as GPT-2's).
* **Weights the loader made up**: transformers reports the parameters it could not find in the
  folder and initialised at random (a sentence-transformers ``BertModel`` folder has no
  ``cls.predictions`` head, yet loads as ``BertForMaskedLM``). A loss measured through such a
  model is measured through random weights, so loss-based steps must not use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from core.batching import pad_sequences
from core.compute import device_of, to_host
from extract.activations import SITE_RESID, encode, is_masked_lm, site_hook_names
from extract.checkpoints import check_loadable

# float32 on the CPU through the same operations, in a different order: ~1e-5 in practice
FIDELITY_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Fidelity:
    compared: str  # logits | hidden_states
    max_abs_diff: float
    n_tokens: int
    missing_weights: tuple[str, ...]  # parameters the loader initialised, not in the folder

    @property
    def loss_usable(self) -> bool:
        """Whether a language-model loss through this checkpoint uses only its own weights."""
        return not self.missing_weights

    def row(self) -> dict:
        """The ``checkpoint_fidelity`` lake row."""
        return {"compared": self.compared, "max_abs_diff": self.max_abs_diff,
                "tolerance": FIDELITY_TOLERANCE, "n_tokens": self.n_tokens,
                "n_missing_weights": len(self.missing_weights),
                "missing_weights": ", ".join(self.missing_weights),
                "loss_usable": self.loss_usable}


def reference_model(path: str | Path, bridge, trust_pickle: bool = False):
    """The checkpoint as plain transformers loads it (the class the bridge booted), in eval mode,
    with the names of the parameters it had to initialise."""
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    folder, uses_pickle = check_loadable(path, trust_pickle)
    auto = AutoModelForMaskedLM if is_masked_lm(bridge) else AutoModelForCausalLM
    model, info = auto.from_pretrained(folder, output_loading_info=True,
                                       use_safetensors=not uses_pickle, trust_remote_code=False)
    return model.eval(), tuple(sorted(info["missing_keys"]))


def compare(bridge, reference, texts: Sequence[str],
            missing_weights: Sequence[str] = ()) -> Fidelity:
    """Run `texts` (framed like every study's sequences, cut to the context) through the bridge
    (on its device) and the reference model (on the CPU); compare logits, or the last hidden states when weights are missing
    (then the logits come from a random head in each, and differ by construction)."""
    tok = bridge.tokenizer
    seqs = [encode(tok, t)[: bridge.cfg.n_ctx] for t in texts]
    ids, real = pad_sequences(seqs, tok.pad_token_id if tok.pad_token_id is not None else 0)
    mask, n_tokens = real.long(), int(real.sum())
    device = device_of(bridge)
    with torch.no_grad():
        if missing_weights:
            names = site_hook_names(SITE_RESID, bridge.cfg.n_layers)[: bridge.cfg.n_layers]
            _, cache = bridge.run_with_cache(ids.to(device), attention_mask=mask.to(device),
                                             names_filter=lambda name: name in names)
            ours = to_host(torch.stack([cache[name] for name in names]))
            hidden = reference(input_ids=ids, attention_mask=mask,
                               output_hidden_states=True).hidden_states
            theirs = torch.stack(hidden[: bridge.cfg.n_layers])
            real = real.expand(len(names), *real.shape)
            compared = "hidden_states"
        else:
            ours = to_host(bridge(ids.to(device), attention_mask=mask.to(device)))
            theirs = reference(input_ids=ids, attention_mask=mask).logits
            compared = "logits"
    diff = (ours.float() - theirs.float()).abs()[real]
    return Fidelity(compared, float(diff.max()), n_tokens, tuple(missing_weights))
