"""Reading and validating allocation rules files (YAML) into ``allocation.model`` objects (no Dagster here).

``load_rules(data, path)`` parses one rules file, ``read_settings`` the landing zone's
``allocation/settings.yaml`` (``active:`` and optional ``candidate:`` rules files), ``select_rules`` picks
the active and candidate rules from the rules files present, and ``default_rules`` is what runs without
any: one dimension ``owner``, everything ``unallocated``.

Every problem is one ``RulesError`` line naming the file, the YAML path (``pools[1].weights``) and what
is wrong: YAML syntax (with line), a key written twice in one mapping, an unknown or missing field, a
wrong type, a bad regex (checked with Python ``re`` and with Polars, whose regex dialect the engine
uses), an unknown operator, method, measure or option, fixed weights that do not sum to exactly 100
(Decimal), a negative weight, a value named twice, an undeclared dimension, duplicate ids or
dimensions, a dimension name that is not a plain identifier or collides with a ``cost_allocations``
column, a cycle among pools (``a → b → a``) and a pool that is a target of another pool. A rule
that matches nothing can only be seen on data: the engine reports it.

YAML is read by ``yamltext.load``: decimals load as ``Decimal`` (never through a float), dates as their
text; values YAML reads as something else than text (``yes``/``no`` as booleans, ``0123`` as a number)
are refused where text is expected, with a hint to quote them.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from decimal import Decimal

import polars as pl

from focus_platform import yamltext
from focus_platform.allocation.model import (
    BASIS_MAX,
    BASIS_REQUESTS,
    BASIS_USAGE,
    DRIVER,
    EQUALS,
    EVEN,
    EXISTS,
    FIXED,
    FIXED_COLUMNS,
    IDLE_OWNER,
    IDLE_SHARE,
    IN,
    MEASURES,
    METHODS,
    ON_ZERO_ERROR,
    ON_ZERO_EVEN,
    OPERATORS,
    PREFIX,
    PROPORTIONAL,
    REGEX,
    RULE_DEFAULT,
    RULE_TAGS,
    ColumnValue,
    Condition,
    Dimension,
    Kubernetes,
    Match,
    NamespaceOwner,
    Pool,
    Rules,
    VirtualTag,
)
from focus_platform.periods import BillingPeriod, PeriodError
from focus_platform.spec.columns import focus_columns

ALLOCATION_FOLDER = "allocation"  # under the landing root: settings.yaml and rules/*.yaml
SETTINGS_FILE = f"{ALLOCATION_FOLDER}/settings.yaml"
TAG_PREFIX = "tag:"
DIMENSION_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # virtual tag and pool ids, driver names (folder names)
RESERVED_RULE_IDS = (RULE_TAGS, RULE_DEFAULT)  # x_AllocationRuleId values of rows no virtual tag or pool decided
DEFAULT_RULES_YAML = b"name: default\nversion: built-in\ndimensions:\n  - name: owner\n"

RULES_FIELDS = ("name", "version", "applies_from", "dimensions", "virtual_tags", "pools", "kubernetes")
DIMENSION_FIELDS = ("name", "tag_keys", "values", "required", "max_values", "default")
VIRTUAL_TAG_FIELDS = ("id", "match", "set", "override")
METHOD_OPTIONS = ("targets", "weights", "measure", "driver", "on_zero")  # pool fields that depend on the method
POOL_FIELDS = ("id", "match", "dimension", "method", *METHOD_OPTIONS)
# the pool fields each method uses (besides id, match, dimension, method) and those it requires
METHOD_FIELDS = {EVEN: ("targets",), PROPORTIONAL: ("targets", "measure", "on_zero"), FIXED: ("weights",),
                 DRIVER: ("driver", "on_zero", "targets")}
METHOD_REQUIRES = {EVEN: (), PROPORTIONAL: (), FIXED: ("weights",), DRIVER: ("driver",)}
KUBERNETES_FIELDS = ("basis", "cpu_weight", "idle", "idle_values", "namespaces")
NAMESPACE_FIELDS = ("pattern", "set")
SETTINGS_FIELDS = ("active", "candidate")
WEIGHT_DECIMALS = 12  # a weight has at most Decimal(38,12)'s scale


class RulesError(ValueError):
    """A rules or settings file that cannot be used: one line naming the file, the YAML path and the problem."""


@dataclass(frozen=True)
class AllocationSettings:
    """``allocation/settings.yaml``: the active rules file and an optional candidate run beside it (shadow mode);
    both as paths relative to ``<landing>/allocation/`` (``rules/<file>.yaml``)."""
    active: str
    candidate: str | None = None


# ---------------------------------------------------------------------------------------------
# Normalization (the engine normalizes the bill's tag keys and values with these)
# ---------------------------------------------------------------------------------------------
def normalize_tag_key(key: str) -> str:
    """A tag key as rules compare it: case-folded, trimmed, '_' and ' ' read as '-' (provider prefixes kept)."""
    return key.strip().casefold().replace("_", "-").replace(" ", "-")


def normalize_value(value: str) -> str:
    """A raw tag value as value maps compare it: case-folded and trimmed."""
    return value.strip().casefold()


def rules_digest(data: bytes) -> str:
    """The rules-file version hash: the first 16 hex digits of the sha256 of its bytes."""
    return hashlib.sha256(data).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------
def load_rules(data: bytes, path: str) -> Rules:
    """One rules file, validated; ``path`` names it in errors and in ``Rules.path``."""
    root = _Where(path)
    fields = _fields(root, _parse_yaml(data, path), RULES_FIELDS, ("name", "version", "dimensions"))
    dimensions = _dimensions(root["dimensions"], fields["dimensions"])
    declared = tuple(d.name for d in dimensions)
    virtual_tags = _optional(root, fields, "virtual_tags", lambda at, node: _virtual_tags(at, node, declared), ())
    pools = _optional(root, fields, "pools", lambda at, node: _pools(at, node, declared), ())
    _check_unique_ids(root, virtual_tags, pools)
    _check_pool_graph(root["pools"], pools)
    return Rules(
        name=_text(root["name"], fields["name"]),
        version=_text(root["version"], fields["version"]),
        digest=rules_digest(data),
        path=path,
        dimensions=dimensions,
        virtual_tags=virtual_tags,
        pools=pools,
        kubernetes=_optional(root, fields, "kubernetes", lambda at, node: _kubernetes(at, node, declared), None),
        applies_from=_optional(root, fields, "applies_from", _period, None),
    )


def default_rules() -> Rules:
    """The built-in rules without any rules file: one dimension ``owner``, no rules (everything ``unallocated``)."""
    return load_rules(DEFAULT_RULES_YAML, "(built-in default rules)")


def read_settings(data: bytes, path: str) -> AllocationSettings:
    """``active: rules/<file>.yaml`` and optionally ``candidate: rules/<file>.yaml``; any other key is refused."""
    root = _Where(path)
    fields = _fields(root, _parse_yaml(data, path), SETTINGS_FIELDS, ("active",))
    return AllocationSettings(active=_text(root["active"], fields["active"]),
                              candidate=_optional(root, fields, "candidate", _text, None))


def select_rules(files: dict[str, bytes], settings: bytes | None) -> tuple[Rules, Rules | None]:
    """The active and candidate rules. ``files``: the rules files present, keyed by their path relative to
    ``<landing>/allocation/`` (``rules/<file>.yaml``, as the settings name them); ``settings``: the bytes of
    ``allocation/settings.yaml`` or None. Without settings, a single rules file is active; without any rules
    file, the built-in default rules are. Errors and ``Rules.path`` name a rules file by its path under the
    landing root (``allocation/rules/<file>.yaml``)."""
    if settings is not None:
        chosen = read_settings(settings, SETTINGS_FILE)
        active = _named_rules(files, chosen.active, "active")
        return active, _named_rules(files, chosen.candidate, "candidate") if chosen.candidate else None
    if not files:
        return default_rules(), None
    if len(files) > 1:
        raise RulesError(f"{SETTINGS_FILE}: missing, and there are {len(files)} rules files "
                         f"({', '.join(sorted(files))}): name the active one (active: <file>)")
    [(name, data)] = files.items()
    return load_rules(data, f"{ALLOCATION_FOLDER}/{name}"), None


def _named_rules(files: dict[str, bytes], name: str, role: str) -> Rules:
    if name not in files:
        present = ", ".join(sorted(files)) or "none"
        raise RulesError(f"{SETTINGS_FILE}: {role}: rules file {name!r} does not exist; rules files: {present}")
    return load_rules(files[name], f"{ALLOCATION_FOLDER}/{name}")


# ---------------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------------
def _parse_yaml(data: bytes, path: str) -> object:
    try:
        return yamltext.load(data, path)
    except yamltext.YamlError as e:
        raise RulesError(str(e)) from None


# ---------------------------------------------------------------------------------------------
# _Where a value sits, and checks of one value
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Where:
    """A position in a file: the file and the YAML path (``pools[1].weights``)."""
    file: str
    path: str = ""

    def __getitem__(self, key: object) -> _Where:
        if isinstance(key, int) and not isinstance(key, bool):
            return _Where(self.file, f"{self.path}[{key}]")
        if isinstance(key, str) and re.fullmatch(r"[A-Za-z_][\w:-]*", key):
            return _Where(self.file, f"{self.path}.{key}" if self.path else key)
        return _Where(self.file, f"{self.path}[{key!r}]")

    def error(self, problem: str) -> RulesError:
        return RulesError(f"{self.file}: {self.path}: {problem}" if self.path else f"{self.file}: {problem}")


def _describe(value: object) -> str:
    """``yamltext.describe``, and for a boolean why an unquoted yes or off in a rules file became one."""
    hint = "; YAML reads yes/no/on/off/true/false as booleans" if isinstance(value, bool) else ""
    return yamltext.describe(value) + hint


def _quote_hint(value: object) -> str:
    return "; quote it" if isinstance(value, bool | int | Decimal) else ""


def _optional(where: _Where, fields: dict, key: str, parse, default):
    """``parse(where[key], fields[key])`` when the field is present (an explicit null is a wrong type), else
    ``default``."""
    return parse(where[key], fields[key]) if key in fields else default


def _fields(where: _Where, node: object, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
    if problem := yamltext.fields_problem(node, allowed, required, described=_describe):
        raise where.error(problem)
    return node  # type: ignore[return-value]


def _text(where: _Where, value: object) -> str:
    if not isinstance(value, str):
        raise where.error(f"must be text, not {_describe(value)}{_quote_hint(value)}")
    if not value.strip():
        raise where.error("must not be empty")
    return value


def _key_text(where: _Where, key: object) -> str:
    """A mapping key that must be text (YAML reads ``no:`` as a boolean key, ``0123:`` as a number)."""
    if not isinstance(key, str) or not key.strip():
        raise where.error(f"key {key!r} must be text, not {_describe(key)}{_quote_hint(key)}")
    return key


def _texts(where: _Where, value: object) -> tuple[str, ...]:
    """A non-empty list of texts, none named twice."""
    items = _list(where, value)
    texts = tuple(_text(where[i], item) for i, item in enumerate(items))
    for i, text in enumerate(texts):
        if text in texts[:i]:
            raise where[i].error(f"{text!r} is named twice (also at [{texts.index(text)}])")
    return texts


def _list(where: _Where, value: object) -> list:
    if not isinstance(value, list):
        raise where.error(f"must be a list, not {_describe(value)}")
    if not value:
        raise where.error("must not be an empty list (leave the field out instead)")
    return value


def _mapping(where: _Where, value: object) -> dict:
    if not isinstance(value, dict):
        raise where.error(f"must be a mapping, not {_describe(value)}")
    if not value:
        raise where.error("must not be an empty mapping (leave the field out instead)")
    return value


def _flag(where: _Where, value: object) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"must be true or false, not {_describe(value)}")
    return value


def _number(where: _Where, value: object) -> Decimal:
    """A number YAML read as an int or a Decimal (``.inf`` and ``.nan`` stay text: no amount)."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise where.error(f"must be a finite number, not {_describe(value)}")
    return Decimal(value)


def _choice(where: _Where, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise where.error(f"unknown value {value!r}{yamltext.did_you_mean(value, allowed)}; "
                          f"allowed: {', '.join(allowed)}")
    return value


def _period(where: _Where, value: object) -> str:
    if not isinstance(value, str):
        raise where.error(f"must be a month as text YYYY-MM, not {_describe(value)}{_quote_hint(value)}")
    try:
        return str(BillingPeriod.parse(value, "applies_from"))
    except PeriodError as e:
        raise where.error(str(e)) from None


def _pattern(where: _Where, value: object) -> str:
    """A regex both Python ``re`` and Polars (the engine's dialect: no look-around, no back-references) accept."""
    pattern = _text(where, value)
    try:
        re.compile(pattern)
    except re.error as e:
        raise where.error(f"bad regex {pattern!r}: {e}") from None
    try:
        pl.select(pl.lit("").str.contains(pattern))
    except pl.exceptions.ComputeError as e:
        raise where.error(f"bad regex {pattern!r} for Polars (the engine's regex dialect): "
                          f"{_polars_regex_problem(str(e))}") from None
    return pattern


def _polars_regex_problem(message: str) -> str:
    """The one line of a Polars regex error that says what is wrong (it spans several lines)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return next((line.removeprefix("error: ") for line in lines if line.startswith("error:")), lines[0])


# ---------------------------------------------------------------------------------------------
# Columns and matches
# ---------------------------------------------------------------------------------------------
@functools.cache
def _focus_column_names() -> tuple[str, ...]:
    return tuple(c.name for c in focus_columns())


def _column(where: _Where, name: object, allow_tags: bool = True) -> str:
    """A column a rule reads: a FOCUS 1.2 column, an ``x_`` column (account catalog, lineage) or, in matches,
    ``tag:<key>`` (the key normalized)."""
    text = _key_text(where, name)
    if allow_tags and text.startswith(TAG_PREFIX):
        key = normalize_tag_key(text.removeprefix(TAG_PREFIX))
        if not key:
            raise where.error(f"column {text!r} names no tag key (tag:<key>)")
        return TAG_PREFIX + key
    focus = _focus_column_names()
    if text in focus or (text.startswith("x_") and len(text) > 2):
        return text
    allowed = "a FOCUS 1.2 column, an x_ column (x_AccountPath, x_AccountLevel2, …)" + (
        " or tag:<key>" if allow_tags else "")
    raise where.error(f"unknown column {text!r}{yamltext.did_you_mean(text, focus)}; allowed: {allowed}")


def _match(where: _Where, node: object) -> Match:
    """``{column: {operator: value}}``; several columns or operators AND together; ``{}`` matches every row."""
    if not isinstance(node, dict):
        raise where.error(f"must be a mapping of column → {{operator: value}}, not {_describe(node)}")
    conditions = []
    for column, operations in node.items():
        at = where[column]
        name = _column(at, column)
        if not isinstance(operations, dict) or not operations:
            raise at.error(f"must be a mapping of operator → value ({', '.join(OPERATORS)}), "
                           f"not {_describe(operations)}")
        for op, operand in operations.items():
            if op not in OPERATORS:
                raise at.error(f"unknown operator {op!r}{yamltext.did_you_mean(op, OPERATORS)}; "
                               f"allowed: {', '.join(OPERATORS)}")
            conditions.append(Condition(name, op, _operand(at[op], op, operand)))
    return Match(tuple(conditions))


def _operand(where: _Where, op: str, value: object) -> tuple[str, ...]:
    if op == EXISTS:
        if value is not True:
            raise where.error(f"must be true (a condition that the column or tag is present), not {_describe(value)}")
        return ()
    if op == IN:
        return _texts(where, value)
    if op == REGEX:
        return (_pattern(where, value),)
    assert op in (EQUALS, PREFIX)
    return (_text(where, value),)


# ---------------------------------------------------------------------------------------------
# Dimensions
# ---------------------------------------------------------------------------------------------
def _dimensions(where: _Where, node: object) -> tuple[Dimension, ...]:
    dimensions = tuple(_dimension(where[i], item) for i, item in enumerate(_list(where, node)))
    names = [d.name for d in dimensions]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise where[i]["name"].error(f"dimension {name!r} is already declared by "
                                         f"{where[names.index(name)].path}; dimension names must be unique")
    return dimensions


def _dimension(where: _Where, node: object) -> Dimension:
    fields = _fields(where, node, DIMENSION_FIELDS, ("name",))
    if fields.get("required") is True and not fields.get("tag_keys"):
        raise where["required"].error("a required dimension needs tag_keys: tag compliance (M14) counts the spend "
                                      "carrying one of them")
    return Dimension(
        name=_dimension_name(where["name"], fields["name"]),
        default=_optional(where, fields, "default", _text, Dimension.default),
        tag_keys=_optional(where, fields, "tag_keys", _tag_keys, ()),
        value_map=_optional(where, fields, "values", _value_map, {}),
        required=_optional(where, fields, "required", _flag, False),
        max_values=_optional(where, fields, "max_values", _cap, None),
    )


def _dimension_name(where: _Where, value: object) -> str:
    name = _text(where, value)
    if not DIMENSION_NAME.match(name):
        raise where.error(f"dimension name {name!r} is not a plain identifier (lower-case letters, digits and '_', "
                          "starting with a letter): it becomes a column of cost_allocations")
    taken = {c.casefold(): c for c in FIXED_COLUMNS}  # Delta column names are case-insensitive
    if name.casefold() in taken:
        raise where.error(f"dimension name {name!r} collides with the cost_allocations column "
                          f"{taken[name.casefold()]!r}; choose another name")
    return name


def _tag_keys(where: _Where, value: object) -> tuple[str, ...]:
    """Aliases in priority order, normalized; two aliases equal after normalization are one key named twice."""
    raw = _texts(where, value)
    keys = tuple(normalize_tag_key(k) for k in raw)
    for i, key in enumerate(keys):
        if key in keys[:i]:
            first = keys.index(key)
            raise where[i].error(f"tag key {raw[i]!r} is {raw[first]!r} (at [{first}]) after normalization "
                                 f"(case, spaces, '_' read as '-'): {key!r}; name it once")
    return keys


def _value_map(where: _Where, node: object) -> dict[str, str]:
    """Raw tag value (normalized: case-folded, trimmed) → owner value."""
    value_map: dict[str, str] = {}
    raw_of: dict[str, str] = {}
    for raw, owner in _mapping(where, node).items():
        at = where[raw]
        key = normalize_value(_key_text(at, raw))
        if key in raw_of:
            raise at.error(f"{raw!r} is {raw_of[key]!r} after normalization (case and surrounding spaces ignored): "
                           f"{key!r}; name it once")
        raw_of[key] = raw
        value_map[key] = _text(at, owner)
    return value_map


def _cap(where: _Where, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise where.error(f"must be a whole number of at least 1, not {_describe(value)}")
    return value


def _owner_values(where: _Where, node: object, declared: tuple[str, ...], parse_value=_text) -> dict:
    """Dimension → owner value (``parse_value`` reads each value)."""
    values = {}
    for dimension, value in _mapping(where, node).items():
        at = where[dimension]
        values[_declared(at, _key_text(at, dimension), declared)] = parse_value(at, value)
    return values


def _declared(where: _Where, name: str, declared: tuple[str, ...]) -> str:
    if name not in declared:
        raise where.error(f"dimension {name!r} is not declared{yamltext.did_you_mean(name, declared)}; "
                          f"declared: {', '.join(declared)}")
    return name


def _text_or_column(where: _Where, value: object) -> str | ColumnValue:
    """A literal owner value, or ``{column: <name>}``: the value of that column on the row."""
    if isinstance(value, dict):
        fields = _fields(where, value, ("column",), ("column",))
        return ColumnValue(_column(where["column"], fields["column"], allow_tags=False))
    return _text(where, value)


# ---------------------------------------------------------------------------------------------
# Virtual tags and pools
# ---------------------------------------------------------------------------------------------
def _virtual_tags(where: _Where, node: object, declared: tuple[str, ...]) -> tuple[VirtualTag, ...]:
    return tuple(_virtual_tag(where[i], item, declared) for i, item in enumerate(_list(where, node)))


def _virtual_tag(where: _Where, node: object, declared: tuple[str, ...]) -> VirtualTag:
    fields = _fields(where, node, VIRTUAL_TAG_FIELDS, ("id", "match", "set"))
    return VirtualTag(
        id=_rule_id(where["id"], fields["id"]),
        match=_match(where["match"], fields["match"]),
        values=_owner_values(where["set"], fields["set"], declared, _text_or_column),
        override=_optional(where, fields, "override", _flag, False),
    )


def _rule_id(where: _Where, value: object) -> str:
    rule_id = _text(where, value)
    if not RULE_ID.match(rule_id):
        raise where.error(f"id {rule_id!r} must be letters, digits, '.', '_' and '-', starting with a letter or digit")
    if rule_id in RESERVED_RULE_IDS:
        raise where.error(f"id {rule_id!r} is reserved (x_AllocationRuleId of rows decided by "
                          f"{'tags' if rule_id == 'tags' else 'the default owner'}); choose another id")
    return rule_id


def _pools(where: _Where, node: object, declared: tuple[str, ...]) -> tuple[Pool, ...]:
    return tuple(_pool(where[i], item, declared) for i, item in enumerate(_list(where, node)))


def _pool(where: _Where, node: object, declared: tuple[str, ...]) -> Pool:
    fields = _fields(where, node, POOL_FIELDS, ("id", "match", "dimension", "method"))
    method = _choice(where["method"], fields["method"], METHODS)
    _check_method_fields(where, fields, method)
    dimension = _declared(where["dimension"], _text(where["dimension"], fields["dimension"]), declared)
    weights = _optional(where, fields, "weights", _weights, {})
    return Pool(
        id=_rule_id(where["id"], fields["id"]),
        match=_match(where["match"], fields["match"]),
        dimension=dimension,
        method=method,
        targets=tuple(weights) or _optional(where, fields, "targets", _texts, ()),
        weights=weights,
        measure=_optional(where, fields, "measure", lambda at, v: _choice(at, v, MEASURES), Pool.measure),
        driver=_optional(where, fields, "driver", _driver_name, None),
        on_zero=_optional(where, fields, "on_zero", lambda at, v: _choice(at, v, (ON_ZERO_ERROR, ON_ZERO_EVEN)),
                          ON_ZERO_ERROR),
    )


def _check_method_fields(where: _Where, fields: dict, method: str) -> None:
    uses = METHOD_FIELDS[method]
    for key in fields:
        if key in METHOD_OPTIONS and key not in uses:
            users = [m for m, keys in METHOD_FIELDS.items() if key in keys]
            raise where[key].error(f"not used by method {method!r} ({key} is for method {' or '.join(users)}); "
                                   f"method {method} uses: {', '.join(uses)}")
    for key in METHOD_REQUIRES[method]:
        if key not in fields:
            raise where.error(f"method {method!r} needs the field {key!r}")


def _weights(where: _Where, node: object) -> dict[str, Decimal]:
    """Fixed weights: target → percent, each ≥ 0 with at most 12 decimals, summing to exactly 100."""
    weights = {}
    for target, value in _mapping(where, node).items():
        at = where[target]
        weight = _number(at, value)
        if weight < 0:
            raise at.error(f"weight {value} is negative; fixed weights are percentages ≥ 0")
        if weight.as_tuple().exponent < -WEIGHT_DECIMALS:
            raise at.error(f"weight {value} has more than {WEIGHT_DECIMALS} decimals")
        weights[_key_text(at, target)] = weight
    total = sum(weights.values(), Decimal(0))
    if total != 100:
        raise where.error(f"fixed weights sum to {total.normalize():f} %, must be exactly 100")
    return weights


def _driver_name(where: _Where, value: object) -> str:
    name = _text(where, value)
    if not RULE_ID.match(name):
        raise where.error(f"driver {name!r} must be a folder name under allocation/drivers/ (letters, digits, "
                          "'.', '_', '-')")
    return name


def _check_unique_ids(root: _Where, virtual_tags: tuple[VirtualTag, ...], pools: tuple[Pool, ...]) -> None:
    """Virtual tag and pool ids are unique together: each is an x_AllocationRuleId value."""
    first: dict[str, str] = {}
    rules = [(root["virtual_tags"][i], t.id) for i, t in enumerate(virtual_tags)]
    rules += [(root["pools"][i], p.id) for i, p in enumerate(pools)]
    for where, rule_id in rules:
        if rule_id in first:
            raise where["id"].error(f"id {rule_id!r} is already the id of {first[rule_id]}; ids must be unique")
        first[rule_id] = where.path


def _check_pool_graph(where: _Where, pools: tuple[Pool, ...]) -> None:
    """A pool's id can never be a target: a cycle among pools is named first (a → b → a), then any pool that is a
    target of another pool."""
    index = {p.id: i for i, p in enumerate(pools)}
    edges = {p.id: [t for t in p.targets if t in index] for p in pools}
    cycle = _first_cycle(edges)
    if cycle:
        start = pools[index[cycle[0]]]
        raise where[index[start.id]][_targets_field(start)].error(
            f"cycle among pools: {' → '.join(cycle)}; a pool's id can never be a target of a pool")
    for i, pool in enumerate(pools):
        if edges[pool.id]:
            target = edges[pool.id][0]
            raise where[i][_targets_field(pool)].error(
                f"{target!r} is a pool ({where[index[target]].path}); a pool can never be a target of another pool: "
                "split its cost to owners in its own rule")


def _targets_field(pool: Pool) -> str:
    return "weights" if pool.method == FIXED else "targets"


def _first_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """The first cycle found walking the graph in file order, as a closed path [a, b, a]; None if acyclic."""
    done: set[str] = set()

    def walk(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for target in edges[node]:
            cycle = walk(target, path + [node])
            if cycle:
                return cycle
        done.add(node)
        return None

    return next((c for c in (walk(node, []) for node in edges) if c), None)


# ---------------------------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------------------------
def _kubernetes(where: _Where, node: object, declared: tuple[str, ...]) -> Kubernetes:
    fields = _fields(where, node, KUBERNETES_FIELDS)
    idle = _optional(where, fields, "idle", lambda at, v: _choice(at, v, (IDLE_OWNER, IDLE_SHARE)), Kubernetes.idle)
    if idle == IDLE_SHARE and "idle_values" in fields:
        raise where["idle_values"].error(f"not used with idle: {IDLE_SHARE} (idle capacity is spread over the "
                                         f"namespaces); idle_values are for idle: {IDLE_OWNER}")
    return Kubernetes(
        basis=_optional(where, fields, "basis",
                        lambda at, v: _choice(at, v, (BASIS_REQUESTS, BASIS_USAGE, BASIS_MAX)), Kubernetes.basis),
        cpu_weight=_optional(where, fields, "cpu_weight", _share, Kubernetes.cpu_weight),
        idle=idle,
        idle_values=_optional(where, fields, "idle_values", lambda at, v: _owner_values(at, v, declared), {}),
        namespaces=_optional(where, fields, "namespaces", lambda at, v: _namespaces(at, v, declared), ()),
    )


def _share(where: _Where, value: object) -> Decimal:
    share = _number(where, value)
    if not 0 <= share <= 1:
        raise where.error(f"must be from 0 to 1, not {value}")
    return share


def _namespaces(where: _Where, node: object, declared: tuple[str, ...]) -> tuple[NamespaceOwner, ...]:
    owners = []
    for i, item in enumerate(_list(where, node)):
        fields = _fields(where[i], item, NAMESPACE_FIELDS, NAMESPACE_FIELDS)
        owners.append(NamespaceOwner(pattern=_pattern(where[i]["pattern"], fields["pattern"]),
                                     values=_owner_values(where[i]["set"], fields["set"], declared)))
    return tuple(owners)
