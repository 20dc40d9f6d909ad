"""Shared fixtures: a tiny demo model trained once per session, and a study file that uses it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import dagster as dg  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from dagster_project.runner import run_study  # noqa: E402
from extract.corpus import sentences, synthetic_corpus  # noqa: E402
from training.demo_lm import DemoModelConfig, train_demo_model  # noqa: E402

TINY = DemoModelConfig(n_layer=2, d_model=32, d_mlp=64, n_head=2, vocab_size=300, steps=120,
                       batch_size=16, lr=5e-3, warmup=10, save_steps=(40,), seed=0)
TINY_SENTENCES = 400


@pytest.fixture(scope="session")
def tiny_corpus():
    return synthetic_corpus(TINY_SENTENCES, seed=0, heldout_fraction=0.2)


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, tiny_corpus) -> Path:
    """A folder with checkpoint-40 and checkpoint-120 of a 2-layer, d_mlp 64 GPT-2."""
    out = tmp_path_factory.mktemp("checkpoints") / "tiny"
    train_demo_model([t for _, t in sentences(tiny_corpus, "train")],
                     [t for _, t in sentences(tiny_corpus, "heldout")], out, TINY)
    return out


@pytest.fixture(scope="session")
def tiny_seed_checkpoints(tmp_path_factory, tiny_corpus) -> list[Path]:
    """Folders tiny-seed1 and tiny-seed2: the tiny model trained from two more seeds on the same
    data (the universal-neurons study compares them with the seed-0 model)."""
    from dataclasses import replace

    root = tmp_path_factory.mktemp("seeds")
    for seed in (1, 2):
        train_demo_model([t for _, t in sentences(tiny_corpus, "train")],
                         [t for _, t in sentences(tiny_corpus, "heldout")], root / f"tiny-seed{seed}",
                         replace(TINY, seed=seed, save_steps=()))
    return [root / "tiny-seed1", root / "tiny-seed2"]


def write_study(folder: Path, checkpoints: Path | None, **overrides) -> Path:
    study = {
        "model": "tiny",
        "checkpoints": str(checkpoints) if checkpoints else None,
        "corpus": {"kind": "synthetic", "n_sentences": TINY_SENTENCES, "seed": 0,
                   "heldout_fraction": 0.2},
        "extraction": {"batch_size": 64, "min_token_count": 3, "top_k": 5},
        "clustering": {"methods": ["kmeans", "random"], "k": 4, "filter_percentiles": [0, 50, 90],
                       "seed": 0},
        "activation_clusters": {"ks": [4, 8], "min_token_count": 3, "ablation_max_sentences": 8,
                                "ablation_max_clusters": 3},
        # the tiny model's raw layer outputs need a larger step than the paper's 0.001 to be
        # fitted in 10 epochs of this small corpus
        "probing": {"learning_rate": 0.01},
    }
    study.update(overrides)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in study.items() if v is not None}))
    return path


def save_tiny_bert(out: Path, words, seed: int = 0) -> Path:
    """A random 2-layer BertForMaskedLM (d_model 32, d_mlp 64) with a WordPiece tokenizer whose
    vocabulary is the lower-cased `words`, saved as a checkpoint folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + sorted({w.lower() for w in words})
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.decoder = decoders.WordPiece()
    tokenizer = BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                  cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    torch.manual_seed(seed)
    model = BertForMaskedLM(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=64,
                                       max_position_embeddings=64))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory, tiny_corpus) -> Path:
    """A folder holding checkpoint-1 of a random tiny BERT over the synthetic corpus's words."""
    root = tmp_path_factory.mktemp("bert")
    save_tiny_bert(root / "checkpoint-1", tiny_corpus["word"].unique().to_list())
    return root


@pytest.fixture
def tiny_study_file(tmp_path, tiny_checkpoints) -> Path:
    return write_study(tmp_path, tiny_checkpoints)


def run_tiny_study(home, study_file, checkpoint=None, instance=None):
    """Materialize a study (on an ephemeral Dagster instance unless given one)."""
    return run_study(home, str(study_file), checkpoint,
                     instance=instance or dg.DagsterInstance.ephemeral())


@pytest.fixture(scope="session")
def built(tmp_path_factory, tiny_checkpoints, tiny_seed_checkpoints):
    """(home, study file, outcome) of the tiny study, with universality against two more seeds,
    materialized once for the session."""
    home = tmp_path_factory.mktemp("home")
    study_file = write_study(tmp_path_factory.mktemp("study"), tiny_checkpoints,
                             universality={"other_models": [str(p) for p in tiny_seed_checkpoints],
                                           "max_sentences": 200})
    # a persistent instance under <home>/dagster, as `nwh run` keeps, for the sensor's tests
    (home / "dagster").mkdir()
    instance = dg.DagsterInstance.local_temp(str(home / "dagster"))
    return home, study_file, run_tiny_study(home, study_file, instance=instance)


HOLD_LOCK = """
import sys, time
from pathlib import Path
from dagster_project.home import home_lock
home, seconds, name = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]


def someone_waits(inode):
    # Linux lists a process blocked in flock on the file as "-> FLOCK ... <dev>:<inode> 0 EOF"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return False
    return any("->" in line and f":{inode} " in line for line in lines)


with home_lock(home, name, "holder"):
    (home / "held").write_text("1")
    inode, deadline = (home / name).stat().st_ino, time.time() + seconds
    while time.time() < deadline and not someone_waits(inode):
        time.sleep(0.05)
    (home / "releasing").write_text(repr(time.time()))
"""


def lock_holder(home: Path, lock: str = "run.lock", at_most: float = 120) -> subprocess.Popen:
    """A process holding ``<home>/<lock>`` (:func:`dagster_project.home.home_lock`) until another
    process blocks waiting for it (seen in Linux's /proc/locks), or `at_most` seconds; returned
    once it holds the lock. It writes <home>/releasing (the time) as it lets go. Waiting for the
    waiter, not for a fixed time, keeps a slow machine from reaching the lock after it is free."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(home), str(at_most), lock])
    deadline = time.time() + 60
    while not (home / "held").exists():
        assert time.time() < deadline and proc.poll() is None, "the holder never took the lock"
        time.sleep(0.05)
    return proc
