"""Explanations from outside the project: a flat table file (CSV or Parquet)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

TABLE_COLUMNS = {"layer": pl.Int64, "neuron": pl.Int64, "explanation": pl.Utf8, "score": pl.Float64}


def read_explanation_table(path: str | Path) -> pl.DataFrame:
    """Read layer, neuron, explanation, score from a CSV or Parquet file, checking names and types.

    Raises ValueError naming the file and the problem: missing file, unknown format, missing
    column, a value of the wrong type, a null explanation, or a duplicated (layer, neuron).
    """
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"explanations table {str(file)!r} does not exist")
    suffix = file.suffix.lower()
    try:
        if suffix == ".csv":
            df = pl.read_csv(file, infer_schema_length=None)
        elif suffix == ".parquet":
            df = pl.read_parquet(file)
        else:
            raise ValueError(f"explanations table {str(file)!r}: use a .csv or .parquet file")
    except (pl.exceptions.PolarsError, OSError) as e:
        raise ValueError(f"explanations table {str(file)!r} could not be read: {e}") from None
    missing = [c for c in TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"explanations table {str(file)!r} lacks column(s) {missing}; "
                         f"it needs {list(TABLE_COLUMNS)}")
    try:
        df = df.select([pl.col(c).cast(t, strict=True) for c, t in TABLE_COLUMNS.items()])
    except pl.exceptions.PolarsError as e:
        raise ValueError(f"explanations table {str(file)!r} has a value of the wrong type: "
                         f"{e}".splitlines()[0]) from None
    if df["explanation"].null_count() or df["layer"].null_count() or df["neuron"].null_count():
        raise ValueError(f"explanations table {str(file)!r} has null layer, neuron or explanation")
    if (df["layer"] < 0).any() or (df["neuron"] < 0).any():
        raise ValueError(f"explanations table {str(file)!r} has a negative layer or neuron")
    dup = df.filter(df.select("layer", "neuron").is_duplicated())
    if len(dup):
        raise ValueError(f"explanations table {str(file)!r} repeats (layer, neuron) "
                         f"{dup.row(0)[:2]}")
    return df.sort(["layer", "neuron"])
