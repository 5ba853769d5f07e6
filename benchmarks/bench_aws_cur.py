"""AWS CUR only: an alias of bench_providers.py --provider aws (kept for the command in README.md).

    python benchmarks/bench_aws_cur.py --rows 1000000 5000000 [--workdir /tmp/focus-bench]

Same paths and table as ``bench_providers.py`` (see its docstring): copy baseline, convert, assets.
"""

from __future__ import annotations

from bench_providers import main

if __name__ == "__main__":
    main(default_providers=("aws",), default_workdir="/tmp/focus-bench")
