"""GCP convert on real-shaped data: the real flattened CSV sample tiled, against a streaming copy.

    python benchmarks/bench_real_gcp.py --rows 1000000 [5000000] [--workdir /tmp/focus-bench-gcp]

The input is ``../shared/samples/raw/gcp/koku_*.csv`` (25 rows of a real standard export, flattened
by koku: labels as JSON text, credits as a Python repr; see that folder's README) tiled to --rows in
the workdir (never committed): each tile has its own project (``billing-example-<tile>``) and its own
free-trial credit (``FreeTrial:Credit-<tile>``), so the JSON columns hold distinct text per tile as
real exports do (one credit per row with its own amount), and x_RowId stays distinct. Each path runs
in its own process (peak RSS from wait4, load average before and after, as bench_providers.py):

  copy     pl.scan_csv(file, infer_schema=False).sink_parquet(dst): every column read and written
  convert  focus-platform convert FILE --out F.parquet (every check)

rows/s = raw rows / seconds; × copy is the ratio to the copy's rate in the same run. Figures, not a
timed test.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench_providers import COPY, run
from bench_real_aws import sizes_main

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "samples" / "raw" / "gcp"
PROJECT = "billing-example-00000"
CREDIT = "FreeTrial:Credit-000000-B0BBA4-940A77"


def tiled(rows: int, workdir: Path) -> Path:
    """The real sample tiled to ``rows`` data rows (kept in the workdir for later runs)."""
    out = workdir / f"gcp-real-{rows}.csv"
    if out.exists():
        return out
    source = next(SAMPLE.glob("koku_*.csv"))
    header, *lines = source.read_text(encoding="utf-8").splitlines()
    body = [line for line in lines if line.strip()]
    part = out.with_suffix(".part")
    with open(part, "w", encoding="utf-8") as f:
        f.write(header + "\n")
        for tile in range(-(-rows // len(body))):
            take = body[: min(len(body), rows - tile * len(body))]
            f.write("\n".join(line.replace(PROJECT, f"billing-example-{tile:07d}")
                              .replace(CREDIT, f"FreeTrial:Credit-{tile:07d}") for line in take) + "\n")
    part.rename(out)
    return out


def bench(rows: int, workdir: Path) -> dict:
    data = tiled(rows, workdir)
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    tag = f"gcp-real-{rows}"
    return {
        "rows": rows,
        "copy": run([sys.executable, "-c", COPY, f'["{data}"]', str(workdir / f"copy-{tag}.parquet")],
                    logs / f"{tag}-copy"),
        "convert": run([sys.executable, "-m", "focus_platform.cli", "convert", str(data), "--format", "gcp-billing",
                        "--out", str(workdir / f"focus-{tag}.parquet")], logs / f"{tag}-convert"),
    }


def main() -> None:
    sizes_main(__doc__.splitlines()[0], bench, "/tmp/focus-bench-gcp", [1_000_000])


if __name__ == "__main__":
    main()
