"""The embedded demo study: the demo GPT-2 (and its other seeds) on the synthetic corpus."""

from __future__ import annotations

from pathlib import Path

from dagster_project.study import StudyConfig, parse_study

DEMO_EXTRA_SEEDS = (1, 2)  # the demo's other models for universality (Gurnee et al. use 5 seeds)


def demo_seed_folder(home: Path, seed: int) -> Path:
    """Where `nwh demo` trains the demo model from another seed."""
    return Path(home) / "checkpoints" / f"demo-seed{seed}"


def demo_study(home: Path) -> StudyConfig:
    """The embedded default: the demo GPT-2 on the synthetic corpus with the local explainer,
    compared for universality with the demo models of the other seeds that have been trained.
    Every activation clustering is built, and a seeded sample of 10 clusters of each is ablated
    (all 3,000 take about 13 minutes on 2 cores)."""
    others = [str(f) for seed in DEMO_EXTRA_SEEDS
              if (f := demo_seed_folder(home, seed)).is_dir() and any(f.glob("checkpoint-*"))]
    return parse_study({"model": "demo", "checkpoints": str(Path(home) / "checkpoints" / "demo"),
                        "activation_clusters": {"ablation_max_clusters": 10},
                        "universality": {"other_models": others}}, Path(home))
