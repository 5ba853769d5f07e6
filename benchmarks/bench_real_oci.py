"""OCI convert on real-shaped data: the real cost report sample tiled, against a streaming copy.

    python benchmarks/bench_real_oci.py --rows 1000000 [5000000] [--workdir /tmp/focus-bench-real-oci]

The input is ``../shared/samples/raw/oci/*.csv`` (506 hourly rows of a real tenancy's cost report: 33
columns of which 8 are ``tags/<key>``, intervals in both OCI timestamp forms, amounts in plain and
``2.3E-9`` notation; see that folder's README) tiled to --rows in the workdir as one CSV (never
committed). Each tile has its own line items (``lineItem/referenceNo`` + the tile number), resources
(``product/resourceId`` + ``-t<tile>``) and compartment (``product/compartmentId``: the tenancy's OCID
with the tile number, ``product/compartmentName`` with it too), under the sample's one tenancy, so no
tile is a copy of another line item and a tenancy's month holds many compartments as a large estate
does. The tiling runs in a process of its own (a child's wait4 peak counts the parent's memory at
fork). Then, each in its own process (peak RSS from wait4, load average before and after, as
bench_providers.py):

  copy     pl.scan_csv(file, infer_schema=False).sink_parquet(dst): every column read and written
  convert  focus-platform convert FILE --format oci-cost --out F.parquet (every check)

rows/s = raw rows / seconds; × copy is the ratio to the copy's rate in the same run. Figures, not a
timed test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench_providers import COPY, run
from bench_real_aws import sizes_main

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "samples" / "raw" / "oci"

TILE = """
import sys, polars as pl
sample, rows, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
source = pl.scan_csv(sample, infer_schema=False)
def tile(rows):  # each row of tile n (one plan: a concat of one plan per tile took minutes to plan at 5 M rows)
    number = pl.col("__tile").cast(pl.String)
    suffix = "-t" + number
    return rows.with_columns(
        pl.col("lineItem/referenceNo") + number.str.zfill(7),
        pl.col("product/resourceId") + suffix,
        pl.col("product/compartmentId") + suffix,
        pl.col("product/compartmentName") + suffix,
    )
per_tile = source.select(pl.len()).collect().item()
tiles = pl.LazyFrame({"__tile": range(1, -(-rows // per_tile) + 1)})
tiles.join(source, how="cross", maintain_order="left_right").pipe(tile).drop("__tile").head(rows).sink_csv(path)
print(pl.scan_csv(path, infer_schema=False).select(pl.len()).collect().item())
"""


def tiled(rows: int, workdir: Path) -> tuple[Path, int]:
    """The real sample tiled to ``rows`` data rows and its row count (kept in the workdir for later runs)."""
    path = workdir / f"oci-real-{rows}.csv"
    count = path.with_suffix(".rows")
    if not count.exists():
        sample = next(SAMPLE.glob("*.csv"))
        made = subprocess.run([sys.executable, "-c", TILE, str(sample), str(rows), str(path)], check=True,
                              capture_output=True, text=True)
        count.write_text(made.stdout.strip())
    return path, int(count.read_text())


def bench(rows: int, workdir: Path) -> dict:
    path, tiled_rows = tiled(rows, workdir)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    tag = path.stem
    return {
        "rows": tiled_rows,
        "copy": run([sys.executable, "-c", COPY, json.dumps([str(path)]), str(workdir / f"copy-{tag}.parquet")],
                    logs / f"{tag}-copy"),
        "convert": run([sys.executable, "-m", "focus_platform.cli", "convert", str(path), "--format", "oci-cost",
                        "--out", str(workdir / f"focus-{tag}.parquet")], logs / f"{tag}-convert"),
    }


def main() -> None:
    sizes_main(__doc__.splitlines()[0], bench, "/tmp/focus-bench-real-oci", [1_000_000, 5_000_000])


if __name__ == "__main__":
    main()
