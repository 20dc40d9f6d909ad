"""Neuron pages: a static site of notable neurons built from the warehouse alone (SQL on the marts),
so a page and an analyst's query never disagree. ``index.html`` lists the notable neurons of every
model checkpoint (most universal, most salient per label, best explained, largest ablation
effect); each listed neuron gets a page with its top contexts (the activating token shaded by its
activation), a histogram of its mean activation per token, its explanation and every study's
verdict, linking to the listed neurons that share its clusters."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import duckdb

_KEYS = ("model", "checkpoint", "site", "layer", "neuron")

_STYLE = """body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f4f4}.ctx{font-family:monospace}
mark{padding:0 2px;border-radius:2px}h2{margin-top:1.5em}"""

# the largest ablation drop among the neuron's activation clusters (null when none was ablated)
_MAX_DROP = "list_max([c.cluster_drop_pct for c in activation_clusters])"

# title: (condition, order) of each notable list of a checkpoint
_LISTS = {
    "Most universal": ("is_universal is not null", "universality_excess desc"),
    "Best explained": ("score is not null", "score desc"),
    "Largest ablation effect": (f"{_MAX_DROP} is not null", f"{_MAX_DROP} desc"),
}


def page_name(row: dict) -> str:
    """The file of a neuron's page, relative to the site's root."""
    return f"{row['model']}/{row['checkpoint']}/{row['site']}-L{row['layer']}-N{row['neuron']}.html"


def _page(title: str, body: str, depth: int = 0) -> str:
    up = "../" * depth
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><p><a href='{up}index.html'>All notable "
            f"neurons</a></p>{body}</body></html>")


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


def notable_neurons(con, model: str, checkpoint: str, per_list: int) -> dict[str, list[dict]]:
    """The notable lists of one checkpoint, each ordered, from dim_neuron_profile."""
    lists = {}
    for title, (where, order) in _LISTS.items():
        lists[title] = _rows(con, f"select * from dim_neuron_profile where model = ? and "
                                  f"checkpoint = ? and {where} order by {order}, site, layer, "
                                  f"neuron limit {per_list}", [model, checkpoint])
    labels = _rows(con, "select distinct p.task as task, unnest(p.salient_labels) as label from "
                        "(select unnest(probing) as p from dim_neuron_profile where model = ? "
                        "and checkpoint = ?) order by task, label", [model, checkpoint])
    for item in labels:
        lists[f"Most salient for {item['task']} {item['label']}"] = _rows(
            con, "select * from (select *, unnest(probing) as p from dim_neuron_profile "
                 "where model = ? and checkpoint = ?) where p.task = ? and "
                 "list_contains(p.salient_labels, ?) order by p.rank limit ?",
            [model, checkpoint, item["task"], item["label"], per_list])
    return lists


def _shaded(context: str, activation: float, top: float) -> str:
    """The context with its activating token (between [[ ]]) in a mark shaded by activation/top."""
    before, _, rest = context.partition("[[")
    token, _, after = rest.partition("]]")
    alpha = max(0.1, min(1.0, activation / top)) if top > 0 else 0.1
    return (f"{html.escape(before)}<mark style='background:rgba(255,140,0,{alpha:.2f})' "
            f"title='{activation:.3f}'>{html.escape(token)}</mark>{html.escape(after)}")


def _histogram(values: list[float], bins: int = 20) -> str:
    """An inline SVG histogram of `values` (no image files, no plotting library per page)."""
    if not values:
        return "<p>no token statistics</p>"
    low, high = min(values), max(values)
    width = (high - low) / bins or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - low) / width))] += 1
    peak = max(counts)
    bars = "".join(f"<rect x='{20 * i}' y='{100 - 100 * c / peak:.1f}' width='18' "
                   f"height='{100 * c / peak:.1f}' fill='#4a7ab5'><title>{low + i * width:.3f}"
                   f"..{low + (i + 1) * width:.3f}: {c}</title></rect>"
                   for i, c in enumerate(counts))
    return (f"<svg width='{20 * bins}' height='120' role='img' aria-label='histogram'>{bars}"
            f"<text x='0' y='115' font-size='10'>{low:.3f}</text><text x='{20 * bins - 40}' "
            f"y='115' font-size='10'>{high:.3f}</text></svg>")


def _table(rows: list[dict], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in columns)
                   + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _neuron_page(con, row: dict, clusters: ListedClusters, depth: int) -> str:
    key = [row[k] for k in _KEYS]
    contexts = row["top_contexts"]
    top = max((c["activation"] for c in contexts), default=0.0)
    means = [r["mean_activation"] for r in _rows(
        con, "select mean_activation from stg_neuron_token_means where model = ? and "
             "checkpoint = ? and site = ? and layer = ? and neuron = ?", key)]
    title = f"{row['model']} {row['checkpoint']} {row['site']} layer {row['layer']} neuron {row['neuron']}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p class='explanation'><b>Explanation:</b> {html.escape(_fmt(row['explanation']))} "
             f"(score {_fmt(row['score'])})</p>",
             "<h2>Top contexts</h2><table><tr><th>rank</th><th>activation</th><th>context</th></tr>"
             + "".join(f"<tr><td>{c['rank']}</td><td>{c['activation']:.3f}</td><td class='ctx'>"
                       f"{_shaded(c['context'], c['activation'], top)}</td></tr>"
                       for c in contexts) + "</table>",
             "<h2>Mean activation per token</h2>" + _histogram(means),
             "<h2>Activation statistics</h2>" + _table([row], [
                 "n_tokens", "mean_activation", "std_activation", "skew", "kurtosis",
                 "max_activation", "frac_positive", "top_tokens"]),
             "<h2>Universality (Gurnee et al.)</h2>" + _table([row], [
                 "n_other_models", "universality_best_corr", "universality_mean_corr",
                 "universality_baseline", "universality_excess", "is_universal"]),
             "<h2>Probing (Durrani et al.)</h2>" + _table(row["probing"], [
                 "task", "rank", "rank_percentile", "in_top_set", "in_minimal_subset",
                 "salient_labels"]),
             "<h2>Explanation clusters (Ben Yaakov et al.)</h2>" + _table(
                 row["explanation_clusters"], ["method", "filter_percentile", "seed", "cluster_id"]),
             "<h2>Activation clusters (Zhang et al.)</h2>" + _cluster_table(clusters, row, depth),
             "<h2>Spectral modules (Golechha et al.)</h2>" + _table(
                 row["spectral_modules"], ["matrix", "similarity", "k", "module"]),
             "<h2>Stability</h2>" + _table([row], ["previous_checkpoint", "stability_self_corr",
                                                  "stability_best_corr"])]
    return _page(title, "".join(parts), depth)


_CLUSTER = ("model", "checkpoint", "site", "representation", "k", "refined", "method",
            "cluster_id")


@dataclass
class ListedClusters:
    """The size of every activation cluster that holds a listed neuron, and its listed neurons
    (ordered by layer and neuron), keyed by the cluster's `_CLUSTER` values: two queries for the
    whole site instead of one per (page, cluster)."""

    sizes: dict[tuple, int]
    members: dict[tuple, list[dict]]

    @classmethod
    def of(cls, con, listed: set[tuple]) -> ListedClusters:
        keys, using = ", ".join(_CLUSTER), ", ".join(_KEYS)
        params = [[key[i] for key in listed] for i in range(len(_KEYS))]
        with_listed = ("with listed as (select " + ", ".join(f"unnest(?) as {k}" for k in _KEYS)
                       + f"), held as (select {keys}, layer, neuron from stg_activation_clusters "
                       f"join listed using ({using})) ")
        members: dict[tuple, list[dict]] = {}
        for r in _rows(con, with_listed + "select * from held order by layer, neuron", params):
            members.setdefault(tuple(r[k] for k in _CLUSTER), []).append(r)
        sizes = {tuple(r[k] for k in _CLUSTER): r["n"] for r in _rows(
            con, with_listed + f"select {keys}, count(*) as n from stg_activation_clusters "
                               f"join (select distinct {keys} from held) using ({keys}) "
                               "group by all", params)}
        return cls(sizes, members)


def _cluster_table(clusters: ListedClusters, row: dict, depth: int) -> str:
    """The neuron's activation clusters with their ablation verdict and the other listed neurons
    of each cluster, linked."""
    up = "../" * depth
    out = []
    for c in row["activation_clusters"]:
        key = (row["model"], row["checkpoint"], row["site"], c["representation"], c["k"],
               c["refined"], c["method"], c["cluster_id"])
        links = [f"<a href='{up}{page_name(m)}'>L{m['layer']}N{m['neuron']}</a>"
                 for m in clusters.members.get(key, [])
                 if (m["layer"], m["neuron"]) != (row["layer"], row["neuron"])]
        out.append(f"<tr><td>{html.escape(c['representation'])} K={c['k']}"
                   f"{' refined' if c['refined'] else ''} {html.escape(c['method'])}</td>"
                   f"<td>{c['cluster_id']}</td><td>{clusters.sizes.get(key, 0)}</td>"
                   f"<td>{_fmt(c['cluster_drop_pct'])}</td><td>{_fmt(c['random_drop_pct'])}</td>"
                   f"<td>{_fmt(c['significant_random'])}</td><td>{' '.join(links) or '-'}</td></tr>")
    return ("<table><tr><th>configuration</th><th>cluster</th><th>neurons</th><th>drop %</th>"
            "<th>random drop %</th><th>significant</th><th>listed neurons of the cluster</th></tr>"
            + "".join(out) + "</table>")


def build_site(warehouse: str | Path, out_dir: str | Path, *, per_list: int = 10) -> Path:
    """Write the site under `out_dir` from the warehouse (read-only); return its index."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        sections, pages = [], {}
        for (model, checkpoint) in [tuple(r.values()) for r in _rows(
                con, "select distinct model, checkpoint from dim_neuron_profile order by all")]:
            lists = notable_neurons(con, model, checkpoint, per_list)
            items = []
            for title, rows in lists.items():
                if not rows:
                    continue
                links = "".join(
                    f"<li><a href='{page_name(r)}'>{r['site']} L{r['layer']} N{r['neuron']}</a>"
                    f" {html.escape(_fmt(r['explanation']))}</li>" for r in rows)
                items.append(f"<h3>{html.escape(title)}</h3><ul>{links}</ul>")
                pages.update({tuple(r[k] for k in _KEYS): r for r in rows})
            sections.append(f"<h2>{html.escape(model)} {html.escape(checkpoint)}</h2>"
                            + ("".join(items) or "<p>no notable neurons</p>"))
        clusters = ListedClusters.of(con, set(pages))
        for row in pages.values():
            path = out / page_name(row)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(_neuron_page(con, row, clusters, depth=2))
    index = out / "index.html"
    index.write_text(_page("Notable neurons", "<h1>Notable neurons</h1>" + "".join(sections)))
    return index
