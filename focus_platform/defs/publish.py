"""How an asset publishes a table through the warehouse's one write path (``Warehouse.publish``).

The table's contract always gates the commit; a caller's blocking ``Check`` may gate it too, measured
on the staged rows. What the asset gets back is the new version and both outcomes; what it gets when
the warehouse refuses is ``NotPublished``: nothing was committed, readers keep the published version,
and the failing check's result is yielded before the run fails (``refused``).
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import polars as pl

from focus_platform.defs.checks import Check, Outcome, contract_check, contract_result
from focus_platform.periods import PartitionKey
from focus_platform.warehouse.contracts import ContractReport
from focus_platform.warehouse.delta import (
    ConcurrentPartitionWrite,
    GateFailed,
    Warehouse,
)


class NotPublished(Exception):
    """A publication the warehouse refused: the run's failure and the failing check's result (if a check)."""

    def __init__(self, failure: dg.Failure, result: dg.AssetCheckResult | None):
        super().__init__(str(failure))
        self.failure, self.result = failure, result


def publish(wh: Warehouse, table: str, rows: pl.LazyFrame | list[pl.LazyFrame], key: PartitionKey, run_id: str,
            metadata: dict, *, gate: Check | None = None, measure: Callable[[pl.LazyFrame], Outcome] | None = None
            ) -> tuple[int, Outcome, Outcome | None]:
    """The table (unpartitioned: ``PartitionKey()``) or one partition replaced (``rows``: one frame, or parts
    staged one after another so that their scans never run side by side), gated by the table's contract
    and then by ``measure`` (the outcome of the blocking check ``gate``) on the staged rows: the version,
    the contract's outcome and the gate's. Refused: ``NotPublished``."""
    contract = contract_check(table)

    def gated(staged: pl.LazyFrame) -> Outcome:
        outcome = measure(staged)
        if not outcome.passed:
            raise GateFailed(f"{gate.name} failed: {'; '.join(outcome.metadata.get('problems', []))}", outcome)
        return outcome

    try:
        published, outcome = wh.publish(table, rows, key, gate=gated if measure else None,
                                        commit_metadata=metadata, run_id=run_id)
    except (GateFailed, ConcurrentPartitionWrite) as exc:
        details = exc.details if isinstance(exc, GateFailed) else None
        result = (contract_result(contract, details) if isinstance(details, ContractReport)
                  else gate.result(False, details.metadata) if isinstance(details, Outcome) else None)
        raise NotPublished(dg.Failure(f"{table} {key.describe()}: {exc}"), result) from exc
    return published.version, Outcome.of(contract_result(contract, published.contract)), outcome


def refused(exc: NotPublished):
    """What an asset yields for a refused publication before it fails."""
    if exc.result is not None:
        yield exc.result
    raise exc.failure from exc
