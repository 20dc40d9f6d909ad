"""`nwh`: the Neuron Warehouse command line (demo, train, run, query, ui, explanations fetch)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dagster_project.warehouse_cli import docs, neuron, query, report


def _home(args) -> Path:
    from dagster_project.home import default_home

    home = Path(args.home).resolve() if args.home else default_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["NWH_HOME"] = str(home)
    return home


def _print_progress(step: int, total: int, loss: float) -> None:
    if step == 1 or step % 50 == 0 or step == total:
        print(f"  step {step}/{total}  loss {loss:.3f}", flush=True)


def train(home: Path, out: Path | None, seed: int, steps: int, *, n_sentences: int,
          save_every: int | None = None, modular: dict | None = None) -> list[Path]:
    """Train the demo GPT-2 on the synthetic corpus and save checkpoint folders; `modular`
    (modular_layer, modular_k, modular_lambda, modular_warmup) adds the enmeshment loss."""
    from extract.corpus import sentences, synthetic_corpus
    from training.demo_lm import DemoModelConfig, train_demo_model

    out = out or home / "checkpoints" / "demo"
    corpus = synthetic_corpus(n_sentences, seed=0)
    train_texts = [t for _, t in sentences(corpus, "train")]
    eval_texts = [t for _, t in sentences(corpus, "heldout")]
    saves = (range(save_every, steps, save_every) if save_every
             else (s for s in (steps // 6, steps // 2) if s > 0))
    config = DemoModelConfig(seed=seed, steps=steps, save_steps=tuple(saves), **(modular or {}))
    print(f"training the demo GPT-2 ({config.n_layer} layers, d_model {config.d_model}, "
          f"d_mlp {config.d_mlp}) for {steps} steps into {out}", flush=True)
    paths = train_demo_model(train_texts, eval_texts, out, config, progress=_print_progress)
    state = json.loads((paths[-1] / "trainer_state.json").read_text())
    print(f"held-out loss {state['eval_loss']:.3f} nats vs unigram entropy "
          f"{state['unigram_entropy']:.3f} nats; saved {[p.name for p in paths]}")
    return paths


def run(home: Path, study_file: str, checkpoint: str | None, workers: int = 1, *,
        wait: bool = True, everything: bool = False, executor: str = "multiprocess") -> Path:
    from dagster_project.home import run_lock
    from dagster_project.runner import run_study

    started = time.time()
    with run_lock(home, wait=wait):
        outcome = run_study(home, str(Path(study_file).resolve()) if study_file else "", checkpoint,
                            workers=workers, executor=executor, everything=everything, say=print)
    print(f"materialized {len(outcome.materialized)} assets of partition {outcome.partition_key} "
          f"in {time.time() - started:.0f} s ({len(outcome.skipped)} up to date)")
    return outcome.warehouse


def demo(home: Path) -> None:
    from extract.checkpoints import CheckpointError, find_checkpoints

    from dagster_project.demo import DEMO_EXTRA_SEEDS, demo_seed_folder

    folders = {0: home / "checkpoints" / "demo"} | {
        seed: demo_seed_folder(home, seed) for seed in DEMO_EXTRA_SEEDS}
    for seed, folder in folders.items():  # the other seeds save their final checkpoint only
        try:
            find_checkpoints(folder)
        except CheckpointError:
            train(home, folder, seed=seed, steps=600, n_sentences=4000,
                  save_every=None if seed == 0 else 600)
    from dagster_project.example_queries import EXAMPLE_QUERIES

    warehouse = run(home, "", None)
    print(f"\nThe warehouse is ready: {warehouse}\nTry:")
    for title, sql in EXAMPLE_QUERIES:
        print(f"  # {title}\n  nwh query \"{sql}\"")


def fetch(base_url: str, layers: str, neurons_per_layer: int, dest: Path, *, workers: int) -> int:
    """Mirror the OpenAI explanation dataset layout into `dest`, with a progress bar."""
    from tqdm import tqdm

    from extract.fetch import fetch_explanations, parse_layers

    layer_list = parse_layers(layers)
    bar = tqdm(total=len(layer_list) * neurons_per_layer, unit="file", desc="explanations")

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    report = fetch_explanations(base_url, layer_list, neurons_per_layer, dest, workers=workers,
                                progress=progress)
    bar.close()
    print(f"{report.downloaded} downloaded, {report.skipped} already present, "
          f"{len(report.missing)} missing (404), {len(report.failed)} failed into {dest}")
    for url in report.failed[:20]:
        print(f"  failed after retries: {url}")
    if report.failed:
        print("re-run the same command to retry the failed files (present files are skipped)")
    return 1 if report.failed else 0


def ui(home: Path, study_file: str, host: str, port: int) -> int:
    """Start `dagster dev` on the definitions, bound to `host` (127.0.0.1 unless told otherwise)."""
    from dagster_project.runner import instance_for

    instance_for(home)
    env = {**os.environ, "NWH_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "NWH_STUDY": str(Path(study_file).resolve()) if study_file else ""}
    cmd = [str(Path(sys.executable).parent / "dagster"), "dev", "-m",
           "dagster_project.definitions", "-h", host, "-p", str(port)]
    print(f"Dagster UI on http://{host}:{port} (Ctrl-C stops it)", flush=True)
    return subprocess.call(cmd, env=env)


def _where(default) -> argparse.ArgumentParser:
    """--home and --lake, accepted before and after the subcommand (`default` is None on the
    main parser, SUPPRESS on the subcommands so they do not reset a value given before)."""
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--home", default=default,
                       help="data folder (default: $NWH_HOME or warehouse/)")
    where.add_argument("--lake", default=default,
                       help="lake location: a folder or any fsspec URL, e.g. s3://bucket/lake "
                            "(default: $NWH_LAKE_URL or <home>/lake)")
    return where


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nwh", description="Neuron Warehouse",
                                     parents=[_where(None)])
    sub = parser.add_subparsers(dest="command", required=True)
    where = _where(argparse.SUPPRESS)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[where], **kwargs)

    command("demo", help="train the demo model if needed and build the whole warehouse")
    p = command("train", help="train the demo GPT-2 and save checkpoint-<step> folders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")],
                   help="several seeds on the same data, e.g. 0,1,2 (universal neurons): one "
                        "folder <out>-seed<s> each (default out: <home>/checkpoints/demo)")
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--n-sentences", type=int, default=4000)
    p.add_argument("--out", type=Path, help="output folder (default: <home>/checkpoints/demo)")
    p.add_argument("--save-every", type=int,
                   help="save a checkpoint every N steps (default: at steps/6, steps/2 and the end)")
    p.add_argument("--modular-layer", type=int,
                   help="train for modularity (Golechha et al.): add lambda x (1 - enmeshment) "
                        "of this layer's MLP input weights to the loss after the warm-up")
    p.add_argument("--modular-k", type=int, default=4, help="bipartite clusters (default 4)")
    p.add_argument("--modular-lambda", type=float, default=20.0, help="default 20 (the paper's)")
    p.add_argument("--modular-warmup", type=int, default=100,
                   help="plain steps before the clusters are fixed (default 100)")
    p = command("run", help="materialize the study described by a YAML file")
    p.add_argument("--config", required=True, help="study YAML file")
    p.add_argument("--checkpoint", help="checkpoint name (default: the newest)")
    p.add_argument("--workers", type=int, default=1, help="extract the corpus shards in this "
                   "many parallel processes (default 1: everything in one process)")
    p.add_argument("--executor", choices=["multiprocess", "celery"], default="multiprocess",
                   help="celery: the extraction shards on Celery workers (docs/cluster.md)")
    p.add_argument("--all", action="store_true", dest="everything", help="materialize every "
                   "asset (default: the stale and missing ones and what depends on them)")
    p.add_argument("--no-wait", action="store_true",
                   help="stop at once if another nwh run is working on the same home "
                        "(default: wait for it)")
    p = command("query", help="run read-only SQL on the warehouse")
    p.add_argument("sql")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p = command("explanations", help="explanation datasets")
    fetch_parser = p.add_subparsers(dest="action", required=True).add_parser(
        "fetch", help="mirror the OpenAI explanation dataset ({base}/{layer}/{neuron}.jsonl): "
                      "resumable, concurrent, retried")
    fetch_parser.add_argument("--base-url", required=True,
                              help="URL of the folder holding the {layer}/ folders")
    fetch_parser.add_argument("--layers", required=True, help="e.g. 0-47 or 0,5,10-12")
    fetch_parser.add_argument("--neurons-per-layer", type=int, default=6400,
                              help="neurons 0..N-1 of each layer (default 6400, GPT-2 XL)")
    fetch_parser.add_argument("--dest", type=Path, required=True, help="local folder")
    fetch_parser.add_argument("--workers", type=int, default=16, help="concurrent downloads")
    p = command("neuron", help="print one neuron's profile (every study's verdict)")
    p.add_argument("--model", required=True)
    p.add_argument("--layer", type=int, required=True)
    p.add_argument("--neuron", type=int, required=True)
    p.add_argument("--site", choices=["mlp", "resid"], default="mlp")
    p.add_argument("--checkpoint", help="default: the newest")
    command("report", help="print the path of the neuron pages' index")
    p = command("docs", help="build and serve dbt's docs site (lineage, every column) locally")
    p.add_argument("--port", type=int, default=8080)
    p = command("ui", help="start the Dagster UI")
    p.add_argument("--config", default="", help="study YAML file (default: the demo study)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3000)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    home = _home(args)
    if args.lake:
        os.environ["NWH_LAKE_URL"] = args.lake
    try:
        if args.command == "demo":
            demo(home)
        elif args.command == "train":
            modular = None if args.modular_layer is None else {k: getattr(args, k) for k in (
                "modular_layer", "modular_k", "modular_lambda", "modular_warmup")}
            out = args.out or home / "checkpoints" / ("demo-modular" if modular else "demo")
            for seed in args.seeds or [args.seed]:
                train(home, out.with_name(f"{out.name}-seed{seed}") if args.seeds else out, seed,
                      args.steps, n_sentences=args.n_sentences, save_every=args.save_every,
                      modular=modular)
        elif args.command == "run":
            run(home, args.config, args.checkpoint, args.workers, wait=not args.no_wait,
                everything=args.everything, executor=args.executor)
        elif args.command == "query":
            print(query(home, args.sql, args.format))
        elif args.command == "explanations":
            return fetch(args.base_url, args.layers, args.neurons_per_layer, args.dest,
                         workers=args.workers)
        elif args.command == "neuron":
            print(neuron(home, args.model, args.layer, args.neuron, args.site, args.checkpoint))
        elif args.command == "report":
            print(report(home))
        elif args.command == "docs":
            return docs(home, args.port)
        elif args.command == "ui":
            return ui(home, args.config, args.host, args.port)
    except Exception as e:  # noqa: BLE001 - the CLI reports any failure as one clear line
        from dagster_project.errors import user_message

        print(f"nwh {args.command}: error: {user_message(e)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
