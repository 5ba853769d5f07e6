"""The account catalog: every format read, names filled only where the export left them null (noted), the
hierarchy, coverage, the digest a publication depends on, and one clear error per broken file."""

from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from focus_platform.allocation.accounts import (
    CatalogError,
    catalog_digest,
    changed_accounts,
    coverage,
    entry_digests,
    fill_account_names,
    read_catalog,
    with_hierarchy,
)

FIXTURES = Path(__file__).parents[1] / "fixtures" / "accounts"


def files(*names: str) -> list[tuple[str, bytes]]:
    return [(f"accounts/{n}", (FIXTURES / n).read_bytes()) for n in names]


def entry(catalog: pl.DataFrame, account: str) -> dict:
    rows = catalog.filter(pl.col("AccountId").str.to_lowercase() == account.lower()).to_dicts()
    assert len(rows) == 1, rows
    return rows[0]


@pytest.mark.parametrize("names, account, expected", [
    (["aws-list-accounts.json"], "222222222222",
     {"x_Provider": "aws", "AccountName": "Platform Production", "AccountKind": "any", "x_AccountPath": None}),
    (["aws-list-accounts.json", "aws-ou-tree.json"], "222222222222",
     {"AccountName": "Platform Production", "x_AccountPath": "Root/Engineering/Platform",
      "x_AccountLevel1": "Root", "x_AccountLevel2": "Engineering", "x_AccountLevel3": "Platform",
      "x_AccountLevel4": None, "x_CatalogFile": "accounts/aws-list-accounts.json"}),
    (["aws-console-accounts.csv"], "555555555555", {"x_Provider": "aws", "AccountName": "ML, Research"}),
    (["azure-subscriptions.json"], "aaaaaaaa-1111-2222-3333-bbbbbbbbbbbb",
     {"x_Provider": "azure", "AccountName": "Web Production", "AccountKind": "any", "x_AccountPath": None}),
    (["azure-subscriptions.json", "azure-management-groups.json"], "aaaaaaaa-1111-2222-3333-bbbbbbbbbbbb",
     {"AccountName": "Web Production", "x_AccountPath": "Tenant Root Group/Online"}),
    (["azure-management-groups.json"], "cccccccc-1111-2222-3333-dddddddddddd",
     {"AccountName": "Data Dev", "x_AccountPath": "Tenant Root Group"}),
    (["gcp-projects.json"], "shop-prod-4711",
     {"x_Provider": "gcp", "AccountName": "Shop Production", "AccountKind": "sub", "x_AccountPath": "folders/3001"}),
    (["gcp-projects.json", "gcp-folders.json", "gcp-organizations.json"], "shop-prod-4711",
     {"x_AccountPath": "example.com/Products/Commerce"}),
    (["gcp-projects.json", "gcp-organizations.json"], "analytics-0815", {"x_AccountPath": "example.com"}),
    (["gcp-billing-accounts.json"], "0A0A0A-1B1B1B-2C2C2C",
     {"AccountName": "Example Main Billing", "AccountKind": "billing"}),
    (["oci-compartments.json"], "ocid1.compartment.oc1..aaaaaaaadb",
     {"x_Provider": "oci", "AccountName": "Databases", "AccountKind": "sub",
      "x_AccountPath": "exampletenancy/Production"}),
    (["oci-compartments.json"], "ocid1.tenancy.oc1..aaaaaaaaexampletenancy",
     {"AccountName": "exampletenancy", "AccountKind": "any", "x_AccountPath": None}),
    (["simple.csv"], "666666666666",
     {"x_Provider": "aws", "AccountName": "Security Tooling", "x_AccountPath": "Root/Security",
      "x_AccountLevel2": "Security"}),
    (["simple.csv"], "8611537", {"x_Provider": "any", "AccountKind": "billing", "x_AccountPath": None}),
])
def test_each_format_is_read(names, account, expected):
    got = entry(read_catalog(files(*names)), account)
    assert {k: got[k] for k in expected} == expected


def test_all_fixtures_together_and_the_tenancy_without_include_root():
    catalog = read_catalog(files(*sorted(p.name for p in FIXTURES.iterdir())))
    assert catalog.height == 16
    assert catalog.columns[:5] == ["x_Provider", "AccountId", "AccountName", "AccountKind", "x_AccountPath"]
    assert catalog.columns[-1] == "x_CatalogFile"
    compartments = b'{"data": [{"id": "ocid1.compartment.oc1..x", "name": "Prod", ' \
                   b'"compartment-id": "ocid1.tenancy.oc1..t", "lifecycle-state": "ACTIVE"}]}'
    oci = read_catalog([("accounts/oci.json", compartments)])
    assert entry(oci, "ocid1.compartment.oc1..x")["x_AccountPath"] == "ocid1.tenancy.oc1..t"
    assert entry(oci, "ocid1.tenancy.oc1..t")["AccountName"] is None


def test_deeper_than_six_levels_kept_in_the_path():
    text = "provider,account_id,account_name,kind,path\naws,1,A,any,a/b/c/d/e/f/g\n"
    got = entry(read_catalog([("accounts/deep.csv", text.encode())]), "1")
    assert got["x_AccountPath"] == "a/b/c/d/e/f/g" and got["x_AccountLevel6"] == "f"


@pytest.mark.parametrize("name, content, message", [
    ("bad.csv", "provider,account_id,account_name,kind,path\naws,1,A,any,\naws,2,B,team,\n",
     "accounts/bad.csv line 3: kind: 'team' is not one of billing, sub, any"),
    ("bad.csv", "provider,account_id,account_name,kind,path\nalibaba,1,A,any,\n",
     "accounts/bad.csv line 2: provider: 'alibaba' is not one of aws, azure, gcp, oci, any"),
    ("bad.csv", "provider,account_id,account_name,kind,path\naws,,A,any,\n",
     "accounts/bad.csv line 2: account_id: missing"),
    ("bad.csv", "id;name\n1;A\n", "accounts/bad.csv line 1: header id;name"),
    ("bad.json", '{"Accounts": [{"Id": "1", "Name": "A"}, {"Name": "B"}]}',
     "accounts/bad.json $.Accounts[1]: Id: missing"),
    ("bad.json", '{"Accounts": [{"Id": "1", "Name": ["A"]}]}',
     "accounts/bad.json $.Accounts[0]: Name: expected text, found list"),
    ("bad.json", '{"Roots": [{"Id": "r-1", "Name": "Root", "OrganizationalUnits": [{"Name": "Eng"}]}]}',
     "accounts/bad.json $.Roots[0].OrganizationalUnits[0]: Id: missing"),
    ("bad.json", '[{"projectId": "p", "name": "P", "parent": "teams/3"}]',
     "accounts/bad.json $[0]: parent: 'teams/3' is not folders/<id> or organizations/<id>"),
    ("bad.json", '{"data": [{"id": "ocid1.compartment.oc1..x", "compartment-id": "ocid1.tenancy.oc1..t"}]}',
     "accounts/bad.json $.data[0]: name: missing"),
    ("bad.json", '{"Accounts": [', "accounts/bad.json line 1 column 15: invalid JSON"),
    ("bad.json", '{"Accounts": {"Id": "1"}}', "accounts/bad.json $.Accounts: expected a list, found dict"),
    ("bad.json", '{"Invoices": []}', "accounts/bad.json: not an account catalog format"),
])
def test_a_broken_file_names_file_row_and_column(name, content, message):
    with pytest.raises(CatalogError) as err:
        read_catalog([(f"accounts/{name}", content.encode())])
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_an_account_named_twice_names_both_files():
    other = b"provider,account_id,account_name,kind,path\naws,222222222222,Platform Prod,any,\n"
    with pytest.raises(CatalogError, match=r"account 222222222222: name 'Platform Production' in "
                                           r"accounts/aws-list-accounts.json \(\$.Accounts\[1\]\) but 'Platform Prod' "
                                           r"in accounts/other.csv \(line 2\)"):
        read_catalog([*files("aws-list-accounts.json"), ("accounts/other.csv", other)])
    any_provider = other.replace(b"aws,", b"any,")
    with pytest.raises(CatalogError, match=r"account 222222222222: named 'Platform Prod' and 'Platform Production' "
                                           r"in accounts/aws-list-accounts.json and accounts/other.csv"):
        read_catalog([*files("aws-list-accounts.json"), ("accounts/other.csv", any_provider)])
    moved = b'{"Roots": [{"Id": "r-ab12", "Name": "Root", "Accounts": [{"Id": "222222222222", "Name": "Platform Production"}]}]}'
    with pytest.raises(CatalogError, match=r"account 222222222222: parent 'ou-ab12-plat0001' in accounts/aws-ou-tree"):
        read_catalog([*files("aws-ou-tree.json"), ("accounts/moved.json", moved)])


def focus_rows() -> pl.LazyFrame:
    return pl.LazyFrame({
        "BillingAccountId": ["111111111111", "111111111111", "0A0A0A-1B1B1B-2C2C2C", "999", "ocid1.tenancy.oc1..aaaaaaaaexampletenancy"],
        "BillingAccountName": [None, "Payer As Delivered", None, None, None],
        "SubAccountId": ["222222222222", "222222222222", "shop-prod-4711", None, "ocid1.compartment.oc1..aaaaaaaadb"],
        "SubAccountName": [None, "Linked As Delivered", "Shop (export)", None, None],
        "BilledCost": [Decimal("1.000000000001"), Decimal("-2.5"), Decimal("3"), Decimal("0.1"), Decimal("7")],
        "x_SourceChanges": [["an earlier note"], None, [], None, None],
    }, schema_overrides={"BilledCost": pl.Decimal(38, 12)})


def test_names_filled_only_where_null_and_noted():
    catalog = read_catalog(files("aws-list-accounts.json", "gcp-projects.json", "gcp-billing-accounts.json",
                                 "oci-compartments.json"))
    before = focus_rows()
    after = fill_account_names(before, catalog).collect()
    assert after.columns == before.collect_schema().names()
    assert after["BillingAccountName"].to_list() == ["Example Management", "Payer As Delivered",
                                                     "Example Main Billing", None, "exampletenancy"]
    assert after["SubAccountName"].to_list() == ["Platform Production", "Linked As Delivered", "Shop (export)",
                                                 None, "Databases"]
    assert after["x_SourceChanges"].to_list() == [
        ["an earlier note", "BillingAccountName: from the account catalog (accounts/aws-list-accounts.json)",
         "SubAccountName: from the account catalog (accounts/aws-list-accounts.json)"],
        None,  # the provider's names are kept: nothing noted
        ["BillingAccountName: from the account catalog (accounts/gcp-billing-accounts.json)"],
        None,
        ["BillingAccountName: from the account catalog (accounts/oci-compartments.json)",
         "SubAccountName: from the account catalog (accounts/oci-compartments.json)"],
    ]
    assert after["BilledCost"].sum() == before.collect()["BilledCost"].sum()  # conservation unaffected
    assert after.height == 5
    assert fill_account_names(before, None).collect().equals(before.collect())


def test_ids_match_case_insensitively_and_kinds_choose_the_column():
    catalog = read_catalog(files("azure-management-groups.json", "gcp-projects.json"))
    rows = pl.LazyFrame({"BillingAccountId": ["shop-prod-4711", "x"], "BillingAccountName": [None, None],
                         "SubAccountId": ["aaaaaaaa-1111-2222-3333-bbbbbbbbbbbb", "SHOP-PROD-4711"],
                         "SubAccountName": [None, None], "x_SourceChanges": [None, None]},
                        schema_overrides={"BillingAccountName": pl.String, "SubAccountName": pl.String,
                                          "x_SourceChanges": pl.List(pl.String)})
    got = fill_account_names(rows, catalog).collect()
    assert got["SubAccountName"].to_list() == ["Web Production", "Shop Production"]
    assert got["BillingAccountName"].to_list() == [None, None]  # a project is a sub account only


def test_hierarchy_sub_account_first_else_billing_account():
    catalog = read_catalog(files("aws-list-accounts.json", "aws-ou-tree.json"))
    got = with_hierarchy(focus_rows(), catalog).collect()
    assert got.columns[-8:] == ["x_AccountName", "x_AccountPath", *[f"x_AccountLevel{i}" for i in range(1, 7)]]
    assert got["x_AccountPath"].to_list() == ["Root/Engineering/Platform"] * 2 + [None] * 3
    assert got["x_AccountLevel2"].to_list() == ["Engineering"] * 2 + [None] * 3
    assert got["x_AccountName"].to_list() == ["Platform Production", "Platform Production", "Shop (export)", None,
                                              None]
    payer_only = focus_rows().with_columns(pl.lit(None, pl.String).alias("SubAccountId"))
    got = with_hierarchy(payer_only, catalog).collect()
    assert got["x_AccountPath"].to_list()[:2] == ["Root", "Root"]
    assert got["x_AccountName"].to_list()[:2] == ["Example Management", "Example Management"]
    plain = with_hierarchy(focus_rows(), None).collect()
    assert plain["x_AccountName"].to_list()[:3] == [None, "Linked As Delivered", "Shop (export)"]
    assert plain["x_AccountPath"].null_count() == 5


def test_coverage_names_catalog_accounts_not_billed_and_billed_accounts_missing():
    catalog = read_catalog(files("aws-list-accounts.json", "gcp-projects.json"))
    got = coverage(catalog, ["111111111111", "222222222222", "777777777777", None], provider="aws")
    assert got.not_in_bill == ["333333333333"]
    assert got.missing == ["777777777777"]
    assert coverage(catalog, ["111111111111"]).not_in_bill == ["222222222222", "333333333333", "analytics-0815",
                                                              "shop-prod-4711"]
    meta = got.metadata()
    assert meta["catalog_accounts_not_in_bill"] == 1 and meta["bill_accounts_missing_from_catalog_first"] == [
        "777777777777"]
    assert coverage(None, ["1"]).missing == ["1"]


def test_digest_changes_only_with_the_entries_of_the_accounts_asked_for():
    catalog = read_catalog(files("aws-list-accounts.json", "gcp-projects.json"))
    renamed = catalog.with_columns(pl.when(pl.col("AccountId") == "shop-prod-4711").then(pl.lit("Shop"))
                                   .otherwise(pl.col("AccountName")).alias("AccountName"))
    aws = ["111111111111", "222222222222"]
    assert catalog_digest(catalog, aws) == catalog_digest(renamed, aws) != ""
    assert catalog_digest(catalog, ["shop-prod-4711"]) != catalog_digest(renamed, ["SHOP-PROD-4711"])
    assert catalog_digest(catalog, ["999"]) == "" == catalog_digest(None, aws)
    assert changed_accounts(entry_digests(catalog), entry_digests(renamed)) == {"shop-prod-4711"}
    assert changed_accounts({}, entry_digests(catalog)) == set(entry_digests(catalog))
