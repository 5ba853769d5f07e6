"""The account catalog: account names and hierarchy from the landing zone's ``accounts/`` folder (no Dagster).

``read_catalog`` reads every file and recognises each format by its content:

- AWS: ``aws organizations list-accounts`` (or ``list-accounts-for-parent``) JSON ``{"Accounts": [{"Id",
  "Name", …}]}``; the console's account export CSV (``Account ID``, ``Name``, …); and the OU tree as an
  ``ou-tree.json``: ``{"Roots": [root]}`` where each root (as ``aws organizations list-roots`` gives it) and
  each OU (as ``list-organizational-units-for-parent`` gives it) carries its children under
  ``"OrganizationalUnits"`` (that call's output for it) and ``"Accounts"`` (``list-accounts-for-parent``'s).
- Azure: ``az account list`` (subscriptions: ``id``, ``name``, ``tenantId``) and ``az account management-group
  show --name <root> --expand --recurse`` (nested ``children`` of type ``Microsoft.Management/managementGroups``
  and ``/subscriptions``).
- GCP: ``gcloud projects list --format=json`` (``projectId``, ``name``, ``parent {type, id}``),
  ``gcloud resource-manager folders list --format=json`` (``name: folders/<n>``, ``displayName``,
  ``parent: folders/<n> | organizations/<n>``), ``gcloud organizations list --format=json`` and
  ``gcloud billing accounts list --format=json`` (``name: billingAccounts/<id>``, ``displayName``).
- OCI: ``oci iam compartment list --all --compartment-id-in-subtree true [--include-root]`` JSON
  (``{"data": [{"id", "name", "compartment-id", "lifecycle-state"}]}``); the tenancy is the root (named when
  ``--include-root`` lists it, else shown by its OCID).
- A simple CSV: ``provider,account_id,account_name,kind,path`` (provider aws|azure|gcp|oci|any; kind
  billing|sub|any, empty = any; path ``Root/Engineering`` names from the top, the account excluded).

Which FOCUS column an entry fills (``AccountKind``): AWS accounts ``any`` (a payer is BillingAccountId, a
linked account SubAccountId, the payer is both); Azure subscriptions ``any`` (SubAccountId, and
BillingAccountId when the export has no billing account); GCP projects ``sub`` (SubAccountId = project id),
GCP billing accounts ``billing``; OCI compartments ``sub``, the tenancy ``any`` (BillingAccountId, and
SubAccountId on root-compartment rows). Ids match case-insensitively (Azure GUIDs are written either way).

An account named differently in two files, or placed under different parents, is a ``CatalogError``
naming both files; every other unreadable input is a ``CatalogError`` naming the file, the line or JSON
path, and the column.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field

import polars as pl

CATALOG_DIR = "accounts"
CATALOG_SUFFIXES = (".csv", ".json")
LEVELS = 6
LEVEL_COLUMNS = [f"x_AccountLevel{i}" for i in range(1, LEVELS + 1)]
HIERARCHY_COLUMNS = ["x_AccountName", "x_AccountPath", *LEVEL_COLUMNS]
CATALOG_SCHEMA = pl.Schema({
    "x_Provider": pl.String, "AccountId": pl.String, "AccountName": pl.String, "AccountKind": pl.String,
    "x_AccountPath": pl.String, **{c: pl.String for c in LEVEL_COLUMNS}, "x_CatalogFile": pl.String})
PROVIDERS = ("aws", "azure", "gcp", "oci", "any")
BILLING, SUB, ANY = "billing", "sub", "any"
KINDS = (BILLING, SUB, ANY)
SIMPLE_COLUMNS = ["provider", "account_id", "account_name", "kind", "path"]
CATALOG_NOTE = "{}: from the account catalog ({})"  # column, catalog file: appended to x_SourceChanges
PROVIDER_OF_FORMAT = {"aws-cur": "aws", "azure-cost-details": "azure", "gcp-billing": "gcp", "oci-cost": "oci"}
SHOWN = 20  # accounts listed in coverage metadata


class CatalogError(ValueError):
    """An account catalog file that cannot be read, in one line: file, line or JSON path, column, what."""


# ---------------------------------------------------------------------------------------------
# Reading: every format to nodes (accounts and the containers above them)
# ---------------------------------------------------------------------------------------------
@dataclass
class _Node:
    """An account (``kind`` set) or a container (OU, management group, folder, organization, compartment
    above accounts) as one file states it."""
    provider: str
    key: str  # unique within the provider: accounts by id, containers by their own id
    name: str | None
    file: str
    where: str
    kind: str | None = None  # billing|sub|any for accounts; None for containers
    parent: str | None = None  # the key of the container above it
    path: str | None = None  # simple CSV: the path as written (no parent nodes)


def _fail(file: str, where: str, column: str, what: str) -> CatalogError:
    return CatalogError(f"{file} {where}: {f'{column}: ' if column else ''}{what}")


def _text(obj: dict, column: str, file: str, where: str, required: bool = True) -> str | None:
    value = obj.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _fail(file, where, column, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail(file, where, column, f"expected text, found {type(value).__name__}")
    return str(value).strip()


def _items(value: object, file: str, where: str) -> list[dict]:
    if not isinstance(value, list):
        raise _fail(file, where, "", f"expected a list, found {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _fail(file, f"{where}[{i}]", "", f"expected an object, found {type(item).__name__}")
    return value


def _aws_accounts(items: list[dict], file: str, where: str, parent: str | None) -> list[_Node]:
    out = []
    for i, a in enumerate(_items(items, file, where)):
        at = f"{where}[{i}]"
        out.append(_Node("aws", _text(a, "Id", file, at), _text(a, "Name", file, at), file, at, ANY, parent))
    return out


def _aws_tree(node: dict, file: str, where: str, parent: str | None) -> list[_Node]:
    key = _text(node, "Id", file, where)
    out = [_Node("aws", key, _text(node, "Name", file, where), file, where, None, parent)]
    out += _aws_accounts(node.get("Accounts", []), file, f"{where}.Accounts", key)
    for i, ou in enumerate(_items(node.get("OrganizationalUnits", []), file, f"{where}.OrganizationalUnits")):
        out += _aws_tree(ou, file, f"{where}.OrganizationalUnits[{i}]", key)
    return out


AZURE_GROUP, AZURE_SUBSCRIPTION = "Microsoft.Management/managementGroups", "/subscriptions"


def _azure_group(node: dict, file: str, where: str, parent: str | None) -> list[_Node]:
    props = node.get("properties", node)  # the REST body nests them; az prints them flattened
    kind = node.get("type")
    if kind not in (AZURE_GROUP, AZURE_SUBSCRIPTION, "/providers/" + AZURE_GROUP):
        raise _fail(file, where, "type", f"{kind!r} is neither {AZURE_GROUP} nor {AZURE_SUBSCRIPTION}")
    name = _text(node, "name", file, where)
    display = _text(props, "displayName", file, where, required=False)
    if kind == AZURE_SUBSCRIPTION:
        return [_Node("azure", name, display, file, where, ANY, parent)]
    key = f"mg:{name}"
    out = [_Node("azure", key, display or name, file, where, None, parent)]
    for i, child in enumerate(_items(props.get("children") or [], file, f"{where}.children")):
        out += _azure_group(child, file, f"{where}.children[{i}]", key)
    return out


def _gcp_parent(value: object, file: str, where: str) -> str | None:
    """``folders/1`` / ``organizations/2`` (folders list) or ``{"type": "folder", "id": "1"}`` (projects list)."""
    if value is None:
        return None
    if isinstance(value, dict):
        kind, ident = _text(value, "type", file, f"{where}.parent"), _text(value, "id", file, f"{where}.parent")
        return f"{kind}s/{ident}"
    if isinstance(value, str) and value.startswith(("folders/", "organizations/")):
        return value
    raise _fail(file, where, "parent", f"{value!r} is not folders/<id> or organizations/<id>")


def _gcp(items: list[dict], file: str) -> list[_Node]:
    out = []
    for i, item in enumerate(items):
        at = f"$[{i}]"
        if "projectId" in item:
            out.append(_Node("gcp", _text(item, "projectId", file, at), _text(item, "name", file, at, False), file,
                             at, SUB, _gcp_parent(item.get("parent"), file, at)))
            continue
        name = _text(item, "name", file, at)
        display = _text(item, "displayName", file, at)
        if name.startswith("billingAccounts/"):
            out.append(_Node("gcp", name.removeprefix("billingAccounts/"), display, file, at, BILLING))
        elif name.startswith(("folders/", "organizations/")):
            out.append(_Node("gcp", name, display, file, at, None, _gcp_parent(item.get("parent"), file, at)))
        else:
            raise _fail(file, at, "name", f"{name!r} is not a project, folder, organization or billing account")
    return out


def _oci(items: list[dict], file: str) -> list[_Node]:
    out, listed = [], set()
    for i, c in enumerate(items):
        at = f"$.data[{i}]"
        ident = _text(c, "id", file, at)
        listed.add(ident)
        if ident.startswith("ocid1.tenancy."):  # the root compartment (--include-root)
            out.append(_Node("oci", ident, _text(c, "name", file, at), file, at, ANY))
        else:
            out.append(_Node("oci", ident, _text(c, "name", file, at), file, at, SUB,
                             _text(c, "compartment-id", file, at)))
    for parent in sorted({n.parent for n in out if n.parent and n.parent not in listed
                          and n.parent.startswith("ocid1.tenancy.")}):  # a tenancy not listed: named by its OCID
        out.append(_Node("oci", parent, None, file, "$.data", ANY))
    return out


def _json_nodes(data: object, file: str) -> list[_Node]:
    if isinstance(data, dict) and "Accounts" in data and "Roots" not in data:
        return _aws_accounts(data["Accounts"], file, "$.Accounts", None)
    if isinstance(data, dict) and "Roots" in data:
        return [n for i, root in enumerate(_items(data["Roots"], file, "$.Roots"))
                for n in _aws_tree(root, file, f"$.Roots[{i}]", None)]
    if isinstance(data, dict) and str(data.get("type", "")).endswith(AZURE_GROUP):
        return _azure_group(data, file, "$", None)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return _oci(_items(data["data"], file, "$.data"), file)
    if isinstance(data, list):
        items = _items(data, file, "$")
        if all("tenantId" in s for s in items) and items:
            return [_Node("azure", _text(s, "id", file, f"$[{i}]"), _text(s, "name", file, f"$[{i}]", False), file,
                          f"$[{i}]", ANY) for i, s in enumerate(items)]
        return _gcp(items, file)
    raise CatalogError(f"{file}: not an account catalog format this platform reads (AWS list-accounts or "
                       "ou-tree.json, az account list or management-group show, gcloud projects/folders/"
                       "organizations/billing accounts list, oci iam compartment list)")


AWS_CONSOLE_ID, AWS_CONSOLE_NAME = "Account ID", "Name"


def _csv_nodes(text: str, file: str) -> list[_Node]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    simple = header[:3] == SIMPLE_COLUMNS[:3]
    if not simple and not {AWS_CONSOLE_ID, AWS_CONSOLE_NAME} <= set(header):
        raise CatalogError(f"{file} line 1: header {', '.join(header) or '(empty)'}: expected "
                           f"{','.join(SIMPLE_COLUMNS)} or the AWS console's account export "
                           f"({AWS_CONSOLE_ID}, {AWS_CONSOLE_NAME}, …)")
    out = []
    for row in reader:
        where = f"line {reader.line_num}"
        if not simple:
            out.append(_Node("aws", _text(row, AWS_CONSOLE_ID, file, where), _text(row, AWS_CONSOLE_NAME, file, where),
                             file, where, ANY))
            continue
        provider = (_text(row, "provider", file, where) or "").lower()
        if provider not in PROVIDERS:
            raise _fail(file, where, "provider", f"{provider!r} is not one of {', '.join(PROVIDERS)}")
        kind = (_text(row, "kind", file, where, required=False) or ANY).lower()
        if kind not in KINDS:
            raise _fail(file, where, "kind", f"{kind!r} is not one of {', '.join(KINDS)}")
        path = _text(row, "path", file, where, required=False)
        if path is not None and any(not p.strip() for p in path.split("/")):
            raise _fail(file, where, "path", f"{path!r} has an empty part")
        out.append(_Node(provider, _text(row, "account_id", file, where), _text(row, "account_name", file, where),
                         file, where, kind, path=path))
    return out


def _read_file(file: str, content: bytes) -> list[_Node]:
    """One catalog file's nodes, its format recognised from its content."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    if file.lower().endswith(".csv"):
        return _csv_nodes(text, file)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{file} line {exc.lineno} column {exc.colno}: invalid JSON ({exc.msg})") from None
    return _json_nodes(data, file)


# ---------------------------------------------------------------------------------------------
# Combining the files into one catalog frame
# ---------------------------------------------------------------------------------------------
def _merge(nodes: list[_Node]) -> dict[tuple[str, str], _Node]:
    """One node per (provider, key): the files must agree on its name and its parent."""
    merged: dict[tuple[str, str], _Node] = {}
    for n in nodes:
        k = (n.provider, n.key.lower())
        seen = merged.get(k)
        if seen is None:
            merged[k] = n
            continue
        for what, a, b in (("name", seen.name, n.name), ("parent", seen.parent, n.parent),
                           ("path", seen.path, n.path)):
            if a is not None and b is not None and a != b:
                raise CatalogError(f"account {n.key}: {what} {a!r} in {seen.file} ({seen.where}) but {b!r} in "
                                   f"{n.file} ({n.where})")
        kind = seen.kind or n.kind if None in (seen.kind, n.kind) or seen.kind == n.kind else ANY
        merged[k] = _Node(seen.provider, seen.key, seen.name or n.name, seen.file if seen.name else n.file,
                          seen.where, kind, seen.parent or n.parent, seen.path or n.path)
    return merged


def _path(node: _Node, merged: dict[tuple[str, str], _Node]) -> str | None:
    if node.path is not None:
        return node.path
    names, seen, parent = [], {node.key.lower()}, node.parent
    while parent is not None:
        if parent.lower() in seen:
            raise CatalogError(f"{node.file} ({node.where}): account {node.key}: its parents form a cycle at {parent}")
        seen.add(parent.lower())
        above = merged.get((node.provider, parent.lower()))
        names.append(above.name if above and above.name else parent)
        parent = above.parent if above else None
    return "/".join(reversed(names)) or None


def _catalog_frame(rows: list[dict]) -> pl.DataFrame:
    for r in rows:
        parts = r["x_AccountPath"].split("/") if r["x_AccountPath"] else []
        r.update({c: parts[i] if i < len(parts) else None for i, c in enumerate(LEVEL_COLUMNS)})
    return pl.DataFrame(rows, schema=CATALOG_SCHEMA).sort("x_Provider", "AccountId")


def read_catalog(files: list[tuple[str, bytes]]) -> pl.DataFrame:
    """Every file's accounts as one frame (``CATALOG_SCHEMA``), one row per account, sorted by provider and id;
    ``x_AccountPath`` the names of the containers above the account from the top, ``x_AccountLevel1..6``
    its parts (deeper parts are in the path only). FOCUS rows are matched by id alone, so one id (any
    provider, any case) named two ways is refused, naming both files."""
    merged = _merge([n for file, content in files for n in _read_file(file, content)])
    rows = [{"x_Provider": n.provider, "AccountId": n.key, "AccountName": n.name, "AccountKind": n.kind,
             "x_AccountPath": _path(n, merged), "x_CatalogFile": n.file}
            for n in merged.values() if n.kind is not None]
    catalog = _catalog_frame(rows)
    clash = (catalog.group_by(pl.col("AccountId").str.to_lowercase())
             .agg(pl.col("AccountName").drop_nulls().unique(), pl.col("x_CatalogFile").unique())
             .filter(pl.col("AccountName").list.len() > 1).sort("AccountId"))
    if clash.height:
        r = clash.row(0, named=True)
        names = " and ".join(repr(n) for n in sorted(map(str, r["AccountName"])))
        raise CatalogError(f"account {r['AccountId']}: named {names} in {' and '.join(sorted(r['x_CatalogFile']))}")
    return catalog


def catalog_files(store, prefix: str = CATALOG_DIR) -> list[tuple[str, bytes]]:
    """``(key, bytes)`` of every catalog file under ``<landing root>/accounts`` (any landing store)."""
    return [(o.key, store.read_bytes(o.key)) for o in store.list(prefix)
            if o.key.lower().endswith(CATALOG_SUFFIXES) and not o.key.rsplit("/", 1)[-1].startswith(".")]


def catalog_files_fingerprint(store, prefix: str = CATALOG_DIR) -> str:
    """A digest of the catalog files present (key, size, version tag): changes when one lands, changes or goes."""
    listed = [f"{o.key}|{o.size}|{o.etag}" for o in store.list(prefix) if o.key.lower().endswith(CATALOG_SUFFIXES)]
    return hashlib.sha256("\n".join(listed).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Using the catalog on FOCUS rows: lazy joins on the small catalog frame
# ---------------------------------------------------------------------------------------------
def _side(catalog: pl.DataFrame, kinds: tuple[str, ...], prefix: str) -> pl.LazyFrame:
    """The catalog entries that can fill one side (billing or sub account), keyed by the lower-cased id."""
    return (catalog.lazy().filter(pl.col("AccountKind").is_in(kinds))
            .select(pl.col("AccountId").str.to_lowercase().alias(f"{prefix}key"),
                    pl.col("AccountName").alias(f"{prefix}name"), pl.col("x_CatalogFile").alias(f"{prefix}file"),
                    *[pl.col(c).alias(f"{prefix}{c}") for c in ["x_AccountPath", *LEVEL_COLUMNS]],
                    pl.lit(True).alias(f"{prefix}found"))
            .unique(f"{prefix}key", keep="first"))


def _joined(focus: pl.LazyFrame, catalog: pl.DataFrame) -> pl.LazyFrame:
    return (focus
            .with_columns(pl.col("BillingAccountId").str.to_lowercase().alias("__b_key"),
                          pl.col("SubAccountId").str.to_lowercase().alias("__s_key"))
            .join(_side(catalog, (BILLING, ANY), "__b_"), on="__b_key", how="left", maintain_order="left")
            .join(_side(catalog, (SUB, ANY), "__s_"), on="__s_key", how="left", maintain_order="left"))


def fill_account_names(focus: pl.LazyFrame, catalog: pl.DataFrame | None) -> pl.LazyFrame:
    """BillingAccountName / SubAccountName filled from the catalog where the export left them null (a name the
    provider delivered is never replaced), each fill noted in ``x_SourceChanges`` as
    ``"SubAccountName: from the account catalog (<file>)"``. The columns and their order stay as they were."""
    if catalog is None or catalog.height == 0:
        return focus
    columns = focus.collect_schema().names()
    fill_b = pl.col("BillingAccountName").is_null() & pl.col("__b_name").is_not_null()
    fill_s = pl.col("SubAccountName").is_null() & pl.col("__s_name").is_not_null()
    changes = pl.col("x_SourceChanges").fill_null(pl.lit([], pl.List(pl.String)))
    notes = pl.concat_list(
        changes,
        pl.when(fill_b).then(pl.format(CATALOG_NOTE, pl.lit("BillingAccountName"), pl.col("__b_file"))),
        pl.when(fill_s).then(pl.format(CATALOG_NOTE, pl.lit("SubAccountName"), pl.col("__s_file")))).list.drop_nulls()
    return _joined(focus, catalog).with_columns(
        pl.when(fill_b).then(pl.col("__b_name")).otherwise(pl.col("BillingAccountName")).alias("BillingAccountName"),
        pl.when(fill_s).then(pl.col("__s_name")).otherwise(pl.col("SubAccountName")).alias("SubAccountName"),
        pl.when(fill_b | fill_s).then(notes).otherwise(pl.col("x_SourceChanges")).alias("x_SourceChanges"),
    ).select(columns)


def with_hierarchy(focus: pl.LazyFrame, catalog: pl.DataFrame | None) -> pl.LazyFrame:
    """FOCUS rows plus ``x_AccountName``, ``x_AccountPath``, ``x_AccountLevel1..6`` of the account each row is
    attributed to: the SubAccountId's catalog entry, else the BillingAccountId's. ``x_AccountName`` falls back
    to the row's SubAccountName, then BillingAccountName; the hierarchy columns are null without an entry."""
    fallback = pl.coalesce("SubAccountName", "BillingAccountName")
    if catalog is None or catalog.height == 0:
        return focus.with_columns(fallback.alias("x_AccountName"),
                                  *[pl.lit(None, pl.String).alias(c) for c in ["x_AccountPath", *LEVEL_COLUMNS]])
    columns = focus.collect_schema().names()
    sub = pl.col("__s_found").fill_null(False)

    def pick(column: str) -> pl.Expr:
        return pl.when(sub).then(pl.col(f"__s_{column}")).otherwise(pl.col(f"__b_{column}")).alias(column)

    return _joined(focus, catalog).with_columns(
        pl.coalesce(pl.when(sub).then(pl.col("__s_name")).otherwise(pl.col("__b_name")), fallback)
        .alias("x_AccountName"),
        *[pick(c) for c in ["x_AccountPath", *LEVEL_COLUMNS]],
    ).select(*columns, *HIERARCHY_COLUMNS)


def _entries_of(catalog: pl.DataFrame, account_ids: Iterable[str | None]) -> pl.DataFrame:
    ids = sorted({a.lower() for a in account_ids if a})
    return catalog.filter(pl.col("AccountId").str.to_lowercase().is_in(ids))


def catalog_digest(catalog: pl.DataFrame | None, account_ids: Iterable[str | None]) -> str:
    """A digest of the catalog entries of these accounts (name, kind, path, file): what a FOCUS partition's
    names depend on. ``""`` when the catalog names none of them."""
    if catalog is None:
        return ""
    entries = _entries_of(catalog, account_ids)
    if entries.height == 0:
        return ""
    rows = entries.sort("x_Provider", "AccountId").rows()
    return hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()[:32]


def entry_digests(catalog: pl.DataFrame) -> dict[str, str]:
    """Lower-cased account id → a short digest of its entries: two catalogs differ for an account exactly
    when it was added, removed, renamed or moved (a sensor cursor)."""
    out: dict[str, str] = {}
    for (key,), group in catalog.group_by(pl.col("AccountId").str.to_lowercase()):
        rows = group.sort("x_Provider", "AccountId").rows()
        out[key.lower()] = hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()[:12]
    return out


def changed_accounts(before: dict[str, str], after: dict[str, str]) -> set[str]:
    """Lower-cased ids of the accounts added, removed or changed between two ``entry_digests``."""
    return {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}


def bill_accounts(focus: pl.LazyFrame) -> list[str]:
    """The distinct BillingAccountId and SubAccountId values of FOCUS rows (two columns read)."""
    ids = focus.select(pl.concat_list("BillingAccountId", "SubAccountId").alias("id")).explode("id").unique()
    return sorted(i for i in ids.collect(engine="streaming")["id"].to_list() if i is not None)


def names_filled(focus: pl.LazyFrame) -> int:
    """Rows whose account name came from the catalog (their ``x_SourceChanges`` note)."""
    note = pl.element().str.contains(": from the account catalog (", literal=True)
    return int(focus.select(pl.col("x_SourceChanges").list.eval(note).list.any().fill_null(False).sum())
               .collect(engine="streaming").item())


@dataclass
class CatalogCoverage:
    not_in_bill: list[str] = field(default_factory=list)  # catalog accounts (of the bill's provider) not billed
    missing: list[str] = field(default_factory=list)  # billed accounts without a catalog entry

    def metadata(self) -> dict[str, object]:
        return {"catalog_accounts_not_in_bill": len(self.not_in_bill),
                "catalog_accounts_not_in_bill_first": self.not_in_bill[:SHOWN],
                "bill_accounts_missing_from_catalog": len(self.missing),
                "bill_accounts_missing_from_catalog_first": self.missing[:SHOWN]}


def coverage(catalog: pl.DataFrame | None, accounts_in_bill: Iterable[str | None], *,
             provider: str | None = None) -> CatalogCoverage:
    """Catalog accounts the bill does not name, and billed accounts the catalog lacks (case-insensitive ids);
    ``provider`` (aws|azure|gcp|oci): only that provider's (and ``any``) catalog entries count as expected."""
    billed = {a.lower(): a for a in accounts_in_bill if a}
    if catalog is None:
        return CatalogCoverage([], sorted(billed.values()))
    if provider is not None:
        catalog = catalog.filter(pl.col("x_Provider").is_in([provider, ANY]))
    listed = {a.lower(): a for a in catalog["AccountId"].to_list()}
    return CatalogCoverage(sorted(v for k, v in listed.items() if k not in billed),
                           sorted(v for k, v in billed.items() if k not in listed))
