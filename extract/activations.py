"""Streaming activation extraction: load a checkpoint offline, hook neuron sites, aggregate.

Two neuron sites (DESIGN.md keys): ``mlp``, the MLP post-activations ``blocks.{l}.mlp.hook_post``
(layers 0..L-1), and ``resid``, each layer's output hidden state including the embedding output,
as Zhang et al. use for BERT (layer 0 = ``blocks.0.hook_resid_pre``, layer l = the output of
block l-1, ``blocks.{l-1}.hook_resid_post``; 13 x 768 for BERT-base).

Activations are never held for the whole corpus. Each batch of sentences (of similar lengths)
is run through the model with hooks on the chosen sites only, up to the last activation wanted;
the batch's activations (real tokens only: no padding, no special tokens) are folded into
:class:`ActivationAggregates` and dropped. Memory is bounded by the model size, the batch, the
token types seen and top-k, not by corpus length. Causal (GPT-2) and masked (BERT
``BertForMaskedLM``) models both work: padding is masked out of attention.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import polars as pl
import pyarrow as pa
import torch

from core.batching import pad_sequences
from core.compute import device_of, to_host
from extract.checkpoints import CheckpointError, check_loadable
from extract.fold import fold_batch

SITE_MLP = "mlp"
SITE_RESID = "resid"
SITES = (SITE_MLP, SITE_RESID)


def load_bridge(path: str | Path, trust_pickle: bool = False, *,
                device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    """Load a local Hugging Face checkpoint folder through TransformerLens' TransformerBridge.

    The folder is checked first (:func:`extract.checkpoints.check_loadable`); then
    ``TransformerBridge.boot_transformers`` loads it (never a hub name) onto `device` in `dtype`
    (see :mod:`core.compute`) with ``trust_remote_code`` off, in eval mode. Pickle weights, when trusted, are loaded by
    transformers with ``torch.load(weights_only=True)`` and handed to the bridge. A tokenizer
    with more tokens than the model's embedding is refused.
    """
    from transformer_lens.model_bridge import TransformerBridge

    folder, uses_pickle = check_loadable(path, trust_pickle)
    hf_model = None
    if uses_pickle:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM

        architectures = AutoConfig.from_pretrained(folder).architectures or []
        auto = (AutoModelForMaskedLM if any(a.endswith("ForMaskedLM") for a in architectures)
                else AutoModelForCausalLM)
        hf_model = auto.from_pretrained(folder, use_safetensors=False, trust_remote_code=False)
    try:
        bridge = TransformerBridge.boot_transformers(str(folder.resolve()), device=device,
                                                     dtype=dtype, trust_remote_code=False,
                                                     hf_model=hf_model)
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {str(folder)!r} could not be loaded: {e}") from None
    if len(bridge.tokenizer) > bridge.cfg.d_vocab:
        raise CheckpointError(
            f"checkpoint {str(folder)!r}: its tokenizer has {len(bridge.tokenizer)} tokens but the "
            f"model's vocabulary has {bridge.cfg.d_vocab}; the tokenizer does not match the model")
    bridge.eval()
    return bridge


def is_masked_lm(bridge) -> bool:
    """Whether the loaded checkpoint is a masked language model (e.g. ``BertForMaskedLM``)."""
    return str(getattr(bridge.cfg, "architecture", "") or "").endswith("ForMaskedLM")


def loss_inputs(bridge, site: str) -> dict:
    """What a language-model loss through `bridge` with `site` ablated needs (the fields of
    ``models.lm_loss.LossSetup``): the site's hooks and width, masked or causal, and the
    tokenizer's pad, mask and special ids."""
    tok = bridge.tokenizer
    return {"bridge": bridge, "hook_names": site_hook_names(site, bridge.cfg.n_layers),
            "width": site_shape(bridge, site)[1], "masked": is_masked_lm(bridge),
            "pad_id": tok.pad_token_id or 0, "mask_id": tok.mask_token_id,
            "special_ids": set(tok.all_special_ids)}


def site_hook_names(site: str, n_layers: int) -> list[str]:
    """The hook of each layer of a neuron site, in layer order (see the module docstring)."""
    if site == SITE_MLP:
        return [f"blocks.{layer}.mlp.hook_post" for layer in range(n_layers)]
    if site == SITE_RESID:
        return ["blocks.0.hook_resid_pre",
                *(f"blocks.{layer}.hook_resid_post" for layer in range(n_layers))]
    raise ValueError(f"unknown neuron site {site!r}; choose from {list(SITES)}")


def site_shape(bridge, site: str) -> tuple[int, int]:
    """(layers, neurons per layer) of a site: L x d_mlp for mlp, (L + 1) x d_model for resid."""
    n_layers = len(site_hook_names(site, bridge.cfg.n_layers))
    return n_layers, bridge.cfg.d_mlp if site == SITE_MLP else bridge.cfg.d_model


def frame_ids(tokenizer) -> tuple[int | None, int | None]:
    """The tokens that open and close a sequence: CLS / SEP when the tokenizer has them (BERT;
    TransformerLens gives such a tokenizer a stand-in BOS that the model never saw), else BOS /
    EOS (GPT-2)."""
    if tokenizer.cls_token_id is not None and tokenizer.sep_token_id is not None:
        return tokenizer.cls_token_id, tokenizer.sep_token_id
    return tokenizer.bos_token_id, tokenizer.eos_token_id


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of `text` framed as <bos> text <eos> (or [CLS] text [SEP]) when the tokenizer
    has those tokens."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    first, last = frame_ids(tokenizer)
    return ([first] if first is not None else []) + ids + ([last] if last is not None else [])


@dataclass
class ActivationBatch:
    """Activations of the real tokens of one batch: ``acts[m, j]`` for token m and neuron j,
    neurons of all layers concatenated layer by layer."""

    acts: torch.Tensor  # (M, n_layers * d_mlp) float32
    token_ids: torch.Tensor  # (M,) long
    sentence_ids: torch.Tensor  # (M,) long
    positions: torch.Tensor  # (M,) long, token position within the sentence's sequence


class _AllCaptured(Exception):
    """Raised by the hook that captures the last wanted activation, to end the forward there."""


def _capture_into(store: list, layer: int, keep: torch.Tensor, remaining: list[int]):
    """A forward hook that stores the layer's activations at the `keep` positions (a mask on the
    model's device) in store[layer], on the host as float32, and, once `remaining[0]` hooks have all fired, ends the forward pass (:class:`_AllCaptured`)."""
    def capture(act, hook):
        store[layer] = to_host(act.detach()[keep])
        remaining[0] -= 1
        if remaining[0] == 0:
            raise _AllCaptured
        return act
    return capture


def stream_activations(
    bridge,
    sentences: Sequence[tuple[int, str]],
    sites: Sequence[str] = (SITE_MLP,),
    batch_size: int = 32,
    *, progress: Callable[[int, int], None] | None = None,
) -> Iterator[dict[str, ActivationBatch]]:
    """Yield, batch by batch, each site's activations of `sentences` ((sentence_id, text) pairs).

    All sites come from one forward pass, ended by the hook of the last activation wanted (the
    rest of the last block, the final norm and the unembedding, 31 % of GPT-2 small's forward
    FLOPs at its 50,257 types, are not needed; TransformerLens' ``stop_at_layer`` only stops
    before a block). Sentences are batched in order of their token length, so a batch carries
    almost no padding; the padding there is is masked out of attention (needed for bidirectional
    models), then excluded from the output, as are special tokens (BOS/EOS, CLS/SEP). Consumers
    key rows by (sentence_id, position), never by order.
    """
    tok = bridge.tokenizer
    device = device_of(bridge)
    n_layers = bridge.cfg.n_layers
    names = {site: site_hook_names(site, n_layers) for site in sites}
    special = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    n_ctx = bridge.cfg.n_ctx
    encoded = [encode(tok, text)[:n_ctx] for _, text in sentences]
    by_length = sorted(range(len(sentences)), key=lambda i: len(encoded[i]))
    for start in range(0, len(sentences), batch_size):
        chunk = by_length[start: start + batch_size]
        ids, real = pad_sequences([encoded[i] for i in chunk], pad)
        keep = real & ~torch.isin(ids, special)
        keep_on_device = keep.to(device)
        captured = {site: [None] * len(hooks) for site, hooks in names.items()}
        remaining = [sum(map(len, names.values()))]
        hooks = [(name, _capture_into(captured[site], layer, keep_on_device, remaining))
                 for site, site_names in names.items() for layer, name in enumerate(site_names)]
        try:
            with torch.no_grad():
                bridge.run_with_hooks(ids.to(device), fwd_hooks=hooks,
                                      attention_mask=real.long().to(device))
        except _AllCaptured:
            pass
        sid = torch.tensor([sentences[i][0] for i in chunk], dtype=torch.long)
        token_ids = ids[keep]
        sentence_ids = sid[:, None].expand_as(ids)[keep]
        positions = torch.arange(ids.shape[1])[None, :].expand_as(ids)[keep]
        yield {site: ActivationBatch(torch.cat(acts, dim=-1), token_ids, sentence_ids,
                                     positions)
               for site, acts in captured.items()}
        if progress:
            progress(min(start + batch_size, len(sentences)), len(sentences))


def stream_mlp_activations(
    bridge,
    sentences: Sequence[tuple[int, str]],
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[ActivationBatch]:
    """The MLP site of :func:`stream_activations`."""
    for batch in stream_activations(bridge, sentences, (SITE_MLP,), batch_size, progress=progress):
        yield batch[SITE_MLP]


POSITION_LIMIT = 1 << 24  # positions are below n_ctx, far below this


def top_rows(values: torch.Tensor,
             ids_at: Callable[[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]],
             k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k largest values of each column of `values` (R x N) with their (sentence, position)
    (``ids_at(idx, columns)`` gives those of rows `idx` of the given columns, all if None),
    ordered by value descending and equal values by (sentence, position) ascending: a total order, so the top-k of a stream does not depend on
    the order its rows arrive in (shards merge to the unsharded top-k). Only columns with ties
    among their top k + 1 are re-ordered, and only over the rows tied with the k-th value or
    above."""
    k = min(k, values.shape[0])
    top, idx = values.topk(min(k + 1, values.shape[0]), dim=0)
    tied = (top[1:] == top[:-1]).any(0).nonzero().flatten()
    idx = idx[:k]
    if len(tied):
        column = values[:, tied]
        n_candidates = int((column >= top[k - 1, tied]).sum(0).max())
        candidate_values, candidates = column.topk(n_candidates, dim=0)
        sentence, position = ids_at(candidates, tied)
        by_key = (sentence * POSITION_LIMIT + position).argsort(dim=0, stable=True)
        by_value = candidate_values.gather(0, by_key).argsort(dim=0, descending=True, stable=True)
        idx[:, tied] = candidates.gather(0, by_key.gather(0, by_value)[:k])
    return (values.gather(0, idx), *ids_at(idx, None))


def merge_top(old: Sequence[torch.Tensor], new: Sequence[torch.Tensor],
              k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`top_rows` of the union of a top-k ``old`` = (values, sentence, position), each
    K x N, and new rows ``new`` = (values M x N, sentence and position per row (M,) or per
    entry (M x N))."""
    old_values, old_sentence, old_position = old
    values, sentence, position = new
    k_old = old_values.shape[0]

    def ids_at(idx: torch.Tensor, columns: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        def pick(old_ids: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            fresh_idx = (idx - k_old).clamp(min=0)
            fresh = ids[fresh_idx] if ids.dim() == 1 else (
                ids if columns is None else ids[:, columns]).gather(0, fresh_idx)
            if k_old == 0:
                return fresh
            kept = (old_ids if columns is None else old_ids[:, columns]).gather(
                0, idx.clamp(max=k_old - 1))
            return torch.where(idx < k_old, kept, fresh)

        return pick(old_sentence, sentence), pick(old_position, position)

    return top_rows(torch.cat([old_values, values]), ids_at, k)


class TokenTypeSums:
    """Per token type t and neuron j, the sum of the activations at t and the count of t: the
    numerator and denominator of Eq. 1 of the activation-clusters paper. Rows exist only for
    the types seen (in order of first appearance; :meth:`by_token` sorts them), so memory is
    seen types x neurons rather than vocabulary x neurons (50,257 x 36,864 float64 = 14.8 GB
    for GPT-2 small's MLP neurons). The row capacity doubles when it runs out; the new block
    comes from ``np.zeros`` (calloc: pages are zeroed by the kernel when first written), so a
    growth copies the rows in use and touches no spare row (with ``torch.zeros`` + ``cat`` it
    wrote every spare row twice: 0.75 s of a GPT-2-small-shaped extraction's 2.2 s of folding)."""

    def __init__(self, n_neurons: int, vocab_size: int):
        self.vocab_size = vocab_size
        self.row_of = torch.full((vocab_size,), -1, dtype=torch.long)
        self.token_ids = torch.zeros(0, dtype=torch.long)
        self._sums = torch.zeros((0, n_neurons), dtype=torch.float64)
        self._counts = torch.zeros(0, dtype=torch.int64)

    @property
    def n_neurons(self) -> int:
        return self._sums.shape[1]

    def rows(self, token_ids: torch.Tensor) -> torch.Tensor:
        """The rows of `token_ids`, adding rows for the types not seen before."""
        new = torch.unique(token_ids[self.row_of[token_ids] < 0])
        if len(new):
            n, needed = len(self.token_ids), len(self.token_ids) + len(new)
            if needed > self._sums.shape[0]:
                capacity = max(needed, 2 * self._sums.shape[0], 64)
                sums = torch.from_numpy(np.zeros((capacity, self.n_neurons)))
                sums[:n] = self._sums[:n]
                self._sums = sums
                self._counts = torch.cat([self._counts[:n], self._counts.new_zeros(capacity - n)])
            self.row_of[new] = torch.arange(n, needed)
            self.token_ids = torch.cat([self.token_ids, new])
        return self.row_of[token_ids]

    def add(self, token_ids: torch.Tensor, sums: torch.Tensor, counts: torch.Tensor) -> None:
        """Add `sums` (rows of float64, one per entry of `token_ids`) and `counts` to the types
        `token_ids` (which may repeat)."""
        rows = self.rows(token_ids)
        self._sums.index_add_(0, rows, sums)
        self._counts.index_add_(0, rows, counts)

    def count(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Count one occurrence of each of `token_ids` (M,) and return their rows of
        :attr:`sums`, to which the caller adds the activations (:func:`extract.fold.fold_batch`)."""
        rows = self.rows(token_ids)
        self._counts.index_add_(0, rows, torch.ones_like(rows))
        return rows

    @property
    def sums(self) -> torch.Tensor:
        """The running sums, a row per type seen (rows past those are spare capacity)."""
        return self._sums

    def merge(self, other: TokenTypeSums) -> None:
        """Fold in another part's sums."""
        ids, counts, sums = other.by_token()
        self.add(ids, sums, counts)

    def by_token(self, min_count: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Token ids seen at least `min_count` times (ascending), their counts and sums (T x N)."""
        counts = self._counts[:len(self.token_ids)]
        kept = torch.nonzero(counts >= min_count).flatten()
        order = kept[torch.argsort(self.token_ids[kept])]
        return self.token_ids[order], counts[order], self._sums[order]


class ActivationAggregates:
    """Mergeable per-neuron aggregates of a stream of activations.

    * moments: count, mean and the central sums M2, M3, M4 combined per batch with Pebay's
      (2008) parallel update, which extends Chan et al.'s (std = sqrt(M2 / n), the population
      standard deviation; skew = sqrt(n) M3 / M2^1.5; kurtosis = n M4 / M2^2, 3 for a Gaussian),
      max, count of activations > 0;
    * per token type t and neuron j, the sum of activations and the count of t, from which
      Eq. 1 of the activation-clusters paper gives the mean activation ``a_j(t) = sum / count``
      (:class:`TokenTypeSums`, over the types seen);
    * the top-k activations of each neuron with their (sentence_id, position).
    A batch is folded in by one kernel (:func:`extract.fold.fold_batch`) in float64; shards'
    aggregates are merged with :meth:`merge`.
    """

    def __init__(self, n_neurons: int, vocab_size: int, top_k: int = 10):
        self.n = 0
        self.mean = torch.zeros(n_neurons, dtype=torch.float64)
        self.m2 = torch.zeros(n_neurons, dtype=torch.float64)
        self.m3 = torch.zeros(n_neurons, dtype=torch.float64)
        self.m4 = torch.zeros(n_neurons, dtype=torch.float64)
        self.max = torch.full((n_neurons,), -torch.inf, dtype=torch.float64)
        self.n_positive = torch.zeros(n_neurons, dtype=torch.int64)
        self.token_sums = TokenTypeSums(n_neurons, vocab_size)
        self.top_k = top_k
        self.top_values = torch.full((0, n_neurons), -torch.inf, dtype=torch.float32)
        self.top_sentence = torch.zeros((0, n_neurons), dtype=torch.long)
        self.top_position = torch.zeros((0, n_neurons), dtype=torch.long)

    def update(self, batch: ActivationBatch) -> None:
        """Fold in one batch: :func:`extract.fold.fold_batch` adds its token sums, inserts its
        entries into the top-k once that is full, and returns its mean and central sums (about
        its exact mean, float64), which Pebay's update combines with the running ones; until
        the top-k is full (the first batch, as a rule), :func:`merge_top` fills it."""
        m = batch.acts.shape[0]
        if m == 0:
            return
        acts = np.ascontiguousarray(batch.acts.numpy(), dtype=np.float32)
        full = self.top_values.shape[0] == self.top_k
        rows = self.token_sums.count(batch.token_ids)
        numba.set_num_threads(min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
        b_mean, b_m2, b_m3, b_m4, batch_max, n_positive = (torch.from_numpy(t) for t in fold_batch(
            acts, rows.numpy(), self.token_sums.sums.numpy(), batch.sentence_ids.numpy(),
            batch.positions.numpy(), self.top_values.numpy(), self.top_sentence.numpy(),
            self.top_position.numpy(), full))
        self._add_moments(m, b_mean, b_m2, b_m3, b_m4=b_m4)
        self.max = torch.maximum(self.max, batch_max.double())
        self.n_positive += n_positive
        if not full:
            self._add_top(torch.from_numpy(acts), batch.sentence_ids, batch.positions)

    def merge(self, other: ActivationAggregates) -> ActivationAggregates:
        """Fold in the aggregates of another part of the corpus (a shard): the result equals the
        aggregates of both parts streamed together, up to the rounding of the sums (float32 within
        a batch, float64 across batches: ~1e-7 relative), and the top-k exactly, ties included
        (see :func:`top_rows`). Returns self."""
        if (other.mean.shape != self.mean.shape
                or other.token_sums.vocab_size != self.token_sums.vocab_size):
            raise ValueError(f"cannot merge aggregates of {other.mean.shape[0]} neurons x "
                             f"{other.token_sums.vocab_size} token types into "
                             f"{self.mean.shape[0]} x {self.token_sums.vocab_size}: the shards "
                             f"come from different models")
        self._add_moments(other.n, other.mean, other.m2, other.m3, b_m4=other.m4)
        self.max = torch.maximum(self.max, other.max)
        self.n_positive += other.n_positive
        self.token_sums.merge(other.token_sums)
        self._add_top(other.top_values, other.top_sentence, other.top_position)
        return self

    def _add_moments(self, nb: int, b_mean: torch.Tensor, b_m2: torch.Tensor, b_m3: torch.Tensor,
                     *, b_m4: torch.Tensor) -> None:
        """Combine count, mean and central sums M2..M4 of a part B into self (Pebay 2008,
        Eqs. 3.1, 2.1 of the pairwise update)."""
        na, total = self.n, self.n + nb
        if nb == 0:
            return
        delta = b_mean - self.mean
        self.m4 += (b_m4 + delta**4 * na * nb * (na * na - na * nb + nb * nb) / total**3
                    + 6 * delta**2 * (na * na * b_m2 + nb * nb * self.m2) / total**2
                    + 4 * delta * (na * b_m3 - nb * self.m3) / total)
        self.m3 += (b_m3 + delta**3 * na * nb * (na - nb) / total**2
                    + 3 * delta * (na * b_m2 - nb * self.m2) / total)
        self.m2 += b_m2 + delta**2 * na * nb / total
        self.mean += delta * nb / total
        self.n = total

    def _add_top(self, values: torch.Tensor, sentence: torch.Tensor, position: torch.Tensor
                 ) -> None:
        """Fold rows `values` (M x N) into the top-k; their sentence and position are per row
        (M,) for a batch of tokens or per entry (M x N) for another top-k. Once the top-k is
        full (merging another part's top-k), only the columns where a new value reaches the k-th
        best are recomputed; a batch's entries are inserted by :func:`extract.fold.fold_batch`."""
        if self.top_values.shape[0] < self.top_k:
            self.top_values, self.top_sentence, self.top_position = merge_top(
                (self.top_values, self.top_sentence, self.top_position),
                (values, sentence, position), self.top_k)
            return
        columns = (values.amax(0) >= self.top_values[-1]).nonzero().flatten()
        if len(columns) == 0:
            return
        state = (self.top_values, self.top_sentence, self.top_position)
        new = merge_top([t[:, columns] for t in state],
                        (values[:, columns], *(ids if ids.dim() == 1 else ids[:, columns]
                                               for ids in (sentence, position))), self.top_k)
        for target, result in zip(state, new):
            target[:, columns] = result

    def to_arrow(self, sentences: str = "") -> pa.Table:
        """The whole state as one Arrow table, a row per neuron (the moments, max, count > 0,
        top-k lists and the token sums of the token types seen, whose ids and counts are in the
        schema metadata), for a shard to hand its aggregates to the merge step as Parquet;
        `sentences` (a :func:`sentence_fingerprint`) records what was aggregated."""
        seen, counts, sums = self.token_sums.by_token()

        def rows_of(matrix: torch.Tensor, arrow_type: pa.DataType) -> pa.Array:
            width = matrix.shape[0]
            flat = pa.array(matrix.T.contiguous().flatten().numpy(), type=arrow_type)
            return pa.FixedSizeListArray.from_arrays(flat, width)

        return pa.table({
            "mean": self.mean.numpy(), "m2": self.m2.numpy(), "m3": self.m3.numpy(),
            "m4": self.m4.numpy(), "max": self.max.numpy(), "n_positive": self.n_positive.numpy(),
            "top_values": rows_of(self.top_values, pa.float32()),
            "top_sentence": rows_of(self.top_sentence, pa.int64()),
            "top_position": rows_of(self.top_position, pa.int64()),
            "token_sum": rows_of(sums, pa.float64()),
        }, metadata={"n": str(self.n), "top_k": str(self.top_k), "sentences": sentences,
                     "vocab_size": str(self.token_sums.vocab_size),
                     "token_ids": ",".join(map(str, seen.tolist())),
                     "token_counts": ",".join(map(str, counts.tolist()))})

    @classmethod
    def from_arrow(cls, table: pa.Table) -> ActivationAggregates:
        """The inverse of :meth:`to_arrow`."""
        meta = {key.decode(): value.decode() for key, value in table.schema.metadata.items()}
        n_neurons = table.num_rows
        agg = cls(n_neurons, int(meta["vocab_size"]), int(meta["top_k"]))

        def column(name: str) -> torch.Tensor:
            return torch.from_numpy(table.column(name).to_numpy().copy())

        def matrix(name: str) -> torch.Tensor:
            values = table.column(name).combine_chunks()
            width = values.type.list_size
            return torch.from_numpy(values.values.to_numpy().copy()).reshape(n_neurons, width).T

        agg.n = int(meta["n"])
        agg.mean, agg.m2, agg.m3, agg.m4 = (column(c) for c in ("mean", "m2", "m3", "m4"))
        agg.max, agg.n_positive = column("max"), column("n_positive")
        agg.top_values, agg.top_sentence, agg.top_position = (
            matrix(c).contiguous() for c in ("top_values", "top_sentence", "top_position"))
        seen, counts = (torch.tensor([int(v) for v in meta[key].split(",") if v], dtype=torch.long)
                        for key in ("token_ids", "token_counts"))
        if len(seen):
            agg.token_sums.add(seen, matrix("token_sum").contiguous(), counts)
        return agg

    def moments_frame(self, n_layers: int, site: str = SITE_MLP) -> pl.DataFrame:
        """Table ``neuron_moments``: site, layer, neuron, n_tokens, mean, std, skew, kurtosis, max,
        frac_positive (skew and kurtosis NaN for a constant neuron)."""
        if self.n == 0:
            raise ValueError("no activations were aggregated: the corpus yielded no real tokens")
        d = self.mean.shape[0] // n_layers
        j = np.arange(self.mean.shape[0])
        return pl.DataFrame({
            "site": site, "layer": j // d, "neuron": j % d, "n_tokens": self.n,
            "mean": self.mean.numpy(), "std": (self.m2 / self.n).sqrt().numpy(),
            "skew": (self.n**0.5 * self.m3 / self.m2**1.5).numpy(),
            "kurtosis": (self.n * self.m4 / self.m2**2).numpy(),
            "max": self.max.numpy(), "frac_positive": (self.n_positive / self.n).numpy(),
        })

    def token_means_frame(self, n_layers: int, token_strings: Sequence[str] | Mapping[int, str],
                          min_count: int, site: str = SITE_MLP) -> pl.DataFrame:
        """Table ``neuron_token_means`` (Eq. 1) for token types seen at least `min_count` times;
        `token_strings[token_id]` is a type's text. A row per (type, neuron), type-major: the
        types' columns cross-joined with the neurons' in Polars' native code, beside the means
        (building the T x N columns in numpy took 3-5x as long at GPT-2-small width)."""
        types, counts, sums = self.token_sums.by_token(min_count)
        layer, neuron = np.divmod(np.arange(sums.shape[1]), sums.shape[1] // n_layers)
        by_type = pl.DataFrame({
            "site": pl.Series([site] * len(types), dtype=pl.String), "token_id": types.numpy(),
            "token": pl.Series([token_strings[i] for i in types.tolist()], dtype=pl.String),
            "token_count": counts.numpy(),
        })
        by_neuron = pl.DataFrame({"layer": layer, "neuron": neuron})
        return (by_type.join(by_neuron, how="cross", maintain_order="left_right")
                .with_columns(mean_activation=(sums / counts[:, None]).flatten().numpy())
                .select("site", "layer", "neuron", "token_id", "token", "token_count",
                        "mean_activation"))

    def top_contexts_frame(self, n_layers: int, context_of: Callable[[int, int], tuple[str, str]],
                           site: str = SITE_MLP) -> pl.DataFrame:
        """Table ``neuron_top_contexts``; `context_of(sentence_id, position)` gives (token, context)."""
        k, n_neurons = self.top_values.shape
        d = n_neurons // n_layers
        sents = self.top_sentence.flatten().numpy()
        poss = self.top_position.flatten().numpy()
        keys, key_row = np.unique(sents * POSITION_LIMIT + poss, return_inverse=True)
        # neurons share top tokens: each (sentence, position) is looked up once
        pairs = [context_of(*divmod(int(key), POSITION_LIMIT)) for key in keys]
        j = np.tile(np.arange(n_neurons), k)
        return pl.DataFrame({
            "site": site, "layer": j // d, "neuron": j % d,
            "rank": repeat_each(np.arange(1, k + 1), n_neurons),
            "activation": self.top_values.flatten().double().numpy(),
            "sentence_id": sents, "position": poss,
            "token": pl.Series([p[0] for p in pairs], dtype=pl.String).gather(key_row),
            "context": pl.Series([p[1] for p in pairs], dtype=pl.String).gather(key_row),
        })


def repeat_each(values: np.ndarray, times: int) -> np.ndarray:
    """``np.repeat(values, times)`` for a 1-d array, as a broadcast copied out (np.repeat with
    a scalar count was ~18x slower on the 9 M rows of a GPT-2-small table)."""
    return np.broadcast_to(values[:, None], (len(values), times)).reshape(-1)


class TokenStrings(dict):
    """Readable text of token ids (byte-level tokens decoded, e.g. 'Ġthe' -> ' the'), decoded
    on first use: the tables need the types seen, a few thousand of GPT-2's 50,257."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    def __missing__(self, token_id: int) -> str:
        text = self[token_id] = self.tokenizer.decode([token_id])
        return text


def token_strings(tokenizer, vocab_size: int) -> list[str]:
    """Readable text of every token id (:class:`TokenStrings`)."""
    strings = TokenStrings(tokenizer)
    return [strings[i] for i in range(vocab_size)]


def context_lookup(tokenizer, sentences: Iterable[tuple[int, str]], wanted: set[int],
                   strings: Sequence[str] | Mapping[int, str], *,
                   window: int = 8) -> Callable[[int, int], tuple[str, str]]:
    """Build `context_of(sentence_id, position)` -> (token, context) for the `wanted` sentences.

    The context is up to `window` tokens before the position, the token in [[ ]], and two after.
    Only the wanted sentences are re-encoded, so memory is bounded by top-k, not the corpus.
    """
    encoded = {sid: encode(tokenizer, text) for sid, text in sentences if sid in wanted}

    def context_of(sid: int, pos: int) -> tuple[str, str]:
        ids = encoded[sid]
        before = "".join(strings[i] for i in ids[max(0, pos - window): pos])
        after = "".join(strings[i] for i in ids[pos + 1: pos + 3])
        return strings[ids[pos]], f"{before}[[{strings[ids[pos]]}]]{after}"

    return context_of


@dataclass
class ExtractionResult:
    """The three aggregate tables of all extracted sites, and each site's (layers, width)."""

    moments: pl.DataFrame
    token_means: pl.DataFrame
    top_contexts: pl.DataFrame
    shapes: dict[str, tuple[int, int]]


def shard_sentences(sentences: Sequence[tuple[int, str]], shard: int,
                    n_shards: int) -> Sequence[tuple[int, str]]:
    """Shard `shard` of `n_shards`: every n_shards-th sentence (interleaved, so shards get
    similar lengths and vocabularies)."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is not among the {n_shards} shards 0..{n_shards - 1}")
    return sentences[shard::n_shards]


def sentence_fingerprint(sentences: Sequence[tuple[int, str]]) -> str:
    """A digest of the ids and texts of `sentences`, to tell a shard's state from a stale one."""
    digest = hashlib.sha1()
    for sid, text in sentences:
        digest.update(f"{sid}\t{text}\n".encode())
    return digest.hexdigest()


def merge_shard_states(states: Sequence[pa.Table],
                       shards: Sequence[Sequence[tuple[int, str]]]) -> ActivationAggregates:
    """Merge the Arrow states of shards 0..S-1 of one site, refusing a state that was not
    aggregated over its shard's sentences (a stale shard of an earlier corpus)."""
    if len(states) != len(shards) or not states:
        raise ValueError(f"{len(states)} shard states for {len(shards)} shards")
    merged = None
    for i, (state, part) in enumerate(zip(states, shards)):
        if (state.schema.metadata or {}).get(b"sentences", b"").decode() != sentence_fingerprint(part):
            raise ValueError(f"shard {i}'s aggregates were computed on other sentences than shard "
                             f"{i} of the current corpus (stale); re-materialize the shard assets")
        agg = ActivationAggregates.from_arrow(state)
        merged = agg if merged is None else merged.merge(agg)
    return merged


def aggregate_sites(
    bridge,
    sentences: Sequence[tuple[int, str]],
    sites: Sequence[str] = (SITE_MLP,),
    batch_size: int = 32,
    *, top_k: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, ActivationAggregates]:
    """Stream `sentences` through `bridge` once and fold every site into its aggregates (empty
    aggregates for no sentences: a shard may be empty)."""
    if not sites or len(set(sites)) != len(sites):
        raise ValueError(f"extraction sites must be distinct names from {list(SITES)}, got {sites}")
    vocab = bridge.cfg.d_vocab
    aggs = {site: ActivationAggregates(math.prod(site_shape(bridge, site)), vocab, top_k)
            for site in sites}
    for batches in stream_activations(bridge, sentences, sites, batch_size, progress=progress):
        for site, batch in batches.items():
            aggs[site].update(batch)
    return aggs


def aggregate_tables(bridge, sentences: Sequence[tuple[int, str]],
                     aggs: dict[str, ActivationAggregates],
                     min_token_count: int = 5) -> ExtractionResult:
    """The three aggregate tables of the sites in `aggs`, aggregated over `sentences` (whose
    texts give the top-k contexts)."""
    strings = TokenStrings(bridge.tokenizer)
    wanted = set().union(*(agg.top_sentence.flatten().tolist() for agg in aggs.values()))
    context_of = context_lookup(bridge.tokenizer, sentences, wanted, strings)
    shapes = {site: site_shape(bridge, site) for site in aggs}
    frames = {name: [] for name in ("moments", "token_means", "top_contexts")}
    for site, agg in aggs.items():
        n_layers = shapes[site][0]
        frames["moments"].append(agg.moments_frame(n_layers, site))
        frames["token_means"].append(agg.token_means_frame(n_layers, strings, min_token_count, site))
        frames["top_contexts"].append(agg.top_contexts_frame(n_layers, context_of, site))
    return ExtractionResult(**{name: pl.concat(dfs) for name, dfs in frames.items()},
                            shapes=shapes)


def extract_aggregates(
    bridge,
    sentences: Sequence[tuple[int, str]],
    sites: Sequence[str] = (SITE_MLP,),
    batch_size: int = 32,
    *, min_token_count: int = 5,
    top_k: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> ExtractionResult:
    """Stream `sentences` through `bridge` once and return the aggregate tables of `sites`."""
    if not sentences:
        raise ValueError("corpus is empty: no sentences to extract activations from")
    aggs = aggregate_sites(bridge, sentences, sites, batch_size, top_k=top_k, progress=progress)
    return aggregate_tables(bridge, sentences, aggs, min_token_count)


def paired_activations(bridge_a, bridge_b, sentences: Sequence[tuple[int, str]],
                       site: str = SITE_MLP, *, batch_size: int = 32
                       ) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """A function returning a fresh iterator of (activations of A, activations of B) on the same
    real tokens of `sentences` (padding and special tokens excluded), for streaming
    correlations that take several passes. Raises ValueError, naming the sentence, when the two
    checkpoints tokenize a sentence differently."""
    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        stream_b = stream_activations(bridge_b, sentences, (site,), batch_size)
        for a, b in zip(stream_activations(bridge_a, sentences, (site,), batch_size), stream_b):
            if not torch.equal(a[site].token_ids, b[site].token_ids):
                sid = int(a[site].sentence_ids[0]) if len(a[site].sentence_ids) else -1
                raise ValueError(f"the two checkpoints tokenize the corpus differently (batch "
                                 f"starting at sentence {sid}); correlations need the same tokens")
            yield a[site].acts, b[site].acts
    return batches


def mlp_input_weight(bridge, layer: int) -> tuple[torch.nn.Parameter, bool]:
    """The checkpoint's own parameter behind the bridge's ``W_in[layer]`` (d_model x d_mlp), and
    whether it is stored transposed (``nn.Linear``, as in BERT; GPT-2's Conv1D is not). Editing
    it in place changes what the bridge computes."""
    target = bridge.W_in[layer].detach()
    for param in bridge.original_model.parameters():
        if param.shape == target.shape and torch.equal(param.detach(), target):
            return param, False
        if param.shape == target.T.shape and torch.equal(param.detach(), target.T):
            return param, True
    raise ValueError(f"no parameter of the checkpoint holds the MLP input weights of layer {layer}")
