"""The rules file loader: the design's example loads into the expected objects; every bad rules file is one
RulesError line naming the file, the YAML path and the problem; settings and the choice of active rules."""

from decimal import Decimal
from pathlib import Path

import pytest

from focus_platform.allocation.model import (
    DEFAULT_OWNER,
    ColumnValue,
    Condition,
    Dimension,
    Kubernetes,
    Match,
    NamespaceOwner,
    Pool,
    VirtualTag,
)
from focus_platform.allocation.rules import (
    AllocationSettings,
    RulesError,
    default_rules,
    load_rules,
    normalize_tag_key,
    normalize_value,
    read_settings,
    select_rules,
)

EXAMPLE = Path(__file__).parents[1] / "fixtures" / "allocation" / "rules" / "example.yaml"

HEAD = """\
name: t
version: "1"
dimensions:
  - name: team
    tag_keys: [team]
  - name: env
"""


def rules_error(text: str) -> str:
    with pytest.raises(RulesError) as caught:
        load_rules(text.encode(), "rules.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("rules.yaml: ")
    return message


def pool(body: str, pool_id: str = "p") -> str:
    return f"  - id: {pool_id}\n    match: {{ServiceName: {{equals: Support}}}}\n    dimension: team\n{body}"


# ---------------------------------------------------------------------------------------------
# A valid file
# ---------------------------------------------------------------------------------------------
def test_the_design_example_loads_into_the_expected_objects():
    rules = load_rules(EXAMPLE.read_bytes(), "rules/example.yaml")

    assert (rules.name, rules.version, rules.path, rules.applies_from) == (
        "acme", "2026-11.1", "rules/example.yaml", "2026-01")
    assert rules.dimensions == (
        Dimension("team", tag_keys=("team", "owner-team", "squad"),
                  value_map={"platform": "platform", "data eng": "data-eng"}, required=True, max_values=50),
        Dimension("environment", tag_keys=("env", "environment"), value_map={"production": "prod", "prd": "prod"}),
    )
    assert rules.virtual_tags == (
        VirtualTag("network-account", Match((Condition("SubAccountId", "equals", ("111122223333",)),)),
                   {"team": "network"}),
        VirtualTag("ou-from-catalog", Match((Condition("x_AccountPath", "prefix", ("Root/Engineering",)),)),
                   {"team": ColumnValue("x_AccountLevel2")}),
    )
    assert rules.pools == (
        Pool("shared-support", Match((Condition("ServiceName", "regex", ("^(AWS Support|Support)",)),)), "team",
             "proportional", targets=("platform", "web", "ml"), measure="EffectiveCost"),
        Pool("shared-network", Match((Condition("ServiceCategory", "equals", ("Networking",)),
                                      Condition("tag:shared", "exists"))), "team", "fixed",
             targets=("platform", "web", "ml"),
             weights={"platform": Decimal(50), "web": Decimal(30), "ml": Decimal(20)}),
        Pool("shared-logging", Match((Condition("ServiceName", "in", ("Amazon CloudWatch", "Cloud Logging")),)),
             "team", "driver", driver="log-requests", on_zero="even"),
    )
    assert rules.kubernetes == Kubernetes(
        basis="requests", cpu_weight=Decimal("0.5"), idle="owner", idle_values={"team": "k8s-idle"},
        namespaces=(NamespaceOwner("payments|checkout", {"team": "web"}), NamespaceOwner("ml-.*", {"team": "ml"})))
    assert rules.dimension_names == ("team", "environment")
    assert type(rules.kubernetes.cpu_weight) is Decimal


def test_a_minimal_file_takes_the_defaults():
    rules = load_rules(HEAD.encode(), "rules.yaml")

    assert rules.dimensions == (Dimension("team", tag_keys=("team",)), Dimension("env"))
    assert rules.dimension("env").default == DEFAULT_OWNER
    assert (rules.virtual_tags, rules.pools, rules.kubernetes, rules.applies_from) == ((), (), None, None)


def test_decimals_never_pass_through_a_float():
    text = HEAD + "pools:\n" + pool("    method: fixed\n    weights: {a: 33.333333333333, b: 33.333333333333, "
                                    "c: 33.333333333334}\n")
    weights = load_rules(text.encode(), "rules.yaml").pools[0].weights

    assert weights == {"a": Decimal("33.333333333333"), "b": Decimal("33.333333333333"),
                       "c": Decimal("33.333333333334")}
    assert sum(weights.values()) == 100


def test_yes_is_a_boolean_where_a_boolean_is_expected():
    rules = load_rules(HEAD.replace("tag_keys: [team]", "tag_keys: [team]\n    required: yes").encode(), "rules.yaml")

    assert rules.dimensions[0].required is True


def test_a_required_dimension_needs_tag_keys():
    message = rules_error(HEAD.replace("tag_keys: [team]", "required: true"))
    assert "dimensions[0].required: a required dimension needs tag_keys" in message


def test_keys_and_values_are_normalized():
    text = HEAD.replace("tag_keys: [team]", "tag_keys: [' Owner_Team ', Cost Center]\n"
                                            "    values: {' Data Eng ': data-eng, PLATFORM: platform}")
    text += "virtual_tags:\n  - id: v\n    match: {tag:Shared_Cost: {exists: true}}\n    set: {team: x}\n"
    rules = load_rules(text.encode(), "rules.yaml")

    assert rules.dimensions[0].tag_keys == ("owner-team", "cost-center")
    assert rules.dimensions[0].value_map == {"data eng": "data-eng", "platform": "platform"}
    assert rules.virtual_tags[0].match.conditions == (Condition("tag:shared-cost", "exists"),)
    assert normalize_tag_key("  Team_Name x ") == "team-name-x"
    assert normalize_tag_key("aws:CreatedBy") == "aws:createdby"  # provider prefixes are kept
    assert normalize_value("  Straße ") == "strasse"


def test_the_digest_is_stable_and_follows_the_bytes():
    data = EXAMPLE.read_bytes()
    digest = load_rules(data, "a.yaml").digest

    assert digest == load_rules(data, "b.yaml").digest
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert load_rules(data + b"# a comment\n", "a.yaml").digest != digest


def test_default_rules_have_one_owner_dimension_and_no_rules():
    rules = default_rules()

    assert rules.dimensions == (Dimension("owner"),)
    assert (rules.virtual_tags, rules.pools, rules.kubernetes) == ((), (), None)
    assert rules.digest == default_rules().digest


# ---------------------------------------------------------------------------------------------
# Bad files: one line naming file, YAML path and problem
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("name: [unclosed\n", ["line 2", "not valid YAML"], id="yaml-syntax"),
    pytest.param("- a\n- b\n", ["must be a mapping of name, version", "not a list"], id="not-a-mapping"),
    pytest.param("", ["must be a mapping", "empty (null)"], id="empty-file"),
    pytest.param(HEAD + "name: again\n", ["line 7, column 1: not valid YAML: key 'name' appears twice in one mapping (lines 1 and 7)"], id="duplicate-key"),
    pytest.param(HEAD + "pool: []\n", ["unknown field 'pool' (did you mean 'pools'?)",
                                       "allowed: name, version, applies_from, dimensions"], id="unknown-top-field"),
    pytest.param(HEAD.replace("tag_keys", "tagkeys"),
                 ["dimensions[0]: unknown field 'tagkeys' (did you mean 'tag_keys'?)", "allowed: name, tag_keys"],
                 id="unknown-dimension-field"),
    pytest.param(HEAD + "kubernetes: {basis: usage, cpu: 0.5}\n",
                 ["kubernetes: unknown field 'cpu'", "allowed: basis, cpu_weight"], id="unknown-kubernetes-field"),
    pytest.param(HEAD + "pools:\n" + pool("    method: even\n    wieghts: {a: 1}\n"),
                 ["pools[0]: unknown field 'wieghts' (did you mean 'weights'?)"], id="unknown-pool-field"),
    pytest.param(HEAD.replace('version: "1"\n', ""), ["rules.yaml: missing required field 'version'"],
                 id="missing-top-field"),
    pytest.param(HEAD + "virtual_tags:\n  - id: v\n    set: {team: x}\n",
                 ["virtual_tags[0]: missing required field 'match'"], id="missing-virtual-tag-field"),
    pytest.param(HEAD.replace('"1"', "1.5"), ["version: must be text, not a number (1.5); quote it"],
                 id="wrong-type-version"),
    pytest.param(HEAD + "virtual_tags: {id: v}\n",
                 ["virtual_tags: must be a list, not a mapping"], id="wrong-type-list"),
    pytest.param(HEAD + "virtual_tags:\n  - id: v\n    match: {SubAccountId: {equals: 111122223333}}\n"
                        "    set: {team: x}\n",
                 ["virtual_tags[0].match.SubAccountId.equals: must be text, not a number (111122223333); quote it"],
                 id="unquoted-account-id"),
    pytest.param(HEAD + "virtual_tags:\n  - id: v\n    match: {}\n    set: {team: no}\n",
                 ["virtual_tags[0].set.team: must be text, not a boolean (false); YAML reads yes/no", "quote it"],
                 id="owner-value-not-text"),
    pytest.param(HEAD.replace("tag_keys: [team]", "values: {no: none}"),
                 ["dimensions[0].values[False]: key False must be text, not a boolean"], id="value-map-key-not-text"),
    pytest.param(HEAD + "pools:\n" + pool("    method: even\n    targets: [web, 7]\n"),
                 ["pools[0].targets[1]: must be text, not a number (7); quote it"], id="target-not-text"),
    pytest.param(HEAD + "virtual_tags:\n  - id: v\n    match: {ResourceId: {regex: 'i-(abc'}}\n    set: {team: x}\n",
                 ["virtual_tags[0].match.ResourceId.regex: bad regex 'i-(abc'", "missing ), unterminated subpattern"],
                 id="bad-regex"),
    pytest.param(HEAD + "virtual_tags:\n  - id: v\n    match: {ResourceName: {regex: '(?<=db-)prod'}}\n"
                        "    set: {team: x}\n",
                 ["virtual_tags[0].match.ResourceName.regex: bad regex '(?<=db-)prod' for Polars",
                  "look-around", "not supported"], id="regex-python-accepts-polars-refuses"),
    pytest.param(HEAD + "virtual_tags:\n  - id: v\n    match: {ServiceName: {contains: EC2}}\n    set: {team: x}\n",
                 ["virtual_tags[0].match.ServiceName: unknown operator 'contains'",
                  "allowed: equals, in, regex, prefix, exists"], id="unknown-operator"),
    pytest.param(HEAD + "virtual_tags:\n  - id: v\n    match: {ServiceNme: {equals: EC2}}\n    set: {team: x}\n",
                 ["virtual_tags[0].match.ServiceNme: unknown column 'ServiceNme' (did you mean 'ServiceName'?)"],
                 id="unknown-column"),
    pytest.param(HEAD + "virtual_tags:\n  - id: v\n    match: {tag:team: {exists: false}}\n    set: {team: x}\n",
                 ["virtual_tags[0].match.tag:team.exists: must be true"], id="exists-false"),
    pytest.param(HEAD + "pools:\n" + pool("    method: fixed\n    weights: {a: 50, b: 30, c: 19.5}\n"),
                 ["pools[0].weights: fixed weights sum to 99.5 %, must be exactly 100"], id="weights-not-100"),
    pytest.param(HEAD + "pools:\n" + pool("    method: fixed\n    weights: {a: 110, b: -10}\n"),
                 ["pools[0].weights.b: weight -10 is negative"], id="negative-weight"),
    pytest.param(HEAD + "pools:\n" + pool("    method: fixed\n    weights: {a: 50, a: 50}\n"),
                 ["line 12", "key 'a' appears twice in one mapping"], id="weight-named-twice"),
    pytest.param(HEAD + "pools:\n" + pool("    method: even\n    targets: [web, ml, web]\n"),
                 ["pools[0].targets[2]: 'web' is named twice (also at [0])"], id="target-named-twice"),
    pytest.param(HEAD.replace("tag_keys: [team]", "values: {Platform: platform, ' platform': plat}"),
                 ["dimensions[0].values[' platform']: ' platform' is 'Platform' after normalization"],
                 id="value-map-key-twice-after-normalization"),
    pytest.param(HEAD.replace("tag_keys: [team]", "tag_keys: [team, Team]"),
                 ["dimensions[0].tag_keys[1]: tag key 'Team' is 'team' (at [0]) after normalization"],
                 id="tag-key-twice-after-normalization"),
    pytest.param(HEAD + "pools:\n" + pool("    method: even\n    weights: {a: 100}\n"),
                 ["pools[0].weights: not used by method 'even' (weights is for method fixed)"],
                 id="weights-on-an-even-pool"),
    pytest.param(HEAD + "pools:\n" + pool("    method: driver\n"),
                 ["pools[0]: method 'driver' needs the field 'driver'"], id="driver-missing"),
    pytest.param(HEAD + "pools:\n" + pool("    method: fixed\n"),
                 ["pools[0]: method 'fixed' needs the field 'weights'"], id="weights-missing"),
    pytest.param(HEAD + "pools:\n" + pool("    method: proportional\n    measure: Cost\n"),
                 ["pools[0].measure: unknown value 'Cost'", "allowed: EffectiveCost, BilledCost"],
                 id="unknown-measure"),
    pytest.param(HEAD + "pools:\n" + pool("    method: split\n"),
                 ["pools[0].method: unknown value 'split'", "allowed: even, proportional, fixed, driver"],
                 id="unknown-method"),
    pytest.param(HEAD + "pools:\n" + pool("    method: even\n").replace("dimension: team", "dimension: tem"),
                 ["pools[0].dimension: dimension 'tem' is not declared (did you mean 'team'?); declared: team, env"],
                 id="pool-dimension-undeclared"),
    pytest.param(HEAD + "virtual_tags:\n  - id: v\n    match: {}\n    set: {product: x}\n",
                 ["virtual_tags[0].set.product: dimension 'product' is not declared"],
                 id="virtual-tag-dimension-undeclared"),
    pytest.param(HEAD + "virtual_tags:\n  - id: v\n    match: {}\n    set: {team: a}\n"
                        "  - id: v\n    match: {}\n    set: {team: b}\n",
                 ["virtual_tags[1].id: id 'v' is already the id of virtual_tags[0]"], id="duplicate-virtual-tag-id"),
    pytest.param(HEAD + "pools:\n" + pool("    method: even\n") + pool("    method: even\n"),
                 ["pools[1].id: id 'p' is already the id of pools[0]"], id="duplicate-pool-id"),
    pytest.param(HEAD + "virtual_tags:\n  - id: p\n    match: {}\n    set: {team: a}\npools:\n"
                 + pool("    method: even\n"),
                 ["pools[0].id: id 'p' is already the id of virtual_tags[0]"], id="pool-id-is-a-virtual-tag-id"),
    pytest.param(HEAD + "  - name: team\n", ["dimensions[2].name: dimension 'team' is already declared by dimensions[0]"],
                 id="duplicate-dimension"),
    pytest.param(HEAD.replace("name: env", "name: x_rowid"),
                 ["dimensions[1].name: dimension name 'x_rowid' collides with the cost_allocations column 'x_RowId'"],
                 id="dimension-collides-with-a-column"),
    pytest.param(HEAD.replace("name: env", "name: Cost Center"),
                 ["dimensions[1].name: dimension name 'Cost Center' is not a plain identifier"],
                 id="dimension-not-an-identifier"),
    pytest.param(HEAD + "pools:\n" + pool("    method: even\n    targets: [web, q]\n")
                 + pool("    method: even\n    targets: [ml]\n", "q"),
                 ["pools[0].targets: 'q' is a pool (pools[1]); a pool can never be a target of another pool"],
                 id="pool-is-a-target"),
    pytest.param(HEAD + "pools:\n" + pool("    method: fixed\n    weights: {web: 50, q: 50}\n")
                 + pool("    method: even\n    targets: [ml]\n", "q"),
                 ["pools[0].weights: 'q' is a pool (pools[1])"], id="pool-is-a-fixed-weight"),
    pytest.param(HEAD + "pools:\n" + pool("    method: even\n    targets: [web, b]\n", "a")
                 + pool("    method: even\n    targets: [a]\n", "b"),
                 ["pools[0].targets: cycle among pools: a → b → a"], id="two-cycle"),
    pytest.param(HEAD + "pools:\n" + pool("    method: even\n    targets: [b]\n", "a")
                 + pool("    method: fixed\n    weights: {c: 100}\n", "b")
                 + pool("    method: driver\n    driver: d\n    targets: [b]\n", "c"),
                 ["pools[1].weights: cycle among pools: b → c → b"], id="cycle-after-a-chain"),
    pytest.param(HEAD + "pools:\n" + pool("    method: even\n    targets: [p]\n"),
                 ["pools[0].targets: cycle among pools: p → p"], id="self-target"),
    pytest.param(HEAD + "applies_from: 2026-13\n",
                 ["applies_from: applies_from '2026-13' is not a billing period"], id="applies-from-bad-month"),
    pytest.param(HEAD + "applies_from: 2026-01-01\n",
                 ["applies_from: applies_from '2026-01-01' is not a billing period: expected YYYY-MM"],
                 id="applies-from-date"),
    pytest.param(HEAD + "kubernetes: {basis: limits}\n",
                 ["kubernetes.basis: unknown value 'limits'", "allowed: requests, usage, max"], id="k8s-basis"),
    pytest.param(HEAD + "kubernetes: {idle: drop}\n", ["kubernetes.idle: unknown value 'drop'"], id="k8s-idle"),
    pytest.param(HEAD + "kubernetes: {cpu_weight: 1.5}\n", ["kubernetes.cpu_weight: must be from 0 to 1"],
                 id="k8s-cpu-weight"),
    pytest.param(HEAD + "kubernetes: {idle: share, idle_values: {team: idle}}\n",
                 ["kubernetes.idle_values: not used with idle: share"], id="k8s-idle-values-with-share"),
    pytest.param(HEAD + "kubernetes:\n  namespaces:\n    - {pattern: 'ml-(', set: {team: ml}}\n",
                 ["kubernetes.namespaces[0].pattern: bad regex 'ml-('"], id="k8s-bad-namespace-pattern"),
    pytest.param(HEAD + "kubernetes:\n  namespaces:\n    - {pattern: 'ml-.*', set: {squad: ml}}\n",
                 ["kubernetes.namespaces[0].set.squad: dimension 'squad' is not declared"],
                 id="k8s-namespace-dimension-undeclared"),
])
def test_a_bad_rules_file_is_one_line_naming_file_path_and_problem(text, expected):
    message = rules_error(text)
    for part in expected:
        assert part in message, message


def test_a_file_that_is_not_utf8_is_refused_naming_it():
    with pytest.raises(RulesError, match=r"^rules.yaml: line 7, column 11: not valid YAML: byte 0xff is not UTF-8 "
                                         r"\(invalid start byte\); a YAML file is UTF-8 text$"):
        load_rules(HEAD.encode() + b"  - name: \xff\n", "rules.yaml")


# ---------------------------------------------------------------------------------------------
# Settings and the choice of rules
# ---------------------------------------------------------------------------------------------
def test_settings_name_the_active_and_candidate_files():
    assert read_settings(b"active: rules/a.yaml\ncandidate: rules/b.yaml\n", "s.yaml") == AllocationSettings(
        "rules/a.yaml", "rules/b.yaml")
    assert read_settings(b"active: rules/a.yaml\n", "s.yaml") == AllocationSettings("rules/a.yaml", None)


@pytest.mark.parametrize(("text", "expected"), [
    (b"active: rules/a.yaml\nshadow: rules/b.yaml\n", "s.yaml: unknown field 'shadow'; allowed: active, candidate"),
    (b"candidate: rules/b.yaml\n", "s.yaml: missing required field 'active'"),
    (b"active: [rules/a.yaml]\n", "s.yaml: active: must be text, not a list"),
    (b"", "s.yaml: must be a mapping of active, candidate, not empty (null)"),
])
def test_bad_settings_are_one_line(text, expected):
    with pytest.raises(RulesError) as caught:
        read_settings(text, "s.yaml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_settings_choose_active_and_candidate_among_several_files():
    a, b = EXAMPLE.read_bytes(), HEAD.encode()
    active, candidate = select_rules({"rules/a.yaml": a, "rules/b.yaml": b},
                                     b"active: rules/a.yaml\ncandidate: rules/b.yaml\n")

    assert (active.name, active.path, candidate.name, candidate.path) == ("acme", "allocation/rules/a.yaml", "t",
                                                                         "allocation/rules/b.yaml")
    active, candidate = select_rules({"rules/a.yaml": a, "rules/b.yaml": b}, b"active: rules/b.yaml\n")
    assert (active.path, candidate) == ("allocation/rules/b.yaml", None)


def test_without_settings_a_single_rules_file_is_active():
    active, candidate = select_rules({"rules/only.yaml": HEAD.encode()}, None)

    assert (active.path, candidate) == ("allocation/rules/only.yaml", None)


def test_without_any_rules_file_the_default_rules_run():
    active, candidate = select_rules({}, None)

    assert (active, candidate) == (default_rules(), None)


def test_several_rules_files_without_settings_are_an_error_naming_them():
    with pytest.raises(RulesError) as caught:
        select_rules({"rules/b.yaml": HEAD.encode(), "rules/a.yaml": HEAD.encode()}, None)

    assert str(caught.value) == ("allocation/settings.yaml: missing, and there are 2 rules files "
                                 "(rules/a.yaml, rules/b.yaml): name the active one (active: <file>)")


@pytest.mark.parametrize(("settings", "role"), [
    (b"active: rules/gone.yaml\n", "active"),
    (b"active: rules/a.yaml\ncandidate: rules/gone.yaml\n", "candidate"),
])
def test_settings_naming_an_absent_file_are_an_error(settings, role):
    with pytest.raises(RulesError) as caught:
        select_rules({"rules/a.yaml": HEAD.encode()}, settings)

    assert str(caught.value) == (f"allocation/settings.yaml: {role}: rules file 'rules/gone.yaml' does not exist; "
                                 "rules files: rules/a.yaml")


def test_a_bad_selected_rules_file_names_itself():
    with pytest.raises(RulesError, match=r"^allocation/rules/a.yaml: pools: must be a list"):
        select_rules({"rules/a.yaml": HEAD.encode() + b"pools: 3\n"}, b"active: rules/a.yaml\n")
