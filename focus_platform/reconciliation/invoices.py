"""Provider invoices and credit memos: the documented invoice format, readers, memo resolution.

Invoice files (``<landing root>/invoices/**``)
----------------------------------------------
CSV (``.csv``) with a header, or JSON lines (``.jsonl``, ``.ndjson``, ``.json``: one object a line;
a ``.json`` file may also hold one JSON array of objects), one invoice or credit memo per row,
with these fields (``INVOICE_FIELDS``; other columns are ignored, order is free):

==================== ========= ==============================================================
field                required  meaning
==================== ========= ==============================================================
invoice_id           yes       the provider's invoice (or credit memo) number
issuer               no        invoice issuer (e.g. "Amazon Web Services, Inc.")
billing_account_id   yes       the billing (payer) account billed; FOCUS BillingAccountId
billing_period       yes       ``YYYY-MM`` the document was issued for
currency             yes       ISO 4217 code of every amount of the document
total                yes       amount due incl. tax and credits (a memo: its signed amount)
tax                  no        tax included in ``total``
credits              no        credits / discounts included in ``total`` (negative)
issued_date          no        ``YYYY-MM-DD``
adjusts_invoice_id   no        set on a credit (or debit) memo: the invoice it adjusts
==================== ========= ==============================================================

Money is read as decimal text (JSON numbers too) into Decimal(38, 12), never through a float; more
than 12 decimals is an error, not a rounding. The generator (``focus_platform.generate.aws_cur``)
writes this format at ``invoices/<billing account>/<YYYY-MM>.csv``. Late documents (a memo days or
months later) arrive as new files.

Rules
-----
* The same ``invoice_id`` in two rows or files: identical business fields are one invoice (the
  other copies are listed in ``x_DuplicateFiles``); any difference is a ``DuplicateInvoiceError``
  naming both files and the differing fields — never an overwrite.
* A memo is netted into the invoice it adjusts (following memo → memo chains to the invoice), so
  into that invoice's billing period (``x_AppliesToPeriod``), whatever period it was issued in.
* A memo for an invoice not yet seen is held ``pending`` (in the period it was issued) and is
  applied when the invoice arrives. A memo in another currency or for another billing account than
  its invoice is ``rejected`` (reported, never netted).

Readers of what providers give without invoice files (``invoices_from_focus``): one invoice-shaped
row per (billing account, billing period, currency, InvoiceId) of the FOCUS rows, total =
sum(BilledCost): ``x_InvoiceSource`` is ``focus:InvoiceId`` where the provider fills InvoiceId
(AWS CUR ``bill/InvoiceId``), else ``focus:derived``. These rows are summaries, not references: the
reconciliation compares FOCUS only with ``file`` documents.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal, InvalidOperation

import polars as pl

from focus_platform.periods import BillingPeriod, PeriodError
from focus_platform.spec.columns import MONEY

INVOICE_FIELDS = ("invoice_id", "issuer", "billing_account_id", "billing_period", "currency", "total", "tax",
                  "credits", "issued_date", "adjusts_invoice_id")
REQUIRED_FIELDS = ("invoice_id", "billing_account_id", "billing_period", "currency", "total")
INVOICE_DIR = "invoices"
INVOICE_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")

KIND_INVOICE, KIND_MEMO = "invoice", "credit_memo"
STATUS_INVOICE, STATUS_APPLIED, STATUS_PENDING, STATUS_REJECTED, STATUS_DERIVED = (
    "invoice", "applied", "pending", "rejected", "derived")
SOURCE_FILE, SOURCE_FOCUS_ID, SOURCE_FOCUS_DERIVED = "file", "focus:InvoiceId", "focus:derived"

INVOICE_SCHEMA = pl.Schema({
    "InvoiceId": pl.String,
    "InvoiceIssuerName": pl.String,
    "BillingAccountId": pl.String,
    "BillingPeriod": pl.String,  # 'YYYY-MM' the document was issued for
    "BillingCurrency": pl.String,
    "InvoiceTotal": MONEY,
    "InvoiceTax": MONEY,
    "InvoiceCredits": MONEY,
    "IssuedDate": pl.Date,
    "AdjustsInvoiceId": pl.String,
    "x_InvoiceKind": pl.String,  # invoice | credit_memo
    "x_InvoiceStatus": pl.String,  # invoice | applied | pending | rejected | derived
    "x_StatusReason": pl.String,
    "x_AppliesToInvoiceId": pl.String,  # the invoice a memo is netted into (an invoice: itself)
    "x_AppliesToPeriod": pl.String,  # the billing period it is reconciled in (null: pending)
    "x_InvoiceSource": pl.String,  # file | focus:InvoiceId | focus:derived
    "x_SourceFile": pl.String,
    "x_SourceRow": pl.Int64,
    "x_DuplicateFiles": pl.List(pl.String),
})

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_MONEY = Decimal(10) ** 26


class InvoiceError(ValueError):
    """Invoice input that cannot be used (the message names file, row and field)."""


class DuplicateInvoiceError(InvoiceError):
    """One invoice id with different contents in two places."""


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    issuer: str | None
    billing_account_id: str
    billing_period: str
    currency: str
    total: Decimal
    tax: Decimal | None
    credits: Decimal | None
    issued_date: date | None
    adjusts_invoice_id: str | None
    source_file: str
    source_row: int

    @property
    def is_memo(self) -> bool:
        return self.adjusts_invoice_id is not None

    def business(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("source_file", "source_row")}


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------
def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError("float")
    text = str(value).strip()
    return text or None


def _money(value: object, where: str, name: str) -> Decimal | None:
    if isinstance(value, float):  # only reachable with a JSON parser that made floats
        raise InvoiceError(f"{where}: {name} {value!r} is a float; write money as decimal text")
    text = _text(value)
    if text is None:
        return None
    try:
        amount = Decimal(text.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", text) else text)
    except InvalidOperation:
        raise InvoiceError(f"{where}: {name} {text!r} is not a decimal amount") from None
    if not amount.is_finite() or abs(amount) >= _MAX_MONEY:
        raise InvoiceError(f"{where}: {name} {text!r} is not a finite amount below 1e26")
    if amount.as_tuple().exponent < -12:
        raise InvoiceError(f"{where}: {name} {text!r} has more than 12 decimals (Decimal(38, 12))")
    return amount


def _record(raw: dict[str, object], label: str, row: int) -> Invoice:
    where = f"{label} row {row}"
    values = {k.strip().lower(): v for k, v in raw.items() if k is not None}
    try:
        text = {k: _text(values.get(k)) for k in ("invoice_id", "issuer", "billing_account_id", "billing_period",
                                                   "currency", "issued_date", "adjusts_invoice_id")}
    except TypeError:
        raise InvoiceError(f"{where}: an id or date field is a float; quote it") from None
    missing = [k for k in REQUIRED_FIELDS if (text.get(k) if k != "total" else _text(values.get("total"))) is None]
    if missing:
        raise InvoiceError(f"{where}: missing required field(s) {', '.join(missing)} "
                           f"(an invoice row has {', '.join(INVOICE_FIELDS)})")
    try:
        period = str(BillingPeriod.parse(text["billing_period"], f"{where}: billing_period"))
    except PeriodError as exc:
        raise InvoiceError(str(exc)) from None
    currency = text["currency"].upper()
    if not _CURRENCY.match(currency):
        raise InvoiceError(f"{where}: currency {text['currency']!r} is not an ISO 4217 code")
    issued = None
    if text["issued_date"]:
        try:
            issued = date.fromisoformat(text["issued_date"])
        except ValueError:
            raise InvoiceError(f"{where}: issued_date {text['issued_date']!r} is not YYYY-MM-DD") from None
    if text["adjusts_invoice_id"] == text["invoice_id"]:
        raise InvoiceError(f"{where}: invoice {text['invoice_id']} adjusts itself")
    return Invoice(
        invoice_id=text["invoice_id"], issuer=text["issuer"], billing_account_id=text["billing_account_id"],
        billing_period=period, currency=currency, total=_money(values.get("total"), where, "total"),
        tax=_money(values.get("tax"), where, "tax"), credits=_money(values.get("credits"), where, "credits"),
        issued_date=issued, adjusts_invoice_id=text["adjusts_invoice_id"], source_file=label, source_row=row)


def parse_invoice_file(label: str, content: bytes) -> list[Invoice]:
    """One invoice file (CSV or JSON lines, by its name) as ``Invoice`` records."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvoiceError(f"{label}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lower = label.lower()
    if lower.endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames:
            raise InvoiceError(f"{label}: the file is empty (no header)")
        header = [h.strip().lower() for h in reader.fieldnames]
        absent = [f for f in REQUIRED_FIELDS if f not in header]
        if absent:
            raise InvoiceError(f"{label}: header lacks {', '.join(absent)} (expected {','.join(INVOICE_FIELDS)})")
        out = []
        for n, row in enumerate(reader, start=2):
            if None in row:
                raise InvoiceError(f"{label} row {n}: more fields than the header has")
            if not any((v or "").strip() for v in row.values()):
                continue
            out.append(_record(row, label, n))
        return out
    if lower.endswith((".jsonl", ".ndjson", ".json")):
        stripped = text.strip()
        if lower.endswith(".json") and stripped.startswith("["):
            try:
                items = json.loads(stripped, parse_float=Decimal)
            except json.JSONDecodeError as exc:
                raise InvoiceError(f"{label}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
            rows = list(enumerate(items, start=1))
        else:
            rows = []
            for n, line in enumerate(text.splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rows.append((n, json.loads(line, parse_float=Decimal)))
                except json.JSONDecodeError as exc:
                    raise InvoiceError(f"{label} line {n}: invalid JSON ({exc.msg})") from None
        out = []
        for n, obj in rows:
            if not isinstance(obj, dict):
                raise InvoiceError(f"{label} line {n}: expected a JSON object")
            obj = {k: (str(v) if isinstance(v, int) and not isinstance(v, bool) else v) for k, v in obj.items()}
            out.append(_record(obj, label, n))
        return out
    raise InvoiceError(f"{label}: unknown invoice file type (expected {', '.join(INVOICE_SUFFIXES)})")


def invoice_files(store, prefix: str = INVOICE_DIR) -> list[tuple[str, bytes]]:
    """``(key, bytes)`` of every invoice file under ``<landing root>/invoices`` (a ``LocalStore``)."""
    return [(o.key, store.read_bytes(o.key)) for o in store.list(prefix)
            if o.key.lower().endswith(INVOICE_SUFFIXES) and not o.key.rsplit("/", 1)[-1].startswith(".")]


def invoice_files_fingerprint(store, prefix: str = INVOICE_DIR) -> str:
    """A digest of the invoice files present (key, size, modification time): a sensor cursor that
    changes when an invoice or memo file lands, changes or goes."""
    h = hashlib.sha256()
    for o in store.list(prefix):
        if o.key.lower().endswith(INVOICE_SUFFIXES):
            h.update(f"{o.key}|{o.size}|{o.modified.isoformat()}|{o.etag}\n".encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Combining and resolving
# ---------------------------------------------------------------------------------------------
def _dedupe(records: list[Invoice]) -> tuple[list[Invoice], dict[str, list[str]]]:
    first: dict[str, Invoice] = {}
    copies: dict[str, list[str]] = {}
    for r in sorted(records, key=lambda r: (r.source_file, r.source_row)):
        seen = first.get(r.invoice_id)
        if seen is None:
            first[r.invoice_id] = r
            continue
        a, b = seen.business(), r.business()
        if a != b:
            diff = ", ".join(f"{k}: {a[k]} vs {b[k]}" for k in a if a[k] != b[k])
            raise DuplicateInvoiceError(
                f"invoice {r.invoice_id} appears twice with different contents: {seen.source_file} row "
                f"{seen.source_row} and {r.source_file} row {r.source_row} ({diff}); the earlier is not "
                "overwritten — remove or correct one of the files (a correction is a credit memo)")
        copies.setdefault(r.invoice_id, []).append(f"{r.source_file}#{r.source_row}")
    return list(first.values()), copies


def _resolve(inv: Invoice, by_id: dict[str, Invoice]) -> tuple[str, str | None, Invoice | None]:
    """A memo → (status, reason, the invoice it is netted into)."""
    seen = [inv.invoice_id]
    target = inv.adjusts_invoice_id
    while True:
        t = by_id.get(target)
        if t is None:
            return STATUS_PENDING, f"adjusts invoice {target}, not seen yet: held until it arrives", None
        if target in seen:
            return STATUS_REJECTED, f"memo chain loops: {' -> '.join([*seen, target])}", None
        if not t.is_memo:
            break
        seen.append(target)
        target = t.adjusts_invoice_id
    if t.currency != inv.currency:
        return STATUS_REJECTED, (f"memo in {inv.currency} adjusts invoice {t.invoice_id} in {t.currency}: "
                                 "not netted (amounts in different currencies are never summed)"), None
    if t.billing_account_id != inv.billing_account_id:
        return STATUS_REJECTED, (f"memo for billing account {inv.billing_account_id} adjusts invoice "
                                 f"{t.invoice_id} of billing account {t.billing_account_id}: not netted"), None
    return STATUS_APPLIED, None, t


def periods_applied_to(changed: list[Invoice], known: list[Invoice]) -> tuple[set[tuple[str, str]], list[str]]:
    """The (billing account, billing period) each changed document applies to: an invoice its own; a
    memo the period of the invoice it is netted into, or its own while pending or rejected (noted)."""
    by_id = {r.invoice_id: r for r in known}
    applies, notes = set(), []
    for doc in changed:
        target = doc
        if doc.is_memo:
            _, reason, resolved = _resolve(doc, by_id)
            if resolved is None:
                notes.append(f"{doc.source_file}: memo {doc.invoice_id} {reason}")
            target = resolved or doc
        applies.add((target.billing_account_id, target.billing_period))
    return applies, notes


def read_invoices(files: list[tuple[str, bytes]]) -> pl.DataFrame:
    """Invoice files → one row per document (``INVOICE_SCHEMA``), memos resolved to the invoice and
    billing period they are netted into. Raises ``InvoiceError`` / ``DuplicateInvoiceError``."""
    records = [r for label, content in sorted(files) for r in parse_invoice_file(label, content)]
    unique, copies = _dedupe(records)
    by_id = {r.invoice_id: r for r in unique}
    rows = []
    for r in sorted(unique, key=lambda r: (r.billing_period, r.billing_account_id, r.invoice_id)):
        if r.is_memo:
            status, reason, target = _resolve(r, by_id)
        else:
            status, reason, target = STATUS_INVOICE, None, r
        rows.append({
            "InvoiceId": r.invoice_id, "InvoiceIssuerName": r.issuer, "BillingAccountId": r.billing_account_id,
            "BillingPeriod": r.billing_period, "BillingCurrency": r.currency, "InvoiceTotal": r.total,
            "InvoiceTax": r.tax, "InvoiceCredits": r.credits, "IssuedDate": r.issued_date,
            "AdjustsInvoiceId": r.adjusts_invoice_id, "x_InvoiceKind": KIND_MEMO if r.is_memo else KIND_INVOICE,
            "x_InvoiceStatus": status, "x_StatusReason": reason,
            "x_AppliesToInvoiceId": target.invoice_id if target else None,
            "x_AppliesToPeriod": target.billing_period if target else None,
            "x_InvoiceSource": SOURCE_FILE, "x_SourceFile": r.source_file, "x_SourceRow": r.source_row,
            "x_DuplicateFiles": copies.get(r.invoice_id, []),
        })
    return pl.DataFrame(rows, schema=INVOICE_SCHEMA)


def invoices_from_focus(focus: pl.LazyFrame) -> pl.LazyFrame:
    """Invoice summaries derived from FOCUS rows, per (billing account, billing period, currency,
    InvoiceId): what providers give without invoice files (``INVOICE_SCHEMA``; never a reference)."""
    tax = pl.col("ChargeCategory") == "Tax"
    credit = pl.col("ChargeCategory") == "Credit"
    zero = pl.lit(0, MONEY)
    keys = ["BillingAccountId", "x_BillingPeriod", "BillingCurrency", "InvoiceId"]
    return (focus.group_by(keys)
            .agg(pl.col("InvoiceIssuerName").drop_nulls().first(),
                 pl.col("BilledCost").sum().alias("InvoiceTotal"),
                 pl.when(tax).then(pl.col("BilledCost")).otherwise(zero).sum().alias("InvoiceTax"),
                 pl.when(credit).then(pl.col("BilledCost")).otherwise(zero).sum().alias("InvoiceCredits"),
                 pl.col("x_Source").unique().sort().str.join(",").alias("__sources"))
            .select(
                pl.col("InvoiceId"), pl.col("InvoiceIssuerName"), pl.col("BillingAccountId"),
                pl.col("x_BillingPeriod").alias("BillingPeriod"), pl.col("BillingCurrency"),
                pl.col("InvoiceTotal").cast(MONEY), pl.col("InvoiceTax").cast(MONEY),
                pl.col("InvoiceCredits").cast(MONEY),
                pl.lit(None, pl.Date).alias("IssuedDate"), pl.lit(None, pl.String).alias("AdjustsInvoiceId"),
                pl.lit(KIND_INVOICE).alias("x_InvoiceKind"), pl.lit(STATUS_DERIVED).alias("x_InvoiceStatus"),
                pl.lit("summed from focus_costs BilledCost; not an invoice document").alias("x_StatusReason"),
                pl.col("InvoiceId").alias("x_AppliesToInvoiceId"), pl.col("x_BillingPeriod").alias("x_AppliesToPeriod"),
                pl.when(pl.col("InvoiceId").is_not_null()).then(pl.lit(SOURCE_FOCUS_ID))
                .otherwise(pl.lit(SOURCE_FOCUS_DERIVED)).alias("x_InvoiceSource"),
                pl.concat_str([pl.lit("focus_costs:"), pl.col("__sources")]).alias("x_SourceFile"),
                pl.lit(None, pl.Int64).alias("x_SourceRow"),
                pl.lit([], pl.List(pl.String)).alias("x_DuplicateFiles"))
            .sort("BillingPeriod", "BillingAccountId", "BillingCurrency", "InvoiceId", nulls_last=True))


# ---------------------------------------------------------------------------------------------
# What changed: the billing periods whose reconciliation must be re-run
# ---------------------------------------------------------------------------------------------
def reconciliation_period(invoices: pl.DataFrame) -> pl.Expr:
    """The billing period a document is reconciled in: a netted memo its invoice's, else its own."""
    return pl.coalesce(pl.col("x_AppliesToPeriod"), pl.col("BillingPeriod"))


def _period_digests(invoices: pl.DataFrame | None) -> dict[str, str]:
    if invoices is None or invoices.height == 0:
        return {}
    docs = invoices.filter(pl.col("x_InvoiceSource") == SOURCE_FILE)
    cols = [c for c in INVOICE_SCHEMA.names() if c not in ("x_SourceFile", "x_SourceRow", "x_DuplicateFiles")
            and c in docs.columns]
    out: dict[str, list[str]] = {}
    for row in docs.select(reconciliation_period(docs).alias("__p"), *cols).iter_rows():
        out.setdefault(row[0], []).append(json.dumps([str(v) for v in row[1:]]))
    return {p: hashlib.sha256("\n".join(sorted(v)).encode()).hexdigest() for p, v in out.items()}


def affected_periods(previous: pl.DataFrame | None, current: pl.DataFrame) -> list[str]:
    """Billing periods whose invoice documents (incl. memos netted into them) differ between two
    versions of the invoices table: the reconciliation partitions to re-run."""
    before, after = _period_digests(previous), _period_digests(current)
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
