"""yamltext: the one YAML loader of landing-zone files, and the readers that use it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from focus_platform.alerts import AlertConfigError, read_alert_config
from focus_platform.allocation.rules import RulesError, load_rules
from focus_platform.anomalies import AnomalyError, read_anomaly_settings
from focus_platform.forecasting.budgets import BudgetError, read_budgets
from focus_platform.policies import PolicyError, read_policies
from focus_platform.yamltext import YamlError, describe, did_you_mean, load

RULES_HEAD = 'name: acme\nversion: "1"\ndimensions:\n  - name: team\n'


def yaml_error(data: bytes | str, *, text: bool = False) -> str:
    with pytest.raises(YamlError) as caught:
        load(data, "f.yaml", text=text)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# ---------------------------------------------------------------------------------------------
# Keys written twice
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", [False, True], ids=["typed", "text"])
@pytest.mark.parametrize(("data", "expected"), [
    ("a: 1\nb: 2\na: 3\n", "f.yaml: line 3, column 1: not valid YAML: key 'a' appears twice in one mapping "
                           "(lines 1 and 3)"),
    ("top:\n  inner:\n    x: 1\n    x: 1\n", "f.yaml: line 4, column 5: not valid YAML: key 'x' appears twice in "
                                             "one mapping (lines 3 and 4)"),
    ("items:\n  - {id: a, id: b}\n", "f.yaml: line 2, column 13: not valid YAML: key 'id' appears twice in one "
                                     "mapping (lines 2 and 2)"),
], ids=["top-level", "nested-mapping", "mapping-in-a-list"])
def test_a_key_written_twice_is_refused_naming_both_lines(data, expected, text):
    assert yaml_error(data, text=text) == expected


def test_the_same_key_in_two_mappings_is_not_a_duplicate():
    assert load("a: {x: 1}\nb: {x: 2}\n", "f.yaml") == {"a": {"x": 1}, "b": {"x": 2}}


def test_keys_equal_as_values_are_one_key():
    """``1`` and ``true`` are one Python dict key: the second would silently replace the first."""
    assert yaml_error("1: a\ntrue: b\n") == ("f.yaml: line 2, column 1: not valid YAML: key True appears twice in one "
                                             "mapping (lines 1 and 2)")


# ---------------------------------------------------------------------------------------------
# Types: decimals, dates, text mode
# ---------------------------------------------------------------------------------------------
def test_decimals_load_exactly_as_decimal_never_float():
    document = load("a: 0.1\nb: 12345678901234567890.123456789012\nc: 1_000.50\nd: -2.5e+3\ne: 7\n", "f.yaml")

    assert document == {"a": Decimal("0.1"), "b": Decimal("12345678901234567890.123456789012"),
                        "c": Decimal("1000.50"), "d": Decimal("-2.5E+3"), "e": 7}
    assert [type(v) for v in document.values()] == [Decimal, Decimal, Decimal, Decimal, int]
    assert str(document["c"]) == "1000.50"  # the written scale is kept


def test_values_with_no_decimal_value_stay_text():
    """Infinity, NaN, sexagesimal floats and int patterns without a digit: text, refused where a number is read."""
    assert load("a: .inf\nb: -.inf\nc: .nan\nd: 1:30.5\ne: 0x_\n", "f.yaml") == {
        "a": ".inf", "b": "-.inf", "c": ".nan", "d": "1:30.5", "e": "0x_"}


def test_dates_and_timestamps_are_their_text():
    document = load("a: 2026-12-01\nb: 2026-13-01\nc: 2026-12-01T10:00:00Z\nd: 2026-12-01 10:00:00\n", "f.yaml")
    assert document == {"a": "2026-12-01", "b": "2026-13-01", "c": "2026-12-01T10:00:00Z", "d": "2026-12-01 10:00:00"}


def test_text_mode_resolves_no_types():
    document = load("a: 0.1\nb: yes\nc: 12\nd: ~\ne: 2026-12-01\nf: [1, .inf]\n", "f.yaml", text=True)
    assert document == {"a": "0.1", "b": "yes", "c": "12", "d": "~", "e": "2026-12-01", "f": ["1", ".inf"]}


def test_typed_mode_keeps_booleans_ints_and_nulls():
    assert load("a: yes\nb: 0123\nc: ~\nd: text\n", "f.yaml") == {"a": True, "b": 83, "c": None, "d": "text"}


def test_no_python_objects():
    message = yaml_error("!!python/object/apply:os.system ['true']\n")
    assert message.startswith("f.yaml: line 1, column 1: not valid YAML: could not determine a constructor for the "
                              "tag 'tag:yaml.org,2002:python/object/apply:os.system'"), message


# ---------------------------------------------------------------------------------------------
# Bad YAML, bad UTF-8: one line
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("data", "expected"), [
    (b"a: [1, 2\n", "f.yaml: line 2, column 1: not valid YAML: while parsing a flow sequence, expected ',' or ']', "
                    "but got '<stream end>'"),
    (b"a: b: c\n", "f.yaml: line 1, column 5: not valid YAML: mapping values are not allowed here"),
    (b"a: 1\n---\nb: 2\n", "f.yaml: line 2, column 1: not valid YAML: expected a single document in the stream, but "
                           "found another document"),
    (b"a: 1\nb: caf\xe9!\n", "f.yaml: line 2, column 7: not valid YAML: byte 0xe9 is not UTF-8 (invalid continuation "
                             "byte); a YAML file is UTF-8 text"),
    (b"\xef\xbb\xbfa: \xff\n", "f.yaml: line 1, column 4: not valid YAML: byte 0xff is not UTF-8 (invalid start byte); "
                               "a YAML file is UTF-8 text"),
    (b"a: 1\nb: x\x07y\n", "f.yaml: line 2, column 5: not valid YAML: character U+0007 is not allowed (special "
                           "characters are not allowed)"),
], ids=["syntax", "mapping-value", "two-documents", "not-utf8", "not-utf8-after-bom", "control-character"])
def test_a_bad_file_is_one_line_naming_file_line_and_column(data, expected):
    assert yaml_error(data) == expected


def test_a_utf8_bom_is_accepted_and_str_input_too():
    assert load(b"\xef\xbb\xbfa: caf\xc3\xa9\n", "f.yaml") == {"a": "café"}
    assert load("a: café\n", "f.yaml") == {"a": "café"}


def test_an_empty_file_is_none():
    assert load(b"", "f.yaml") is None
    assert load(b"", "f.yaml", text=True) is None


# ---------------------------------------------------------------------------------------------
# Words: what a loaded value is, which allowed name was meant
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    (None, "empty (null)"),
    (True, "a boolean (true)"),
    (False, "a boolean (false)"),
    (3, "a number (3)"),
    (Decimal("2.50"), "a number (2.50)"),
    ("x", "the text 'x'"),
    ("", "the text ''"),
    ({"a": 1}, "a mapping"),
    ([1], "a list"),
    (b"x", "bytes"),
])
def test_describe_says_what_a_loaded_value_is(value, expected):
    assert describe(value) == expected


def test_describe_names_every_value_the_loader_gives_as_it_was_written():
    document = load("[~, yes, 0x1F, 1_000.50, 2026-12-01, .inf, {}, []]", "f.yaml")
    assert [describe(value) for value in document] == [
        "empty (null)", "a boolean (true)", "a number (31)", "a number (1000.50)", "the text '2026-12-01'",
        "the text '.inf'", "a mapping", "a list"]


@pytest.mark.parametrize(("name", "choices", "expected"), [
    ("amunt", ("owner", "amount", "currency"), " (did you mean 'amount'?)"),
    ("ServiceNme", {"ServiceName", "ServiceCategory"}, " (did you mean 'ServiceName'?)"),
    ("zzz", ("owner", "amount"), ""),
    (7, ("7d", "owner"), " (did you mean '7d'?)"),
    ("anything", (), ""),
])
def test_did_you_mean_suggests_the_closest_allowed_name_or_nothing(name, choices, expected):
    assert did_you_mean(name, choices) == expected


# ---------------------------------------------------------------------------------------------
# Readers: each turns the loader's error into its own class with the same line
# ---------------------------------------------------------------------------------------------
READERS = [
    pytest.param(lambda data: load_rules(data, "f.yaml"), RulesError, id="rules"),
    pytest.param(lambda data: read_budgets([("f.yaml", data)]), BudgetError, id="budgets"),
    pytest.param(lambda data: read_anomaly_settings([("f.yaml", data)]), AnomalyError, id="anomaly-settings"),
    pytest.param(lambda data: read_policies([("f.yaml", data)]), PolicyError, id="policies"),
    pytest.param(lambda data: read_alert_config([("f.yaml", data)], env={}), AlertConfigError, id="alerts"),
]


@pytest.mark.parametrize(("read", "error"), READERS)
@pytest.mark.parametrize("data", [b"a: 1\na: 2\n", b"a: [\n", b"a: caf\xe9\n"], ids=["duplicate", "syntax", "utf8"])
def test_every_reader_raises_its_own_error_with_the_loaders_line(read, error, data):
    with pytest.raises(YamlError) as expected:
        load(data, "f.yaml")
    with pytest.raises(error) as caught:
        read(data)
    assert type(caught.value) is error and str(caught.value) == str(expected.value)


@pytest.mark.parametrize(("read", "error"), READERS)
def test_every_reader_says_what_a_loaded_value_is_in_the_same_words(read, error):
    with pytest.raises(error) as caught:
        read(b"- 1\n")
    message = str(caught.value)
    assert message.startswith("f.yaml: must be a mapping") and message.endswith(", not a list"), message


@pytest.mark.parametrize(("read", "error", "misspelt", "meant"), [
    pytest.param(*READERS[0].values, "nmae", "name", id="rules"),
    pytest.param(*READERS[1].values, "budget", "budgets", id="budgets"),
    pytest.param(*READERS[2].values, "setting", "settings", id="anomaly-settings"),
    pytest.param(*READERS[3].values, "policy", "policies", id="policies"),
    pytest.param(*READERS[4].values, "endpoint", "endpoints", id="alerts"),
])
def test_every_reader_suggests_the_field_a_misspelt_one_meant(read, error, misspelt, meant):
    with pytest.raises(error) as caught:
        read(f"{misspelt}: []\n".encode())
    assert f"f.yaml: unknown field '{misspelt}' (did you mean '{meant}'?); " in str(caught.value), str(caught.value)


def test_an_impossible_date_in_a_rules_file_is_one_rules_line_naming_file_and_entry():
    with pytest.raises(RulesError) as caught:
        load_rules((RULES_HEAD + "applies_from: 2026-13-01\n").encode(), "rules.yaml")
    assert str(caught.value) == ("rules.yaml: applies_from: applies_from '2026-13-01' is not a billing period: "
                                 "expected YYYY-MM with a month 01 to 12")


def test_a_date_where_rules_expect_text_is_text():
    """Dates are text now: an unquoted date as an owner value is that text (it was a date, refused)."""
    rules = load_rules((RULES_HEAD + "virtual_tags:\n  - id: v\n    match: {}\n    set: {team: 2026-12-01}\n").encode(),
                       "rules.yaml")
    assert rules.virtual_tags[0].values == {"team": "2026-12-01"}


@pytest.mark.parametrize(("data", "expected"), [
    (b"suppressions:\n  - {match: {Owner: a}, from: 2026-13-01, until: 2026-12-07, reason: r}\n",
     "f.yaml: suppressions[0].from: '2026-13-01' is not a calendar date (month must be in 1..12)"),
    (b"known_one_offs:\n  - {date: 2026-02-30, match: {Owner: a}, reason: r}\n",
     "f.yaml: known_one_offs[0].date: '2026-02-30' is not a calendar date (day is out of range for month)"),
    (b"known_one_offs:\n  - {date: 2026-12-01T10:00:00, match: {Owner: a}, reason: r}\n",
     "f.yaml: known_one_offs[0].date: must be a date YYYY-MM-DD, not the text '2026-12-01T10:00:00'"),
], ids=["month-13", "february-30", "timestamp"])
def test_an_impossible_date_in_anomaly_settings_is_one_anomaly_line_naming_file_and_entry(data, expected):
    with pytest.raises(AnomalyError) as caught:
        read_anomaly_settings([("f.yaml", data)])
    assert str(caught.value) == expected


def test_alert_seconds_written_as_decimals_are_read_as_float():
    config = read_alert_config([("e.yaml", b"endpoints:\n  - {name: hook, url: 'https://h.example.com/x', "
                                           b"timeout_seconds: 2.5, backoff_seconds: 0.25, retries: 1}\n")], env={})
    endpoint = config.endpoints["hook"]
    assert (endpoint.timeout_seconds, endpoint.backoff_seconds, endpoint.retries) == (2.5, 0.25, 1)
    assert type(endpoint.timeout_seconds) is float and type(endpoint.backoff_seconds) is float


def test_a_budget_amount_is_its_text_in_any_form():
    [budget] = read_budgets([("b.yaml", b"budgets:\n  - {owner: web, period: 2026-12, amount: 12000.10, "
                                        b"currency: USD, warn_at: 0.55}\n")])
    assert (budget.amount, budget.warn_at) == (Decimal("12000.10"), Decimal("0.55"))
