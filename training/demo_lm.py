"""The demo model: a small GPT-2 with a byte-level BPE tokenizer, trained on a corpus of sentences.

Checkpoints are Hugging Face folders ``checkpoint-<step>/`` (safetensors weights, config, tokenizer,
``trainer_state.json``), each written under a temporary name and renamed into place when complete.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from core.batching import pad_sequences
from models.modularity import bipartite_spectral_clusters, enmeshment_loss

SPECIAL = "<|endoftext|>"


@dataclass(frozen=True)
class DemoModelConfig:
    """Shape and training schedule of the demo GPT-2 (defaults: 4 layers, d_model 128, d_mlp 512)."""

    n_layer: int = 4
    d_model: int = 128
    d_mlp: int = 512
    n_head: int = 4
    n_ctx: int = 64
    vocab_size: int = 1024
    steps: int = 600
    batch_size: int = 32
    lr: float = 3e-3
    warmup: int = 30
    save_steps: tuple[int, ...] = field(default_factory=lambda: (100, 300))
    seed: int = 0
    # Training for modularity (Golechha et al., Sec. 3): after `modular_warmup` steps, split
    # layer `modular_layer`'s MLP input weights into `modular_k` bipartite clusters (BSGC) and
    # add modular_lambda * (1 - E) to the loss. None = plain training.
    modular_layer: int | None = None
    modular_k: int = 4
    modular_lambda: float = 20.0
    modular_warmup: int = 100


def train_tokenizer(texts: Sequence[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a GPT-2 style byte-level BPE tokenizer on `texts`; BOS = EOS = PAD = <|endoftext|>."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SPECIAL],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL,
                                   pad_token=SPECIAL, unk_token=SPECIAL)


def encode_sentences(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, framed as <bos> text <eos> (the format the demo model is trained on)."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return [[bos, *tokenizer(t, add_special_tokens=False)["input_ids"], eos] for t in texts]


def lm_loss(model: GPT2LMHeadModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over real (unpadded) target tokens; `mask` is True on them."""
    labels = ids.masked_fill(~mask, -100)
    return model(input_ids=ids, attention_mask=mask.long(), labels=labels).loss


def evaluate_loss(model, seqs: Sequence[Sequence[int]], pad_id: int, batch_size: int = 64) -> float:
    """Token-weighted mean next-token loss (nats) of `model` on `seqs`."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(seqs), batch_size):
            ids, mask = pad_sequences(seqs[i: i + batch_size], pad_id)
            n = int(mask[:, 1:].sum())
            total += float(lm_loss(model, ids, mask)) * n
            count += n
    return total / count


def _save_checkpoint(model, tokenizer, out_dir: Path, step: int, *, state: dict) -> Path:
    final = out_dir / f"checkpoint-{step}"
    tmp = out_dir / f".tmp-checkpoint-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return final


def train_demo_model(
    train_texts: Sequence[str],
    eval_texts: Sequence[str],
    out_dir: str | Path,
    config: DemoModelConfig = DemoModelConfig(),
    *, progress: Callable[[int, int, float], None] | None = None,
) -> list[Path]:
    """Train the demo GPT-2 with AdamW (linear warm-up, cosine decay) and save checkpoints.

    Saves ``checkpoint-<s>`` for every s in ``config.save_steps`` below ``config.steps`` and at
    ``config.steps``. Each checkpoint's ``trainer_state.json`` records the train and held-out loss
    and the unigram entropy of the training tokens, the loss of the best context-free model.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    tokenizer = train_tokenizer(train_texts, config.vocab_size)
    train = [s[: config.n_ctx] for s in encode_sentences(tokenizer, train_texts)]
    evals = [s[: config.n_ctx] for s in encode_sentences(tokenizer, eval_texts)]
    pad = tokenizer.pad_token_id
    model = GPT2LMHeadModel(GPT2Config(
        vocab_size=len(tokenizer), n_positions=config.n_ctx, n_embd=config.d_model,
        n_layer=config.n_layer, n_head=config.n_head, n_inner=config.d_mlp,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=pad))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, config))
    entropy = unigram_entropy([s[1:] for s in train])
    saves = sorted({s for s in config.save_steps if s < config.steps} | {config.steps})
    history, paths = [], []
    clusters = None  # (rows, cols) of the modular layer's W_in, fixed after the warm-up
    for step in range(1, config.steps + 1):
        model.train()
        batch = [train[i] for i in rng.integers(0, len(train), config.batch_size)]
        loss = lm = lm_loss(model, *pad_sequences(batch, pad))
        if config.modular_layer is not None and step > config.modular_warmup:
            w_in = model.transformer.h[config.modular_layer].mlp.c_fc.weight  # d_model x d_mlp
            if clusters is None:
                clusters = bipartite_spectral_clusters(w_in.detach().abs().numpy(),
                                                       config.modular_k, config.seed)
            loss = loss + config.modular_lambda * enmeshment_loss(w_in, *clusters)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        history.append({"step": step, "loss": lm.item()})  # the LM loss, without the penalty
        if progress:
            progress(step, config.steps, lm.item())
        if step in saves:
            state = {"global_step": step, "config": asdict(config),
                     "unigram_entropy": entropy,
                     "train_loss": float(np.mean([h["loss"] for h in history[-50:]])),
                     "eval_loss": evaluate_loss(model, evals, pad),
                     "log_history": history[-200:]}
            paths.append(_save_checkpoint(model, tokenizer, out_dir, step, state=state))
    return paths


def _lr_factor(step: int, config: DemoModelConfig) -> float:
    """Linear warm-up over `config.warmup` steps, then cosine decay to 10% of the peak rate."""
    if step < config.warmup:
        return (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def unigram_entropy(token_ids: Sequence[Sequence[int]]) -> float:
    """Entropy (nats) of the unigram token distribution: the loss of the best context-free model."""
    counts = np.bincount(np.concatenate([np.asarray(s) for s in token_ids]))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())
