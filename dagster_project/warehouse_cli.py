"""The commands that read the published warehouse: `nwh query`, `nwh neuron`, `nwh report` and
`nwh docs` (light: no Dagster import)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def _warehouse(home: Path) -> Path:
    path = home / "warehouse.duckdb"
    if not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}: run `nwh demo` or `nwh run` first")
    return path


def query(home: Path, sql: str, fmt: str) -> str:
    """Run `sql` on a read-only connection to the warehouse and format the result."""
    import duckdb
    import polars as pl

    with duckdb.connect(str(_warehouse(home)), read_only=True) as con:
        df = con.sql(sql).pl()
    if fmt == "csv":
        return df.write_csv()
    if fmt == "json":
        return df.write_json()
    with pl.Config(tbl_rows=200, tbl_cols=50, fmt_str_lengths=80, tbl_width_chars=200,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        return str(df)


def neuron(home: Path, model: str, layer: int, index: int, site: str,
           checkpoint: str | None) -> str:
    """The neuron's row of dim_neuron_profile (the newest checkpoint unless told), one field a
    line."""
    sql = ("select * from dim_neuron_profile where model = $m and layer = $l and neuron = $n "
           "and site = $s" + (" and checkpoint = $c" if checkpoint else "")
           + " order by try_cast(regexp_extract(checkpoint, '(\\d+)$', 1) as bigint) desc "
             "nulls last limit 1")
    import duckdb

    params = {"m": model, "l": layer, "n": index, "s": site} | (
        {"c": checkpoint} if checkpoint else {})
    with duckdb.connect(str(_warehouse(home)), read_only=True) as con:
        cursor = con.execute(sql, params)
        names = [d[0] for d in cursor.description]
        found = cursor.fetchone()
    if found is None:
        raise LookupError(f"no neuron model={model!r} site={site!r} layer={layer} neuron={index}"
                          + (f" checkpoint={checkpoint!r}" if checkpoint else "")
                          + " in dim_neuron_profile")
    width = max(len(n) for n in names)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in zip(names, found))


def report(home: Path) -> str:
    """The path of the neuron pages' index (the neuron_pages asset writes it)."""
    index = home / "reports" / "neurons" / "index.html"
    if not index.exists():
        raise FileNotFoundError(f"no neuron pages at {index}: run `nwh demo` or `nwh run` first")
    return str(index)


def docs(home: Path, port: int) -> int:
    """Generate dbt's docs site (lineage from the lake tables to every mart) on the published
    warehouse and serve it on 127.0.0.1:`port`."""
    from dagster_project.defs.warehouse import DBT_DIR, DBT_EXECUTABLE, dbt_env
    from dagster_project.home import default_lake

    warehouse = _warehouse(home)
    env = {**os.environ, **dbt_env(default_lake() or home / "lake", warehouse)}
    where = ["--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR)]
    subprocess.run([DBT_EXECUTABLE, "docs", "generate", *where], env=env, check=True)
    print(f"dbt docs on http://127.0.0.1:{port} (Ctrl-C stops it)", flush=True)
    return subprocess.call([DBT_EXECUTABLE, "docs", "serve", "--host", "127.0.0.1", "--port",
                            str(port), "--no-browser", *where], env=env)
