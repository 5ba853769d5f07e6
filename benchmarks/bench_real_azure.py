"""Azure convert on real-shaped data: the real EA actual + amortized pair tiled, against a streaming copy.

    python benchmarks/bench_real_azure.py --rows 1000000 [5000000] [--workdir /tmp/focus-bench-azure]

The input is ``../shared/samples/raw/azure/ea_actual_amortized_pair`` (the FinOps toolkit's EA cost
details of one tenant, September 2023: 11 actual-cost rows with a reservation purchase, 28 amortized-cost
rows with reservation- and savings-plan-covered usage; see ``../shared/samples/raw/azure/README.md``)
tiled to about --rows rows in all (whole tiles of 39 rows) as two files in the workdir (never committed),
``azure-real-<rows>-actual.csv`` and ``azure-real-<rows>-amortized.csv``. Each tile has its own
subscriptions: the last 12 hex digits of every subscription id are the tile number, in SubscriptionId and
in every resource id that names it. The subscription is part of what pairs an actual row with its
amortized row, so pairs stay pairs within a tile and never across tiles, and x_RowId stays distinct.
Each path runs in its own process (peak RSS from wait4, load average before and after, as
bench_providers.py):

  copy     pl.scan_csv([actual, amortized], infer_schema=False).sink_parquet(dst): every column of both
           files read and written
  convert  focus-platform convert ACTUAL AMORTIZED --out F.parquet (paired, every check)

rows/s = raw rows of both files / seconds; × copy is the ratio to the copy's rate in the same run.
Figures, not a timed test.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

from bench_providers import COPY, run
from bench_real_aws import sizes_main

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "samples" / "raw" / "azure" / "ea_actual_amortized_pair"
DATASETS = {"actual": "ftk_EA_ActualCost_Small.csv", "amortized": "ftk_EA_AmortizedCost_Small.csv"}


def _subscriptions(header: str, lines: list[str]) -> set[str]:
    """The SubscriptionId values of the sample's data lines."""
    at = next(csv.reader([header])).index("SubscriptionId")
    return {row[at] for row in csv.reader(lines)}


def tiled(rows: int, workdir: Path) -> dict[str, Path]:
    """The real pair tiled to about ``rows`` rows in all (kept in the workdir for later runs)."""
    out = {dataset: workdir / f"azure-real-{rows}-{dataset}.csv" for dataset in DATASETS}
    if all(path.exists() for path in out.values()):
        return out
    texts = {dataset: (SAMPLE / name).read_text(encoding="utf-8-sig").splitlines() for dataset, name in DATASETS.items()}
    bodies = {dataset: [line for line in lines[1:] if line.strip()] for dataset, lines in texts.items()}
    subscriptions = set().union(*(_subscriptions(texts[d][0], body) for d, body in bodies.items()))
    pattern = re.compile("(" + "|".join(map(re.escape, sorted(subscriptions))) + ")", re.I)
    tiles = max(1, round(rows / sum(map(len, bodies.values()))))
    for dataset, path in out.items():
        # text, subscription id, text, ...: each tile joins them with its own subscription ids
        pieces = pattern.split("\n".join(bodies[dataset]) + "\n")
        part = path.with_suffix(".part")
        with open(part, "w", encoding="utf-8-sig") as f:
            f.write(texts[dataset][0] + "\n")
            for tile in range(tiles):
                suffix = f"{tile:012x}"
                f.write("".join(piece if i % 2 == 0 else piece[:24] + suffix for i, piece in enumerate(pieces)))
        part.rename(path)
    return out


def _data_rows(path: str) -> int:
    """The data rows of a tiled file (one line each, after the header)."""
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b"")) - 1


def bench(rows: int, workdir: Path) -> dict:
    files = tiled(rows, workdir)
    paths = [str(files["actual"]), str(files["amortized"])]
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    tag = f"azure-real-{rows}"
    return {
        "rows": sum(_data_rows(path) for path in paths),
        "copy": run([sys.executable, "-c", COPY, json.dumps(paths), str(workdir / f"copy-{tag}.parquet")],
                    logs / f"{tag}-copy"),
        "convert": run([sys.executable, "-m", "focus_platform.cli", "convert", *paths,
                        "--format", "azure-cost-details", "--out", str(workdir / f"focus-{tag}.parquet")],
                       logs / f"{tag}-convert"),
    }


def main() -> None:
    sizes_main(__doc__.splitlines()[0], bench, "/tmp/focus-bench-azure", [1_000_000, 5_000_000])


if __name__ == "__main__":
    main()
