"""Word-level probing data: labels (synthetic corpus or CoNLL-style files) and word features.

Features of a word are the activations of all neurons of all layers at the word's subword tokens,
concatenated layer by layer. The paper represents a word by its last subword (the default);
``first`` and ``mean`` (the mean over the word's subwords) are selectable. Words are aligned to
tokens through the fast tokenizer's character offsets; a word with no token of its own, or a
token spanning two words, is a mismatch reported with its sentence number.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import polars as pl
import torch

from extract.activations import SITE_MLP, encode, frame_ids, site_shape, stream_activations

REPRESENTATIVES = ("last", "first", "mean")
SYNTHETIC_TASKS = ("pos", "semantic_class", "suffix", "position")


class ProbeDataError(ValueError):
    """Labels or words that cannot be used for probing; the message names the input."""


def read_conll(path: str | Path, tasks: Sequence[str]) -> pl.DataFrame:
    """Read a CoNLL-style file: ``word<TAB>label[<TAB>label...]`` per line, a blank line between
    sentences; label column i is task ``tasks[i]``. Returns sentence_id, word_index, word, line
    and one column per task. Errors name the file and line."""
    file = Path(path)
    if not file.is_file():
        raise ProbeDataError(f"labels file {str(file)!r} does not exist")
    raw = file.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProbeDataError(f"labels file {str(file)!r} is not UTF-8 text: {e}") from None
    rows, sid, index = [], 0, 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            if index:
                sid, index = sid + 1, 0
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 1 + len(tasks) or not fields[0].strip() or not all(fields[1:]):
            raise ProbeDataError(
                f"labels file {str(file)!r}, line {number}: expected 'word<TAB>label' with "
                f"{len(tasks)} label column(s) for tasks {list(tasks)}, got {line!r}")
        rows.append((sid, index, fields[0].strip(), number, *fields[1:]))
        index += 1
    if not rows:
        raise ProbeDataError(f"labels file {str(file)!r} holds no labelled words")
    return pl.DataFrame(rows, orient="row", schema={
        "sentence_id": pl.Int64, "word_index": pl.Int64, "word": pl.Utf8, "line": pl.Int64,
        **{t: pl.Utf8 for t in tasks}})


def split_sentences(sentence_ids: Sequence[int], seed: int, dev_fraction: float,
                    test_fraction: float) -> dict[int, str]:
    """Seeded train / dev / test split by sentence: shuffle the distinct ids, cut the fractions."""
    ids = sorted(set(int(s) for s in sentence_ids))
    random.Random(seed).shuffle(ids)
    n_test = max(1, round(test_fraction * len(ids)))
    n_dev = max(1, round(dev_fraction * len(ids)))
    if n_test + n_dev >= len(ids):
        raise ProbeDataError(f"probing: {len(ids)} sentences are too few for a train, dev and "
                             "test split; use more sentences")
    return {s: ("test" if i < n_test else "dev" if i < n_test + n_dev else "train")
            for i, s in enumerate(ids)}


def labelled_words(words: pl.DataFrame, tasks: Sequence[str], seed: int, dev_fraction: float,
                 *, test_fraction: float, max_sentences: int | None = None) -> pl.DataFrame:
    """Table ``probe_labels``: sentence_id, word_index, word, split, task, label (long format).

    `words` has sentence_id, word_index, word and one label column per task (the corpus table or
    :func:`read_conll`). At most `max_sentences` sentences are kept (a seeded sample); words
    with a null label are dropped for that task.
    """
    missing = [t for t in tasks if t not in words.columns]
    if missing:
        raise ProbeDataError(f"probing: tasks {missing} have no label column; available: "
                             f"{[c for c in words.columns if c not in ('sentence_id', 'word_index', 'word', 'split', 'line')]}")
    ids = sorted(words["sentence_id"].unique().to_list())
    if max_sentences is not None and len(ids) > max_sentences:
        ids = sorted(random.Random(seed).sample(ids, max_sentences))
        words = words.filter(pl.col("sentence_id").is_in(ids))
    split = split_sentences(ids, seed, dev_fraction, test_fraction)
    base = words.with_columns(pl.col("sentence_id").replace_strict(split).alias("split"))
    long = pl.concat([
        base.select("sentence_id", "word_index", "word", "split", pl.lit(t).alias("task"),
                    pl.col(t).alias("label")).filter(pl.col("label").is_not_null())
        for t in tasks])
    if long.is_empty():
        raise ProbeDataError(f"probing: no word has a label for tasks {list(tasks)}; a text "
                             "corpus has no labels, give a CoNLL labels file")
    return long.sort(["task", "sentence_id", "word_index"])


def word_token_positions(tokenizer, words: Sequence[str], sentence: str) -> list[list[int]]:
    """Positions (in :func:`extract.activations.encode`'s sequence) of each word's tokens.

    The words are joined by single spaces; tokens are assigned to words by character offsets.
    Raises ProbeDataError (with `sentence`, e.g. 'sentence 3') on a token spanning two words or
    a word without a token.
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ProbeDataError("probing needs a fast tokenizer (tokenizer.json) to align words to "
                             "subword tokens by character offsets")
    text = " ".join(words)
    char_word = np.full(len(text), -1, dtype=np.int64)
    start = 0
    for i, w in enumerate(words):
        char_word[start: start + len(w)] = i
        start += len(w) + 1
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    shift = 1 if frame_ids(tokenizer)[0] is not None else 0
    if enc["input_ids"] != encode(tokenizer, text)[shift: shift + len(enc["input_ids"])]:
        raise ProbeDataError(f"{sentence}: tokenizing with offsets gave other tokens than "
                             "the model's encoding")
    positions: list[list[int]] = [[] for _ in words]
    for t, (a, b) in enumerate(enc["offset_mapping"]):
        owners = set(char_word[a:b].tolist()) - {-1}
        if len(owners) > 1:
            names = [words[o] for o in sorted(owners)]
            raise ProbeDataError(f"{sentence}: token {text[a:b]!r} spans the words {names}; "
                                 "the tokenizer does not split at the file's word boundaries")
        if owners:
            positions[owners.pop()].append(t + shift)
    for i, p in enumerate(positions):
        if not p:
            raise ProbeDataError(f"{sentence}: word {i + 1} {words[i]!r} has no token of its own "
                                 "(the tokenizer drops or merges it)")
    return positions


def _pick(positions: list[int], representative: str) -> list[int]:
    return {"last": positions[-1:], "first": positions[:1], "mean": positions}[representative]


def word_features(bridge, words: pl.DataFrame, representative: str = "last",
                  batch_size: int = 32, *, site: str = SITE_MLP,
                  sentence_label: Callable[[int], str] | None = None,
                  progress: Callable[[int, int], None] | None = None
                  ) -> tuple[pl.DataFrame, torch.Tensor]:
    """Activations of `site` (all its layers, concatenated: for ``resid`` the embedding output
    and every layer's output, 13 x 768 for BERT-base as in Durrani et al.; for ``mlp`` every MLP
    post-activation) of each word of `words` (sentence_id, word_index, word), represented by its
    last / first / mean subword token.

    Returns (keys, features): keys has sentence_id, word_index in row order; features is
    (n_words, layers * width) float32. A sentence longer than the model's context, or a word
    the tokenizer cannot align, raises ProbeDataError naming the sentence.
    """
    if representative not in REPRESENTATIVES:
        raise ProbeDataError(f"probing: representative must be one of {list(REPRESENTATIVES)}, "
                             f"got {representative!r}")
    label = sentence_label or (lambda sid: f"sentence {sid}")
    keys = words.select("sentence_id", "word_index").sort(["sentence_id", "word_index"])
    grouped = (words.sort(["sentence_id", "word_index"])
                    .group_by("sentence_id", maintain_order=True).agg("word"))
    tok, n_ctx = bridge.tokenizer, bridge.cfg.n_ctx
    row_of: dict[tuple[int, int], list[int]] = {}
    counts = np.zeros(keys.height, dtype=np.float32)
    row = 0
    sentences = []
    for sid, ws in zip(grouped["sentence_id"].to_list(), grouped["word"].to_list()):
        positions = word_token_positions(tok, ws, label(sid))
        if positions[-1][-1] >= n_ctx:
            raise ProbeDataError(f"{label(sid)} has more tokens than the model's context of "
                                 f"{n_ctx}; shorten it")
        for p in positions:
            for q in _pick(p, representative):
                row_of.setdefault((sid, q), []).append(row)
            counts[row] = len(_pick(p, representative))
            row += 1
        sentences.append((sid, " ".join(ws)))
    n_layers, width = site_shape(bridge, site)
    features = torch.zeros((keys.height, n_layers * width), dtype=torch.float32)
    for batches in stream_activations(bridge, sentences, (site,), batch_size, progress=progress):
        batch = batches[site]
        src, dst = [], []
        for m, (s, p) in enumerate(zip(batch.sentence_ids.tolist(), batch.positions.tolist())):
            for r in row_of.get((s, p), ()):
                src.append(m)
                dst.append(r)
        features.index_add_(0, torch.tensor(dst, dtype=torch.long), batch.acts[src])
    features /= torch.from_numpy(counts)[:, None]
    return keys, features


def token_classes(tokenizer, corpus: pl.DataFrame, label: str = "semantic_class") -> pl.DataFrame:
    """How often each token id occurs inside words of each `label` value in `corpus` (a corpus
    table), tokenized as the model sees the sentence: table ``token_classes`` (token_id,
    semantic_class, n_occurrences). Empty when the corpus carries no such labels."""
    labelled = corpus.filter(pl.col(label).is_not_null()).sort(["sentence_id", "word_index"])
    grouped = labelled.group_by("sentence_id", maintain_order=True).agg("word", label)
    counts: dict[tuple[int, str], int] = {}
    for sid, words, classes in grouped.iter_rows():
        ids = encode(tokenizer, " ".join(words))
        for positions, cls in zip(word_token_positions(tokenizer, words, f"sentence {sid}"),
                                  classes):
            for p in positions:
                counts[(ids[p], cls)] = counts.get((ids[p], cls), 0) + 1
    return pl.DataFrame([(t, c, n) for (t, c), n in sorted(counts.items())],
                        schema={"token_id": pl.Int64, "semantic_class": pl.Utf8,
                                "n_occurrences": pl.Int64}, orient="row")


def tokens_by_class(classes: pl.DataFrame) -> dict[str, set[int]]:
    """Token ids of each semantic class, each token under the class it occurs in most often
    (ties: the alphabetically first), from a ``token_classes`` frame."""
    majority = (classes.sort(["token_id", "n_occurrences", "semantic_class"],
                             descending=[False, True, False])
                .unique("token_id", keep="first"))
    return {cls: set(group["token_id"].to_list())
            for (cls,), group in majority.group_by("semantic_class")}
