"""RESULTS.md is shared by the benchmark files: each rewrites only its own section."""

import os
import platform
import re
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = ("# Benchmark results\n\nReproduce with `make bench` (`NWH_BENCH_RUNS` sets the runs per "
          "figure). Each section is rewritten by the benchmark file it names.\n")


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}")


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (VmHWM, Linux). Not ``ru_maxrss``: Linux
    carries it over fork + exec, so a benchmark process started from a big pytest process
    would report at least the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status: peak memory is measured on Linux only")


def at_most_verdict(value: float, goal: float, unit: str, digits: int = 0) -> str:
    """'met' when `value` is within an at-most `goal`, else by how much it is missed."""
    return "met" if value <= goal else f"missed by {value - goal:.{digits}f} {unit}"


def write_section(name: str, body: str) -> str:
    """Replace (or append) the section `## name` of RESULTS.md with `body`; return the file."""
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    if not text.startswith(HEADER):
        text = HEADER
    section = f"## {name}\n\nMachine: {machine()}.\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) \
        else text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")
    return RESULTS.read_text()
