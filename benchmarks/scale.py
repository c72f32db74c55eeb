"""How the pipeline's cost grows with the data: 1M, 5M and 25M ratings on this machine.

    python benchmarks/scale.py [--sizes 1M,5M,25M] [--data-root data/scale] [--beside]

For each size R it writes (or reuses) a synthetic MovieLens data set with `movierec synth
--users R/150 --movies R/400+2000 --ratings R --seed 7` (the shape issue 14 measured: 25M
ratings gives ml-25m's 162k users and about 64k movies), runs every stage on it through
benchmarks/pipeline_stages.py in a process of its own (one stage at a time, as the DAG's
spark-submits run them; `--beside`: evaluate beside the others, as `movierec pipeline`), and
prints one table: per stage the wall and CPU seconds, the Spark jobs and tasks, the driver
JVM's peak resident memory (VmHWM from /proc), and each size's growth over the one before.
Settings come from MOVIEREC_* as everywhere (the pipeline's defaults otherwise).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parents[1]
SEED = 7


def ratings_of(text: str) -> int:
    """'1M' -> 1_000_000, '250k' -> 250_000, '5000' -> 5000."""
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def synth(ratings: int, out: Path) -> Path:
    """The size's data set, written once (a folder with ratings.csv is reused)."""
    if (out / "ratings.csv").is_file():
        return out
    users, movies = max(ratings // 150, 10), ratings // 400 + 2000
    command = [
        sys.executable, "-m", "movierec.cli", "synth", "--users", str(users), "--movies", str(movies),
        "--ratings", str(ratings), "--seed", str(SEED), "--out", str(out),
    ]  # fmt: skip
    print(f"writing {out} ({ratings:,} ratings, {users:,} users, {movies:,} movies)", flush=True)
    subprocess.run(command, check=True, cwd=ROOT)
    return out


def run(data_dir: Path, beside: bool, json_path: Path) -> dict:
    command = [sys.executable, "benchmarks/pipeline_stages.py", "--data-dir", str(data_dir), "--json", str(json_path)]
    if not beside:
        command.append("--sequential")
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    figures = json.loads(json_path.read_text())
    figures["process_seconds"] = time.perf_counter() - started
    return figures


def table(sizes: list[tuple[str, dict]]) -> str:
    stages = list(sizes[0][1]["stages"])
    lines = [
        "| ratings | total s | total CPU s | growth | JVM peak GiB | "
        + " | ".join(f"{s} s (cpu)" for s in stages)
        + " |",
        "|---" * (5 + len(stages)) + "|",
    ]
    previous = None
    for label, f in sizes:
        growth = f"{f['total_seconds'] / previous:.2f}×" if previous else "-"
        previous = f["total_seconds"]
        cells = [
            label,
            f"{f['total_seconds']:.0f}",
            f"{f['total_cpu_seconds']:.0f}",
            growth,
            f"{f['jvm_peak_rss_bytes'] / 2**30:.1f}",
        ]
        for stage in stages:
            st = f["stages"][stage]
            cpu = "" if st["cpu_seconds"] is None else f" ({st['cpu_seconds']:.0f})"
            cells.append(f"{st['seconds']:.0f}{cpu}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@click.command(help=__doc__.splitlines()[0])
@click.option("--sizes", default="1M,5M,25M", show_default=True, help="ratings per data set, comma-separated")
@click.option("--data-root", default="data/scale", show_default=True, help="where the data sets are written")
@click.option("--beside", is_flag=True, help="evaluate beside the other stages (as `movierec pipeline`)")
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="also write every size's figures here")
def main(sizes: str, data_root: str, beside: bool, json_out: str | None) -> int:
    root = Path(data_root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = []
    for label in sizes.split(","):
        data = synth(ratings_of(label), root / f"synth-{label}")
        print(f"pipeline on {data}", flush=True)
        results.append((label, run(data, beside, root / f"figures-{label}.json")))
    print(table(results))
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if json_out:
        Path(json_out).write_text(json.dumps(dict(results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main.main(standalone_mode=False))
