"""Corpora: a seeded synthetic labelled corpus and a loader for folders of plain text files.

Both return the lake's ``corpus`` table: one row per word with ``sentence_id``, ``split``
(``train`` / ``heldout``), ``word_index``, ``word`` and the labels ``pos``, ``semantic_class``,
``suffix``, ``position`` (null for plain text, whose words carry no known labels).
"""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl

# Semantic classes of content words: (POS-style tag, words).
SEMANTIC_CLASSES: dict[str, tuple[str, list[str]]] = {
    "month": ("NNP", ["January", "February", "March", "April", "May", "June", "July", "August",
                      "September", "October", "November", "December"]),
    "weekday": ("NNP", ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]),
    "city": ("NNP", ["Paris", "London", "Berlin", "Madrid", "Rome", "Vienna", "Prague", "Dublin",
                     "Lisbon", "Oslo", "Cairo", "Tokyo"]),
    "country": ("NNP", ["France", "Germany", "Spain", "Italy", "Austria", "Ireland", "Portugal",
                        "Norway", "Egypt", "Japan", "Brazil", "Canada"]),
    "first_name": ("NNP", ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Henry",
                           "Irene", "Jack", "Laura", "Oscar"]),
    "surname": ("NNP", ["Smith", "Jones", "Brown", "Taylor", "Wilson", "Evans", "Thomas", "Walker",
                        "Wright", "Harris", "Clarke", "Turner"]),
    "number": ("CD", ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                      "twelve", "twenty", "forty"]),
    "year": ("CD", ["1987", "1990", "1994", "1999", "2001", "2005", "2010", "2013", "2016", "2019",
                    "2021", "2024"]),
    "colour": ("JJ", ["red", "blue", "green", "yellow", "purple", "orange", "black", "white",
                      "grey", "brown", "pink", "golden"]),
    "animal": ("NN", ["dog", "cat", "horse", "rabbit", "tiger", "lion", "eagle", "shark",
                      "turtle", "wolf", "monkey", "parrot"]),
    "food": ("NN", ["bread", "cheese", "pasta", "rice", "soup", "salad", "pizza", "cake",
                    "butter", "noodles", "pie", "sandwich"]),
    "drink": ("NN", ["tea", "coffee", "juice", "milk", "water", "wine", "beer", "lemonade",
                     "cocoa", "cider", "soda", "espresso"]),
    "profession": ("NN", ["doctor", "teacher", "lawyer", "farmer", "baker", "pilot", "nurse",
                          "engineer", "painter", "writer", "singer", "plumber"]),
    "instrument": ("NN", ["piano", "guitar", "violin", "drum", "flute", "trumpet", "cello",
                          "harp", "organ", "banjo", "clarinet", "saxophone"]),
    "sport": ("NN", ["football", "tennis", "golf", "hockey", "cricket", "rugby", "boxing",
                     "cycling", "rowing", "skiing", "swimming", "baseball"]),
    "vehicle": ("NN", ["car", "bus", "train", "bicycle", "truck", "boat", "plane", "tram",
                       "scooter", "ferry", "taxi", "van"]),
    "body_part": ("NN", ["hand", "foot", "head", "knee", "shoulder", "elbow", "finger", "ankle",
                         "neck", "wrist", "chin", "ear"]),
    "emotion": ("JJ", ["happy", "sad", "angry", "calm", "nervous", "proud", "tired", "excited",
                       "bored", "curious", "anxious", "cheerful"]),
    "clothing": ("NN", ["shirt", "jacket", "hat", "scarf", "coat", "dress", "sweater", "boots",
                        "gloves", "skirt", "tie", "socks"]),
    "furniture": ("NN", ["table", "chair", "sofa", "desk", "bed", "shelf", "cabinet", "stool",
                         "bench", "wardrobe", "dresser", "couch"]),
    "language": ("NNP", ["English", "French", "German", "Spanish", "Italian", "Dutch", "Polish",
                         "Greek", "Swedish", "Arabic", "Hindi", "Korean"]),
    "metal": ("NN", ["iron", "copper", "silver", "gold", "steel", "zinc", "tin", "bronze",
                     "nickel", "lead", "brass", "cobalt"]),
    "verb_past": ("VBD", ["visited", "painted", "bought", "liked", "carried", "cooked", "found",
                          "sold", "cleaned", "watched", "wanted", "borrowed"]),
}

# Function words and punctuation: (POS-style tag, semantic class).
FUNCTION_WORDS: dict[str, tuple[str, str]] = {
    "the": ("DT", "function"), "The": ("DT", "function"), "a": ("DT", "function"),
    "in": ("IN", "function"), "In": ("IN", "function"), "on": ("IN", "function"),
    "On": ("IN", "function"), "to": ("TO", "function"), "from": ("IN", "function"),
    "with": ("IN", "function"), "and": ("CC", "function"), "of": ("IN", "function"),
    "plays": ("VBZ", "function"), "speaks": ("VBZ", "function"), "likes": ("VBZ", "function"),
    "moved": ("VBD", "function"), "wore": ("VBD", "function"), "drank": ("VBD", "function"),
    "was": ("VBD", "function"), "is": ("VBZ", "function"), "Is": ("VBZ", "function"), "felt": ("VBD", "function"),
    "hurt": ("VBD", "function"), "his": ("PRP$", "function"), "her": ("PRP$", "function"), "Her": ("PRP$", "function"),
    "made": ("VBN", "function"), "took": ("VBD", "function"), "near": ("IN", "function"),
    "every": ("DT", "function"), "team": ("NN", "function"),
    "ate": ("VBD", "function"), "watched": ("VBD", "function"),
    ".": (".", "punct"), ",": (",", "punct"), "!": (".", "punct"), "?": (".", "punct"),
}

# Sentence templates: literal words, or {class} slots filled from SEMANTIC_CLASSES.
TEMPLATES: list[str] = [
    "{first_name} {surname} moved to {city} in {month} {year} .",
    "The {profession} from {country} likes {food} and {drink} .",
    "On {weekday} the {colour} {animal} ate {number} {food} .",
    "{first_name} plays the {instrument} and {sport} every {weekday} .",
    "In {year} , {first_name} {verb_past} a {colour} {vehicle} in {city} .",
    "The {animal} was {emotion} on {weekday} , {month} {number} .",
    "{first_name} speaks {language} with the {profession} from {country} .",
    "The {profession} wore a {colour} {clothing} to {city} .",
    "{first_name} hurt his {body_part} near the {furniture} !",
    "The {furniture} is made of {metal} and {metal} .",
    "{first_name} {surname} drank {drink} in {month} with {number} {profession} .",
    "Is the {vehicle} from {country} {colour} ?",
    "The {emotion} {profession} took the {vehicle} to {city} on {weekday} .",
    "{first_name} {verb_past} the {instrument} of {metal} in {year} .",
    "Her {clothing} is {colour} , and her {animal} is {emotion} .",
    "The {sport} team from {city} {verb_past} {number} {food} .",
    "{first_name} felt {emotion} in {country} in {month} .",
]


def word_suffix(word: str, n: int = 2) -> str:
    """The suffix label of a word: its last `n` characters, lower-cased (the whole word if shorter)."""
    return word[-n:].lower()


def position_label(index: int, length: int) -> str:
    """Sentence-position label: 'begin' for the first word, 'end' for the last, else 'middle'."""
    if index == 0:
        return "begin"
    return "end" if index == length - 1 else "middle"


def _split_for(rng: random.Random, heldout_fraction: float) -> str:
    return "heldout" if rng.random() < heldout_fraction else "train"


def synthetic_corpus(n_sentences: int, seed: int = 0, heldout_fraction: float = 0.1) -> pl.DataFrame:
    """Generate `n_sentences` labelled sentences from TEMPLATES; the same seed gives the same corpus."""
    if n_sentences <= 0:
        raise ValueError(f"corpus: n_sentences must be positive, got {n_sentences}")
    rng = random.Random(seed)
    rows: list[tuple] = []
    for sid in range(n_sentences):
        template = rng.choice(TEMPLATES).split()
        split = _split_for(rng, heldout_fraction)
        for i, slot in enumerate(template):
            if slot.startswith("{"):
                cls = slot[1:-1]
                pos, words = SEMANTIC_CLASSES[cls]
                word = rng.choice(words)
            else:
                word = slot
                pos, cls = FUNCTION_WORDS[word]
            rows.append((sid, split, i, word, pos, cls, word_suffix(word),
                         position_label(i, len(template))))
    return pl.DataFrame(rows, schema=["sentence_id", "split", "word_index", "word", "pos",
                                      "semantic_class", "suffix", "position"], orient="row")


def text_corpus(path: str | Path, per: str = "line", seed: int = 0,
                heldout_fraction: float = 0.1) -> pl.DataFrame:
    """Load a folder of ``.txt`` files (sorted by name): one document per file or per line.

    Words are whitespace-separated and carry no labels. Raises ValueError naming the folder or
    file when it is missing, holds no ``.txt`` file, a file is not UTF-8 text, or no text is left.
    """
    folder = Path(path)
    if per not in ("line", "file"):
        raise ValueError(f"corpus: 'per' must be 'line' or 'file', got {per!r}")
    if not folder.is_dir():
        raise ValueError(f"corpus path {str(folder)!r} is not a folder of .txt files")
    files = sorted(folder.glob("*.txt"))
    if not files:
        raise ValueError(f"corpus folder {str(folder)!r} holds no .txt file")
    documents: list[str] = []
    for f in files:
        raw = f.read_bytes()
        if b"\x00" in raw:
            raise ValueError(f"corpus file {str(f)!r} is binary (it contains NUL bytes), not text")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"corpus file {str(f)!r} is not UTF-8 text: {e}") from None
        docs = text.splitlines() if per == "line" else [text]
        documents.extend(d for d in (" ".join(doc.split()) for doc in docs) if d)
    if not documents:
        raise ValueError(f"corpus folder {str(folder)!r} is empty: its .txt files hold no text")
    rng = random.Random(seed)
    rows = []
    for sid, doc in enumerate(documents):
        split = _split_for(rng, heldout_fraction)
        words = doc.split()
        rows.extend((sid, split, i, w, None, None, None, None) for i, w in enumerate(words))
    return pl.DataFrame(rows, schema={"sentence_id": pl.Int64, "split": pl.Utf8,
                                      "word_index": pl.Int64, "word": pl.Utf8, "pos": pl.Utf8,
                                      "semantic_class": pl.Utf8, "suffix": pl.Utf8,
                                      "position": pl.Utf8}, orient="row")


def sentences(corpus: pl.DataFrame, split: str | None = None) -> list[tuple[int, str]]:
    """(sentence_id, text) pairs of a corpus table, in sentence order; words joined by spaces."""
    df = corpus if split is None else corpus.filter(pl.col("split") == split)
    grouped = (df.sort(["sentence_id", "word_index"])
                 .group_by("sentence_id", maintain_order=True)
                 .agg(pl.col("word").str.join(" ")))
    return list(zip(grouped["sentence_id"].to_list(), grouped["word"].to_list()))
