"""``common.with_derived``: columns derived once per distinct value of a key, per streamed batch,
equal to deriving them row by row (nulls, unseen values and many batches included)."""

import polars as pl
from polars.testing import assert_frame_equal

from focus_platform.sources.common import with_derived


def _derive(unit: pl.Expr) -> dict[str, pl.Expr]:
    number = unit.str.extract(r"^\s*(\d+)", 1).cast(pl.Int64)
    return {"__block": number, "__rest": unit.str.replace(r"^\s*\d+\s*", ""),
            "__empty": unit.is_null()}  # a value derived from a null key is not null


def test_equal_to_deriving_each_row_over_many_batches(tmp_path):
    units = ["1 Hour", "10 GB", None, "100 Hours", "1 Hour", "  5 /Month", None, "x"]
    frame = pl.DataFrame({"unit": units * 25_000, "n": range(200_000)})
    frame.write_parquet(tmp_path / "f.parquet", row_group_size=7_000)
    lf = pl.scan_parquet(tmp_path / "f.parquet")
    got = with_derived(lf, pl.col("unit"), _derive).collect(engine="streaming")
    want = lf.with_columns(**_derive(pl.col("unit"))).collect()
    assert_frame_equal(got, want)
    assert got["n"].to_list() == list(range(200_000))  # row order kept


def test_all_distinct_and_all_null_keys():
    frame = pl.DataFrame({"unit": [f"{i} GB" for i in range(1_000)] + [None] * 10})
    got = with_derived(frame.lazy(), pl.col("unit"), _derive).collect(engine="streaming")
    assert_frame_equal(got, frame.with_columns(**_derive(pl.col("unit"))))
    nulls = pl.DataFrame({"unit": pl.Series([None] * 5, dtype=pl.String)})
    got = with_derived(nulls.lazy(), pl.col("unit"), _derive).collect()
    assert got["__empty"].to_list() == [True] * 5 and got["__block"].null_count() == 5


def test_a_pass_needing_no_derived_column_derives_nothing():
    calls = []

    def counted(unit: pl.Expr) -> dict[str, pl.Expr]:
        return {"__seen": unit.map_batches(lambda s: (calls.append(len(s)), s)[1], return_dtype=pl.String,
                                           is_elementwise=True)}

    frame = with_derived(pl.LazyFrame({"unit": ["a", "b", "a"], "cost": [1, 2, 3]}), pl.col("unit"), counted)
    assert frame.select(pl.col("cost").sum()).collect().item() == 6 and not any(calls)  # (0: the type probe)
    assert frame.collect()["__seen"].to_list() == ["a", "b", "a"] and any(calls)
