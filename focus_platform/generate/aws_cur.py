"""Synthetic AWS Cost and Usage Reports: legacy CUR (Athena Parquet or CSV) and CUR 2.0 (Data Exports).

``generate_aws_cur(out_dir, rows=...)`` writes, under ``out_dir``::

    legacy  <report>/<yyyymmdd-yyyymmdd>/<report>-Manifest.json
            <report>/<yyyymmdd-yyyymmdd>/<assemblyId>/<report>-Manifest.json
            <report>/<yyyymmdd-yyyymmdd>/<assemblyId>/<report>-<n>.snappy.parquet | .csv.gz
    cur2    <report>/data/BILLING_PERIOD=YYYY-MM/<report>-<n>.snappy.parquet | .csv.gz
            <report>/metadata/BILLING_PERIOD=YYYY-MM/<report>-Manifest.json
    both    <report>/expected_totals.json
            invoices/<payer account>/<YYYY-MM>.csv   (closed months only)

The data is meant to look like a real organisation's bill: several payers (``accounts``), each with a
management account and 2-4 linked accounts; EC2 (on-demand and Spot), EBS, NAT, S3, RDS, Lambda,
data transfer and CloudWatch usage in five regions with resource ids and sparse tags; Reserved
Instances (DiscountedUsage rows, one RIFee per RI and month, the upfront Fee in the purchase month),
Savings Plans (covered usage with its negation, hourly or monthly recurring fees, an upfront fee),
support and AWS Marketplace fees, tax per account and product, credits, a refund and EDP / private
rate / bundled discount rows.

How rows are made
-----------------
* Every random value is a counter-based hash of (seed, month, field, row key): a row does not depend
  on chunking, so rows are generated vectorised in batches of up to 131,072 (one Parquet row group)
  and each file of ``rows_per_file`` rows is written batch by batch (bounded memory; a second thread
  encodes while the next batch is generated).
* A month's bulk rows follow a fixed layout (payer -> line item type -> RI / SP -> index) visited
  through a modular permutation, so every file mixes payers and types. Month-end rows (RIFee, fees,
  credits, discounts, tax) come last and are computed from the month's bulk totals.
* RIs and SPs are sized from the row budget before any row is written: an RI's DiscountedUsage hours
  and an SP's covered cost per hour are known in advance, so RIFee / SavingsPlanRecurringFee unused
  amounts are exact. Some commitments are fully used, some are not. A SavingsPlanNegation row
  mirrors its covered row (same instance, hour, account, SKU) with the opposite unblended cost.
* With few rows an RI's DiscountedUsage rows span several hours of one instance, and SP fees are one
  monthly row instead of one per hour (hourly needs at least one covered row per hour).

Money rule (what ``expected_totals.json`` relies on)
----------------------------------------------------
Every money value written is a decimal with at most 10 fractional digits and at most 15 significant
digits, stored as the nearest float64. Values are nudged (by 1e-10, or 1e-6 above 10,000) until
``Decimal(repr(x))`` equals polars' ``Float64 -> Decimal(38, 12)`` cast (``round_half_even(x * 1e12)``),
so a consumer that parses the CSV text as decimals and one that casts the Parquet floats get the
same numbers. Totals are exact sums of those decimals, written as strings with 12 decimals.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from focus_platform.generate.landing import export_source, write_sources

AWS_INC = "Amazon Web Services, Inc."
AWS_EMEA = "Amazon Web Services EMEA SARL"
BUCKET = "focus-landing"  # bucket name used in manifests; keys after it are paths under out_dir
BATCH_ROWS = 131_072  # rows generated and written at once (one Parquet row group)
HOUR_MS = 3_600_000
UNITS = 10**10  # money is carried as integers of 1e-10 currency units

# =============================================================================================
# Line item types and the row budget
# =============================================================================================
LINE_ITEM_TYPES = (
    "Usage", "DiscountedUsage", "SavingsPlanCoveredUsage", "SavingsPlanNegation",
    "SavingsPlanRecurringFee", "SavingsPlanUpfrontFee", "RIFee", "Fee", "Tax", "Credit", "Refund",
    "EdpDiscount", "PrivateRateDiscount", "BundledDiscount",
)
(USAGE, DISCOUNTED, SP_COVERED, SP_NEGATION, SP_RECURRING, SP_UPFRONT, RI_FEE, FEE, TAX, CREDIT,
 REFUND, EDP, PRD, BUNDLED) = range(len(LINE_ITEM_TYPES))
CREDIT_TYPES = (CREDIT, REFUND, EDP, PRD, BUNDLED)  # the invoice's "credits" column

DISCOUNTED_SHARE = 0.070  # of each payer's bulk rows: RI-covered usage (surplus beyond RI capacity stays Usage)
SP_COVERED_SHARE = 0.040  # of each payer's bulk rows: SP-covered usage (and as many negations)

# =============================================================================================
# Column tables. Legacy CUR: CSV header, kind. The Athena/Parquet name is derived (_athena_name).
# Kinds: id = line item id, s = string, t = timestamp, q = quantity (double), f = money (double).
# The set follows the AWS Well-Architected workshop CUR, plus the columns newer CURs add
# (invoicing entity, region codes, rate code, savings plans, fee codes) and our tags / cost category.
# =============================================================================================
LEGACY_COLUMNS_TABLE = """
identity/LineItemId id              identity/TimeInterval s             bill/InvoiceId s
bill/InvoicingEntity s              bill/BillingEntity s                bill/BillType s
bill/PayerAccountId s               bill/BillingPeriodStartDate t       bill/BillingPeriodEndDate t
lineItem/UsageAccountId s           lineItem/LineItemType s             lineItem/UsageStartDate t
lineItem/UsageEndDate t             lineItem/ProductCode s              lineItem/UsageType s
lineItem/Operation s                lineItem/AvailabilityZone s         lineItem/ResourceId s
lineItem/UsageAmount q              lineItem/NormalizationFactor q      lineItem/NormalizedUsageAmount q
lineItem/CurrencyCode s             lineItem/UnblendedRate s            lineItem/UnblendedCost f
lineItem/BlendedRate s              lineItem/BlendedCost f              lineItem/LineItemDescription s
lineItem/TaxType s                  lineItem/LegalEntity s              product/ProductName s
product/availability s              product/capacitystatus s            product/clockSpeed s
product/currentGeneration s         product/databaseEngine s            product/dedicatedEbsThroughput s
product/deploymentOption s          product/description s               product/durability s
product/ecu s                       product/edition s                   product/engineCode s
product/enhancedNetworkingSupported s  product/eventType s              product/feeCode s
product/feeDescription s            product/freeQueryTypes s            product/fromLocation s
product/fromLocationType s          product/fromRegionCode s            product/group s
product/groupDescription s          product/instanceFamily s            product/instanceType s
product/instanceTypeFamily s        product/licenseModel s              product/location s
product/locationType s              product/maxIopsBurstPerformance s   product/maxIopsvolume s
product/maxThroughputvolume s       product/maxVolumeSize s             product/memory s
product/messageDeliveryFrequency s  product/messageDeliveryOrder s      product/minVolumeSize s
product/networkPerformance s        product/normalizationSizeFactor s   product/operatingSystem s
product/operation s                 product/physicalProcessor s         product/preInstalledSw s
product/processorArchitecture s     product/processorFeatures s         product/productFamily s
product/queueType s                 product/region s                    product/regionCode s
product/servicecode s               product/servicename s               product/sku s
product/storage s                   product/storageClass s              product/storageMedia s
product/subscriptionType s          product/tenancy s                   product/toLocation s
product/toLocationType s            product/toRegionCode s              product/transferType s
product/usagetype s                 product/vcpu s                      product/version s
product/volumeType s                pricing/LeaseContractLength s       pricing/OfferingClass s
pricing/PurchaseOption s            pricing/RateCode s                  pricing/RateId s
pricing/currency s                  pricing/publicOnDemandCost f        pricing/publicOnDemandRate s
pricing/term s                      pricing/unit s
reservation/AmortizedUpfrontCostForUsage f                  reservation/AmortizedUpfrontFeeForBillingPeriod f
reservation/EffectiveCost f         reservation/EndTime s               reservation/ModificationStatus s
reservation/NormalizedUnitsPerReservation s                 reservation/NumberOfReservations s
reservation/RecurringFeeForUsage f  reservation/ReservationARN s        reservation/StartTime s
reservation/SubscriptionId s        reservation/TotalReservedNormalizedUnits s
reservation/TotalReservedUnits s    reservation/UnitsPerReservation s
reservation/UnusedAmortizedUpfrontFeeForBillingPeriod f     reservation/UnusedNormalizedUnitQuantity q
reservation/UnusedQuantity q        reservation/UnusedRecurringFee f    reservation/UpfrontValue f
savingsPlan/TotalCommitmentToDate f savingsPlan/SavingsPlanARN s        savingsPlan/SavingsPlanRate f
savingsPlan/UsedCommitment f        savingsPlan/SavingsPlanEffectiveCost f
savingsPlan/AmortizedUpfrontCommitmentForBillingPeriod f    savingsPlan/RecurringCommitmentForBillingPeriod f
savingsPlan/StartTime s             savingsPlan/EndTime s               savingsPlan/OfferingType s
savingsPlan/PaymentOption s         savingsPlan/PurchaseTerm s          savingsPlan/Region s
savingsPlan/InstanceTypeFamily s    resourceTags/aws:createdBy s        resourceTags/user:application s
resourceTags/user:CostCenter s      resourceTags/user:Environment s     resourceTags/user:team s
resourceTags/user:Department s      resourceTags/user:Name s            resourceTags/user:Workload s
resourceTags/aws:autoscaling:groupName s
costCategory/BusinessUnit s
"""

# CUR 2.0 (table COST_AND_USAGE_REPORT): fixed set of 125 columns, data types from the AWS data
# dictionary. Kinds as above plus m = map<string,string>, md = map<string,double>, n = double left
# null (split cost allocation is off).
CUR2_COLUMNS_TABLE = """
bill_bill_type s                    bill_billing_entity s               bill_billing_period_end_date t
bill_billing_period_start_date t    bill_invoice_id s                   bill_invoicing_entity s
bill_payer_account_id s             bill_payer_account_name s           cost_category m
discount md                         discount_bundled_discount f         discount_total_discount f
identity_line_item_id id            identity_time_interval s            line_item_availability_zone s
line_item_blended_cost f            line_item_blended_rate s            line_item_currency_code s
line_item_legal_entity s            line_item_line_item_description s   line_item_line_item_type s
line_item_net_unblended_cost f      line_item_net_unblended_rate s      line_item_normalization_factor q
line_item_normalized_usage_amount q line_item_operation s               line_item_product_code s
line_item_resource_id s             line_item_tax_type s                line_item_unblended_cost f
line_item_unblended_rate s          line_item_usage_account_id s        line_item_usage_account_name s
line_item_usage_amount q            line_item_usage_end_date t          line_item_usage_start_date t
line_item_usage_type s              pricing_currency s                  pricing_lease_contract_length s
pricing_offering_class s            pricing_public_on_demand_cost f     pricing_public_on_demand_rate s
pricing_purchase_option s           pricing_rate_code s                 pricing_rate_id s
pricing_term s                      pricing_unit s                      product m
product_comment s                   product_fee_code s                  product_fee_description s
product_from_location s             product_from_location_type s        product_from_region_code s
product_instance_family s           product_instance_type s             product_instancesku s
product_location s                  product_location_type s             product_operation s
product_pricing_unit s              product_product_family s            product_region_code s
product_servicecode s               product_sku s                       product_to_location s
product_to_location_type s          product_to_region_code s            product_usagetype s
reservation_amortized_upfront_cost_for_usage f              reservation_amortized_upfront_fee_for_billing_period f
reservation_availability_zone s     reservation_effective_cost f        reservation_end_time s
reservation_modification_status s   reservation_net_amortized_upfront_cost_for_usage f
reservation_net_amortized_upfront_fee_for_billing_period f  reservation_net_effective_cost f
reservation_net_recurring_fee_for_usage f
reservation_net_unused_amortized_upfront_fee_for_billing_period f
reservation_net_unused_recurring_fee f                      reservation_net_upfront_value f
reservation_normalized_units_per_reservation s              reservation_number_of_reservations s
reservation_recurring_fee_for_usage f                       reservation_reservation_a_r_n s
reservation_start_time s            reservation_subscription_id s       reservation_total_reserved_normalized_units s
reservation_total_reserved_units s  reservation_units_per_reservation s
reservation_unused_amortized_upfront_fee_for_billing_period f            reservation_unused_normalized_unit_quantity q
reservation_unused_quantity q       reservation_unused_recurring_fee f  reservation_upfront_value f
resource_tags m                     savings_plan_amortized_upfront_commitment_for_billing_period f
savings_plan_end_time s             savings_plan_instance_type_family s
savings_plan_net_amortized_upfront_commitment_for_billing_period f
savings_plan_net_recurring_commitment_for_billing_period f  savings_plan_net_savings_plan_effective_cost f
savings_plan_offering_type s        savings_plan_payment_option s       savings_plan_purchase_term s
savings_plan_recurring_commitment_for_billing_period f      savings_plan_region s
savings_plan_savings_plan_a_r_n s   savings_plan_savings_plan_effective_cost f
savings_plan_savings_plan_rate f    savings_plan_start_time s           savings_plan_total_commitment_to_date f
savings_plan_used_commitment f      split_line_item_actual_usage n      split_line_item_net_split_cost n
split_line_item_net_unused_cost n   split_line_item_parent_resource_id s
split_line_item_public_on_demand_split_cost n               split_line_item_public_on_demand_unused_cost n
split_line_item_reserved_usage n    split_line_item_split_cost n        split_line_item_split_usage n
split_line_item_split_usage_ratio n split_line_item_unused_cost n
"""

# CUR 2.0 columns whose value is a copy of another column (net = gross: discounts come as separate rows).
CUR2_COPIES = {
    "line_item_net_unblended_cost": "line_item_unblended_cost",
    "line_item_net_unblended_rate": "line_item_unblended_rate",
    "reservation_net_amortized_upfront_cost_for_usage": "reservation_amortized_upfront_cost_for_usage",
    "reservation_net_amortized_upfront_fee_for_billing_period": "reservation_amortized_upfront_fee_for_billing_period",
    "reservation_net_effective_cost": "reservation_effective_cost",
    "reservation_net_recurring_fee_for_usage": "reservation_recurring_fee_for_usage",
    "reservation_net_unused_amortized_upfront_fee_for_billing_period":
        "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_net_unused_recurring_fee": "reservation_unused_recurring_fee",
    "reservation_net_upfront_value": "reservation_upfront_value",
    "savings_plan_net_amortized_upfront_commitment_for_billing_period":
        "savings_plan_amortized_upfront_commitment_for_billing_period",
    "savings_plan_net_recurring_commitment_for_billing_period": "savings_plan_recurring_commitment_for_billing_period",
    "savings_plan_net_savings_plan_effective_cost": "savings_plan_savings_plan_effective_cost",
    "product_pricing_unit": "pricing_unit",
}
CUR2_DISCOUNT_KEYS = {EDP: "edp_discount", PRD: "private_rate_discount", BUNDLED: "bundled_discount"}


def _athena_name(header: str) -> str:
    """`savingsPlan/SavingsPlanARN` -> `savings_plan_savings_plan_a_r_n` (every capital becomes _x)."""
    out = "".join("_" + ch.lower() if ch.isupper() else ch for ch in header)
    out = out.replace("/", "_").replace(":", "_")
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_")


def _parse_table(text: str) -> list[tuple[str, str]]:
    words = text.split()
    return list(zip(words[0::2], words[1::2], strict=True))


LEGACY_COLUMNS = [(header, _athena_name(header), kind) for header, kind in _parse_table(LEGACY_COLUMNS_TABLE)]
CUR2_COLUMNS = _parse_table(CUR2_COLUMNS_TABLE)
LEGACY_KIND = {name: kind for _, name, kind in LEGACY_COLUMNS}
CUR2_KIND = dict(CUR2_COLUMNS)
CUR2_TOP_LEVEL_PRODUCT = {name for name, _ in CUR2_COLUMNS if name.startswith("product_")}
# Legacy product attributes that CUR 2.0 folds into the `product` map (plus sku, kept in both).
CUR2_PRODUCT_MAP_COLUMNS = [n for _, n, _ in LEGACY_COLUMNS
                            if n.startswith("product_") and (n not in CUR2_TOP_LEVEL_PRODUCT or n == "product_sku")]
TAG_COLUMNS = [n for _, n, _ in LEGACY_COLUMNS if n.startswith("resource_tags_")]
COST_CATEGORY_COLUMNS = [n for _, n, _ in LEGACY_COLUMNS if n.startswith("cost_category_")]

# Every value column the generator fills (both layouts draw from this union).
_ALL_KINDS = {**{n: k for n, k in CUR2_KIND.items() if k not in ("m", "md", "n")}, **LEGACY_KIND}
STRING_COLUMNS = [n for n, k in _ALL_KINDS.items() if k == "s" and n not in CUR2_COPIES]
FLOAT_COLUMNS = [n for n, k in _ALL_KINDS.items() if k in ("f", "q") and n not in CUR2_COPIES]
MONEY_COLUMNS = [n for n, k in _ALL_KINDS.items() if k == "f" and n not in CUR2_COPIES]
TIMESTAMP_COLUMNS = [n for n, k in _ALL_KINDS.items() if k == "t"]

# Manifest "type" of legacy columns (as in AWS CUR manifests).
_MANIFEST_TYPE = {"id": "String", "s": "OptionalString", "t": "DateTime", "q": "OptionalBigDecimal",
                  "f": "OptionalBigDecimal"}
_REQUIRED_LEGACY = {"identity_line_item_id", "bill_payer_account_id", "line_item_line_item_type",
                    "line_item_usage_account_id", "line_item_currency_code", "line_item_unblended_cost"}
_CUR2_MANIFEST_TYPE = {"id": "string", "s": "string", "t": "timestamp", "q": "double", "f": "double",
                       "n": "double", "m": "map<string, string>", "md": "map<string, double>"}

# =============================================================================================
# Catalog: regions, services (one SKU per service and region), commitments, payers, tags
# =============================================================================================
REGIONS = (
    # region code      usage prefix  short   location                    price factor
    ("us-east-1",      "",           "USE1", "US East (N. Virginia)",    1.00),
    ("us-west-2",      "USW2-",      "USW2", "US West (Oregon)",         1.00),
    ("eu-west-1",      "EU-",        "EU",   "EU (Ireland)",             1.06),
    ("eu-central-1",   "EUC1-",      "EUC1", "EU (Frankfurt)",           1.14),
    ("ap-southeast-2", "APS2-",      "APS2", "Asia Pacific (Sydney)",    1.20),
)
INTER_REGION_PEER = {"us-east-1": "us-west-2", "us-west-2": "us-east-1", "eu-west-1": "eu-central-1",
                     "eu-central-1": "eu-west-1", "ap-southeast-2": "us-east-1"}
REGION_MIX = {"USD": (0.55, 0.25, 0.10, 0.05, 0.05), "EUR": (0.15, 0.0, 0.35, 0.50, 0.0)}
CURRENCY_RATE = {"USD": 1.0, "EUR": 0.92}  # list prices are converted for the EUR payer
CURRENCY_SYMBOL = {"USD": "$", "EUR": "EUR "}

PRODUCT_NAMES = {
    "AmazonEC2": "Amazon Elastic Compute Cloud",
    "AmazonS3": "Amazon Simple Storage Service",
    "AmazonRDS": "Amazon Relational Database Service",
    "AWSLambda": "AWS Lambda",
    "AWSDataTransfer": "AWS Data Transfer",
    "AmazonCloudWatch": "AmazonCloudWatch",
    "ComputeSavingsPlans": "Savings Plans for AWS Compute usage",
    "AWSSupportBusiness": "AWS Support (Business)",
    "AWSMarketplace": "",  # accumulator slot for marketplace products (their codes are product ids)
}
PRODUCT_CODES = tuple(PRODUCT_NAMES)
PCODE = {code: i for i, code in enumerate(PRODUCT_CODES)}
TAXED_PER_ACCOUNT = ("AmazonEC2", "AmazonS3", "AmazonRDS", "AWSLambda", "AWSDataTransfer", "AmazonCloudWatch")
TAXED_PER_PAYER = ("ComputeSavingsPlans", "AWSSupportBusiness")

# amount model: how line_item_usage_amount is drawn (lognormal mu, sigma of the underlying value)
AMOUNT_MODELS = {
    "hour": (0.0, 0.0),            # 1 instance-hour per row
    "gbmo": (math.log(150), 1.3),  # GB stored, accrued hourly as GB-Mo (GB / hours in month)
    "req": (math.log(3000), 1.6),  # request count
    "gb": (math.log(1.5), 1.7),    # GB transferred / processed in the hour
    "gbsec": (math.log(900), 1.3),  # Lambda GB-seconds
    "metric": (math.log(30), 0.9),  # custom metrics, accrued hourly (count / hours in month)
}
AMOUNT_MODEL_NAMES = tuple(AMOUNT_MODELS)
RESOURCE_POOLS = {  # resources per (usage account, SKU)
    "none": 0, "instance": 60, "volume": 80, "snapshot": 20, "nat": 2, "bucket": 8, "db": 3,
    "function": 10, "loggroup": 10,
}
RESOURCE_KINDS = tuple(RESOURCE_POOLS)
ZONAL_RESOURCES = {"instance", "volume", "db", "nat"}

EC2_INSTANCES = (
    # type        od USD  family               vcpu  memory    nf    network
    ("t3.medium", 0.0416, "General purpose",   "2",  "4 GiB",  2.0,  "Up to 5 Gigabit"),
    ("m5.large",  0.096,  "General purpose",   "2",  "8 GiB",  4.0,  "Up to 10 Gigabit"),
    ("m5.xlarge", 0.192,  "General purpose",   "4",  "16 GiB", 8.0,  "Up to 10 Gigabit"),
    ("c5.xlarge", 0.17,   "Compute optimized", "4",  "8 GiB",  8.0,  "Up to 10 Gigabit"),
    ("r5.large",  0.126,  "Memory optimized",  "2",  "16 GiB", 4.0,  "Up to 10 Gigabit"),
)
SPOT_PRICE = {"m5.large": 0.0352, "c5.xlarge": 0.0651}  # USD per hour


@dataclass(frozen=True)
class Service:
    """One billable usage type; crossed with every region it becomes a SKU."""
    key: str
    code: str
    family: str
    usage: str          # usage type without the region prefix ({peer} = inter-region peer short code)
    operation: str
    unit: str
    usd: float          # unblended (billed) rate in USD
    amount: str         # AMOUNT_MODELS key
    resource: str       # RESOURCE_POOLS key
    weight: float       # share of Usage rows
    desc: str           # description; {rate} is the rate with its currency symbol, {loc} the location
    od_usd: float | None = None  # public on-demand rate when it differs (Spot)
    term: str = "OnDemand"
    nf: float = 0.0     # RI normalization factor
    shares: str = ""    # service key whose resources this one bills too (same bucket, instance, ...)
    attrs: tuple[tuple[str, str], ...] = ()  # extra product attributes (Athena names w/o product_)


def _ec2_attrs(itype: str, family: str, vcpu: str, memory: str, network: str) -> tuple[tuple[str, str], ...]:
    return (("instance_type", itype), ("instance_family", family), ("instance_type_family", itype.split(".")[0]),
            ("vcpu", vcpu), ("memory", memory), ("network_performance", network), ("operating_system", "Linux"),
            ("tenancy", "Shared"), ("license_model", "No License required"), ("pre_installed_sw", "NA"),
            ("capacitystatus", "Used"), ("current_generation", "Yes"), ("processor_architecture", "64-bit"),
            ("storage", "EBS only"), ("enhanced_networking_supported", "Yes"),
            ("normalization_size_factor", str(int(dict(_NF_BY_SIZE)[itype.split(".")[1]]))))


_NF_BY_SIZE = (("medium", 2.0), ("large", 4.0), ("xlarge", 8.0), ("2xlarge", 16.0))


def _services() -> tuple[Service, ...]:
    out: list[Service] = []
    for itype, usd, family, vcpu, memory, nf, network in EC2_INSTANCES:
        attrs = _ec2_attrs(itype, family, vcpu, memory, network)
        out.append(Service(f"ec2.{itype}", "AmazonEC2", "Compute Instance", f"BoxUsage:{itype}", "RunInstances",
                           "Hrs", usd, "hour", "instance", 6.0,
                           f"{{rate}} per On Demand Linux {itype} Instance Hour", nf=nf, attrs=attrs))
        if itype in SPOT_PRICE:
            out.append(Service(f"spot.{itype}", "AmazonEC2", "Compute Instance", f"SpotUsage:{itype}",
                               "RunInstances:SV001", "Hrs", SPOT_PRICE[itype], "hour", "instance", 2.0,
                               f"{{rate}} per Linux/UNIX (Amazon VPC), {itype} Spot Instance-hour",
                               od_usd=usd, term="", nf=nf, attrs=attrs))
    ebs = (("volume_type", "General Purpose"), ("volume_api_name", "gp3"), ("storage_media", "SSD-backed"),
           ("max_volume_size", "16 TiB"), ("max_iopsvolume", "16000"), ("max_throughputvolume", "1000 MiB/s"))
    rds = (("database_engine", "MySQL"), ("deployment_option", "Single-AZ"), ("license_model", "No license required"),
           ("engine_code", "2"))
    dt_out = (("transfer_type", "AWS Outbound"), ("to_location", "External"), ("to_location_type", "Other"))
    out += [
        Service("ebs.gp3", "AmazonEC2", "Storage", "EBS:VolumeUsage.gp3", "CreateVolume-Gp3", "GB-Mo", 0.08,
                "gbmo", "volume", 12.0, "{rate} per GB-month of General Purpose (gp3) provisioned storage - {loc}",
                attrs=ebs),
        Service("ebs.snapshot", "AmazonEC2", "Storage Snapshot", "EBS:SnapshotUsage", "CreateSnapshot", "GB-Mo",
                0.05, "gbmo", "snapshot", 6.0, "{rate} per GB-Month of snapshot data stored - {loc}",
                attrs=(("storage_media", "Amazon S3"),)),
        Service("ec2.nat-hours", "AmazonEC2", "NAT Gateway", "NatGateway-Hours", "NatGateway", "Hrs", 0.045,
                "hour", "nat", 1.5, "{rate} per NAT Gateway Hour", attrs=(("group", "NGW:NatGateway"),)),
        Service("ec2.nat-bytes", "AmazonEC2", "NAT Gateway", "NatGateway-Bytes", "NatGateway", "GB", 0.045,
                "gb", "nat", 1.5, "{rate} per GB - NAT Gateway data processed", attrs=(("group", "NGW:NatGateway"),),
                shares="ec2.nat-hours"),
        Service("ec2.regional-bytes", "AmazonEC2", "Data Transfer", "DataTransfer-Regional-Bytes", "InterZone-In",
                "GB", 0.01, "gb", "instance", 3.0, "{rate} per GB - regional data transfer - in/out/between EC2 AZs",
                attrs=(("transfer_type", "IntraRegion"),), shares="ec2.m5.large"),
        Service("s3.storage", "AmazonS3", "Storage", "TimedStorage-ByteHrs", "StandardStorage", "GB-Mo", 0.023,
                "gbmo", "bucket", 6.0, "{rate} per GB - first 50 TB / month of storage used",
                attrs=(("storage_class", "General Purpose"), ("volume_type", "Standard"),
                       ("durability", "99.999999999%"), ("availability", "99.99%"))),
        Service("s3.tier1", "AmazonS3", "API Request", "Requests-Tier1", "PutObject", "Requests", 0.000005,
                "req", "bucket", 4.0, "{rate} per PUT, COPY, POST, or LIST request", attrs=(("group", "S3-API-Tier1"),),
                shares="s3.storage"),
        Service("s3.tier2", "AmazonS3", "API Request", "Requests-Tier2", "GetObject", "Requests", 0.0000004,
                "req", "bucket", 6.0, "{rate} per GET and all other requests", attrs=(("group", "S3-API-Tier2"),),
                shares="s3.storage"),
        Service("rds.db.r5.large", "AmazonRDS", "Database Instance", "InstanceUsage:db.r5.large",
                "CreateDBInstance:0002", "Hrs", 0.25, "hour", "db", 4.0,
                "{rate} per RDS db.r5.large Single-AZ instance hour (or partial hour) running MySQL", nf=4.0,
                attrs=rds + (("instance_type", "db.r5.large"), ("instance_family", "Memory optimized"),
                             ("instance_type_family", "r5"), ("vcpu", "2"), ("memory", "16 GiB"))),
        Service("rds.gp2", "AmazonRDS", "Database Storage", "RDS:GP2-Storage", "CreateDBInstance:0002", "GB-Mo",
                0.115, "gbmo", "db", 2.0, "{rate} per GB-month of provisioned GP2 storage running MySQL",
                attrs=rds + (("volume_type", "General Purpose"),), shares="rds.db.r5.large"),
        Service("lambda.duration", "AWSLambda", "Serverless", "Lambda-GB-Second", "Invoke", "Lambda-GB-Second",
                0.0000166667, "gbsec", "function", 3.0, "AWS Lambda - Total Compute - {loc}",
                attrs=(("group", "AWS-Lambda-Duration"),)),
        Service("lambda.requests", "AWSLambda", "Serverless", "Request", "Invoke", "Requests", 0.0000002, "req",
                "function", 3.0, "AWS Lambda - Total Requests - {loc}", attrs=(("group", "AWS-Lambda-Requests"),),
                shares="lambda.duration"),
        Service("dt.out", "AWSDataTransfer", "Data Transfer", "DataTransfer-Out-Bytes", "", "GB", 0.09, "gb",
                "instance", 5.0, "{rate} per GB - first 10 TB / month data transfer out beyond the global free tier",
                attrs=dt_out, shares="ec2.m5.large"),
        Service("dt.inter-region", "AWSDataTransfer", "Data Transfer", "{short}-{peer}-AWS-Out-Bytes", "", "GB",
                0.02, "gb", "instance", 2.0, "{rate} per GB - {loc} data transfer to {peerloc}",
                attrs=(("transfer_type", "InterRegion Outbound"),), shares="ec2.m5.large"),
        Service("cw.metrics", "AmazonCloudWatch", "Metric", "CW:MetricMonitorUsage", "MetricStorage", "Metrics",
                0.30, "metric", "none", 3.0, "{rate} per metric-month - first 10,000 metrics - {loc}"),
        Service("cw.logs-ingest", "AmazonCloudWatch", "Data Payload", "DataProcessing-Bytes", "PutLogEvents", "GB",
                0.50, "gb", "loggroup", 2.5, "{rate} per GB custom log data ingested - {loc}",
                attrs=(("group", "Ingested Logs"),)),
        Service("cw.logs-storage", "AmazonCloudWatch", "Storage Snapshot", "TimedStorage-ByteHrs",
                "HourlyStorageMetering", "GB-Mo", 0.03, "gbmo", "loggroup", 1.5,
                "{rate} per GB-mo of log storage - {loc}", shares="cw.logs-ingest"),
    ]
    return tuple(out)


SERVICES = _services()

RI_TEMPLATES = (
    # SKU (service key, region)          term  offering class  purchase option    discount  utilisation  bought at start
    (("ec2.m5.large", "us-east-1"),      1,    "standard",     "Partial Upfront",  0.37,     1.00,        True),
    (("ec2.c5.xlarge", "eu-west-1"),     3,    "convertible",  "All Upfront",      0.50,     0.85,        False),
    (("ec2.t3.medium", "us-west-2"),     1,    "standard",     "No Upfront",       0.30,     1.00,        False),
    (("rds.db.r5.large", "us-east-1"),   1,    "standard",     "Partial Upfront",  0.34,     0.60,        True),
)
RI_DU_WEIGHTS = (0.40, 0.25, 0.20, 0.15)
SP_TEMPLATES = (
    # payment option (per payer index, cycled)          term  discount  fully used  bought at start  share of SP rows
    (("No Upfront",),                                    1,    0.28,     True,       False,           0.55),
    (("Partial Upfront", "All Upfront"),                 3,    0.45,     False,      True,            0.45),
)
SP_UTILISATION = 0.85  # target for the SP that is not fully used
UPFRONT_FRACTION = {"No Upfront": 0.0, "Partial Upfront": 0.5, "All Upfront": 1.0}

PAYER_PROFILES = (
    # name                   slug        currency  invoicing entity  tax type      tax rate  row share
    ("Acme Corp",            "acme",     "USD",    AWS_INC,          "Sales Tax",  "0.0725", 1.00),
    ("Globex Retail",        "globex",   "USD",    AWS_INC,          "Sales Tax",  "0.0625", 0.60),
    ("Initech Europe GmbH",  "initech",  "EUR",    AWS_EMEA,         "VAT",        "0.19",   0.35),
    ("Umbrella Labs",        "umbrella", "USD",    AWS_INC,          "Sales Tax",  "0.0800", 0.25),
    ("Stark Logistics",      "stark",    "USD",    AWS_INC,          "Sales Tax",  "0.0600", 0.20),
)
ACCOUNT_ROLES = (
    # suffix        usage weight  business unit (cost category)
    ("management",  0.10,         "Shared Services"),
    ("prod",        0.45,         "Retail"),
    ("data",        0.25,         "Data Platform"),
    ("dev",         0.15,         "Engineering"),
    ("sandbox",     0.05,         ""),
)
MARKETPLACE_OFFERS = (
    # seller (legal entity)  product name                              monthly fee (USD)
    ("Datadog, Inc.",        "Datadog Pro (Pay-As-You-Go)",            499.00),
    ("Snowflake Inc.",       "Snowflake Data Cloud",                   1200.00),
    ("Elastic N.V.",         "Elastic Cloud (Elasticsearch Service)",  350.00),
)
TAGS = (
    # column                          share of resources tagged  values
    ("resource_tags_user_cost_center", 0.55, ("CC-1001", "CC-1002", "CC-2040", "CC-3100")),
    ("resource_tags_user_team",        0.70, ("platform", "data-eng", "web", "ml", "finops")),
    ("resource_tags_user_environment", 0.60, ("prod", "staging", "dev", "Production")),
    ("resource_tags_user_application", 0.45, ("checkout", "search", "etl", "analytics", "auth")),
    ("resource_tags_aws_created_by",   0.30, ("IAMUser:AIDA4XK2QJ3NYV7LTR2PB:alice",
                                               "AssumedRole:AROA5MN7W2ZQH6D3KCE4F:terraform-ci",
                                               "AssumedRole:AROA5MN7W2ZQH6D3KCE4F:github-actions")),
    # sparse, as in real exports (the October 2018 workshop CUR: 29 %, 7 %, 28 % and 2 % of its rows)
    ("resource_tags_user_department",  0.30, ("Analytics", "Finance", "Marketing", "Sales")),
    ("resource_tags_user_name",        0.07, ("JumpBox", "bastion", "build-agent", "Glue Notebook")),
    ("resource_tags_user_workload",    0.28, ("Peak", "Daytime", "Base Load")),
    ("resource_tags_aws_autoscaling_group_name", 0.02, ("web-asg", "batch-spot", "ci-runners")),
)
BUCKET_PURPOSES = ("logs", "assets", "data-lake", "backups", "artifacts", "exports", "media", "tmp")
FUNCTION_NAMES = ("ingest", "resize-images", "webhook", "etl-nightly", "auth", "notifier", "search-indexer",
                  "report-builder", "cleanup", "billing-sync")
DB_NAMES = ("orders-db", "users-db", "analytics-db")

# =============================================================================================
# Public API
# =============================================================================================


@dataclass(frozen=True)
class GenerationSummary:
    """What ``generate_aws_cur`` wrote. ``expected_totals`` is the content of expected_totals.json."""

    out_dir: Path
    report_dir: Path
    layout: str
    file_format: str
    rows: int
    rows_per_period: dict[str, int]
    data_files: list[Path]
    manifest_files: list[Path]
    invoice_files: list[Path]
    expected_totals_path: Path
    expected_totals: dict
    seconds: float

    @property
    def paths(self) -> list[Path]:
        """Every file written."""
        return [*self.data_files, *self.manifest_files, *self.invoice_files, self.expected_totals_path]


def generate_aws_cur(out_dir: str | Path, *, rows: int, months: int = 1, seed: int = 0,
                     layout: Literal["legacy", "cur2"] = "legacy",
                     file_format: Literal["parquet", "csv.gz"] = "parquet",
                     start_period: str = "2024-01", accounts: int = 3,
                     report_name: str = "focus-demo", rows_per_file: int = 500_000,
                     progress: Callable[[int], None] | None = None) -> GenerationSummary:
    """Write a synthetic AWS CUR delivery under ``out_dir`` and return what was written.

    ``rows`` is the total over all months (split evenly, the first months take the remainder);
    ``accounts`` is the number of payer (billing) accounts, each with 2-4 linked usage accounts;
    ``progress`` is called after each written chunk with the number of rows in that chunk.
    Deterministic for a given argument set. Raises ValueError when ``rows`` cannot hold the
    month-end rows (a few dozen per payer and month).
    """
    started = time.perf_counter()
    if layout not in ("legacy", "cur2"):
        raise ValueError(f"layout must be 'legacy' or 'cur2', not {layout!r}")
    if file_format not in ("parquet", "csv.gz"):
        raise ValueError(f"file_format must be 'parquet' or 'csv.gz', not {file_format!r}")
    if months < 1 or accounts < 1 or rows_per_file < 1:
        raise ValueError("months, accounts and rows_per_file must be >= 1")
    plan = _build_plan(rows=rows, months=months, seed=seed, start_period=start_period, payers=accounts)
    out = Path(out_dir)
    report_dir = out / report_name
    totals = _Totals(plan)
    data_files: list[Path] = []
    manifest_files: list[Path] = []
    for month in plan.months:
        writer = _MonthWriter(out, report_name, layout, file_format, month, plan)
        files = _write_month(plan, month, writer, rows_per_file, totals, progress)
        data_files += files
        manifest_files += writer.write_manifests(files, plan)
    invoice_files = _write_invoices(out, plan, totals)
    expected = totals.as_json(plan, layout=layout, file_format=file_format, seed=seed, report_name=report_name)
    report_dir.mkdir(parents=True, exist_ok=True)
    expected_path = report_dir / "expected_totals.json"
    expected_path.write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    write_sources(out, [export_source(report_name, "aws-cur", report_name)])
    return GenerationSummary(
        out_dir=out, report_dir=report_dir, layout=layout, file_format=file_format, rows=rows,
        rows_per_period={m.period: m.rows for m in plan.months}, data_files=data_files,
        manifest_files=manifest_files, invoice_files=invoice_files, expected_totals_path=expected_path,
        expected_totals=expected, seconds=time.perf_counter() - started,
    )


# =============================================================================================
# Counter-based randomness
# =============================================================================================
_U64 = np.uint64


def _h64(*parts: object) -> int:
    """Stable 64-bit hash of a few values (salts, ids)."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised over uint64 (wrapping arithmetic)."""
    x = x + _U64(0x9E3779B97F4A7C15)
    x ^= x >> _U64(30)
    x *= _U64(0xBF58476D1CE4E5B9)
    x ^= x >> _U64(27)
    x *= _U64(0x94D049BB133111EB)
    x ^= x >> _U64(31)
    return x


def _hash(keys: np.ndarray, salt: int) -> np.ndarray:
    return _mix(keys.astype(np.uint64, copy=False) ^ _U64(salt))


def _uniform(keys: np.ndarray, salt: int) -> np.ndarray:
    return (_hash(keys, salt) >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _randint(keys: np.ndarray, salt: int, n: np.ndarray | int) -> np.ndarray:
    n = np.asarray(n, dtype=np.uint64)
    return (_hash(keys, salt) % np.maximum(n, _U64(1))).astype(np.int64)


def _normal(keys: np.ndarray, salt: int) -> np.ndarray:
    u1 = _uniform(keys, salt) + 1e-300
    u2 = _uniform(keys, salt ^ 0x5DEECE66D)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)


def _code(parts: object, length: int, alphabet: str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") -> str:
    """Deterministic code like a SKU (16 upper-case alphanumerics)."""
    value, out = _h64(parts, "code") | (_h64(parts, "code2") << 64), []
    for _ in range(length):
        value, r = divmod(value, len(alphabet))
        out.append(alphabet[r])
    return "".join(out)


def _uuid(*parts: object) -> str:
    return str(uuid.UUID(int=(_h64(*parts) << 64) | _h64(*parts, "lo"), version=4))


# =============================================================================================
# Plan: payers, accounts, SKUs, RIs, SPs, and each month's row layout (all decided up front)
# =============================================================================================


@dataclass
class Account:
    idx: int             # global index
    payer: int
    account_id: str      # 12 digits, kept as a string (some start with 0)
    name: str
    weight: float
    business_unit: str


@dataclass
class Payer:
    idx: int
    name: str
    slug: str
    account_id: str
    currency: str
    invoicing_entity: str
    tax_type: str
    tax_rate: Decimal
    share: float
    accounts: list[Account]
    sku_cum: np.ndarray          # cumulative SKU weights for Usage rows
    sp_skus: np.ndarray          # SKUs an SP can cover (EC2 box usage in the payer's regions)
    edp: bool
    private_rates: bool
    marketplace: tuple[str, str, str, int]  # product id, name, seller, monthly units
    ris: list[Reservation] = field(default_factory=list)
    sps: list[SavingsPlan] = field(default_factory=list)


@dataclass
class Reservation:
    idx: int                 # global index
    payer: int
    sku: int
    term_years: int
    offering_class: str
    purchase_option: str
    utilisation: float
    bought_at_start: bool
    arn: str
    subscription_id: str
    rate_code: str
    start_time: str
    end_time: str
    upfront_each: int        # units, per reservation
    upfront_hourly: int      # units per reserved hour (amortised upfront)
    recurring_hourly: int    # units per reserved hour
    n_res: int = 1           # number of reservations (instances)
    used_hours: dict[int, int] = field(default_factory=dict)   # month -> used hours
    du_rows: dict[int, int] = field(default_factory=dict)      # month -> DiscountedUsage rows


@dataclass
class SavingsPlan:
    idx: int
    payer: int
    payment_option: str
    term_years: int
    discount: float
    fully_used: bool
    bought_at_start: bool
    arn: str
    start_time: str
    end_time: str
    hourly: bool = True                                       # recurring fee rows hourly, else monthly
    commitment: int = 0                                       # units per hour
    covered_rows: dict[int, int] = field(default_factory=dict)  # month -> covered rows (= negations)
    fleet_sku: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    fleet_account: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    eff_by_sku: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # units per hour

    @property
    def upfront_fraction(self) -> float:
        return UPFRONT_FRACTION[self.payment_option]

    def used(self, month: MonthPlan) -> np.ndarray:
        """Used commitment (units) per hour of the month (hourly) or one value (monthly)."""
        k = self.covered_rows.get(month.idx, 0)
        if self.hourly:
            q, r = divmod(k, month.hours)
            prefix = np.concatenate([[0], np.cumsum(self.eff_by_sku[self.fleet_sku[:q + 1]])])
            return np.where(np.arange(month.hours) < r, prefix[q + 1], prefix[q]).astype(np.int64)
        return np.array([int(self.eff_by_sku[self.fleet_sku[:k]].sum())], np.int64)


@dataclass
class Segment:
    kind: int       # USAGE, DISCOUNTED, SP_COVERED, SP_NEGATION
    payer: int
    ref: int        # RI / SP global index (-1 for Usage)
    rows: int


@dataclass
class MonthPlan:
    idx: int
    period: str              # YYYY-MM
    start: datetime
    end: datetime
    hours: int
    rows: int
    bulk: int = 0
    special: int = 0
    segments: list[Segment] = field(default_factory=list)
    seg_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    seg_kind: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    seg_payer: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    seg_ref: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    seg_pair: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # negation -> covered start
    step: int = 1
    offset: int = 0
    closed: bool = True      # invoiced (bill_invoice_id filled)

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return int(self.end.timestamp() * 1000)


@dataclass
class Sku:
    service: Service
    region: int
    code: str
    rate_id: str
    usage_type: str
    location: str
    peer_location: str       # the other end of inter-region transfer
    attrs: dict[str, str]    # product_* column -> value


@dataclass
class Catalog:
    skus: list[Sku]
    rate: dict[str, np.ndarray]        # currency -> unblended rate units per SKU
    od_rate: dict[str, np.ndarray]     # currency -> public on-demand rate units per SKU
    amount_model: np.ndarray
    resource_kind: np.ndarray
    resource_sku: np.ndarray           # SKU whose resource pool a row draws from (shared pools)
    nf: np.ndarray
    pcode: np.ndarray
    region: np.ndarray
    zonal: np.ndarray
    columns: dict[str, list[str]]      # string column -> value per SKU
    descriptions: dict[str, list[str]]  # currency -> description per SKU
    rate_text: dict[str, list[str]]
    od_rate_text: dict[str, list[str]]
    index: dict[tuple[str, str], int]  # (service key, region) -> SKU


@dataclass
class Plan:
    seed: int
    catalog: Catalog
    payers: list[Payer]
    accounts: list[Account]
    ris: list[Reservation]
    sps: list[SavingsPlan]
    months: list[MonthPlan]
    salts: dict[tuple[int, str], int] = field(default_factory=dict)

    def salt(self, month: int, name: str) -> int:
        key = (month, name)
        if key not in self.salts:
            self.salts[key] = _h64(self.seed, month, name)
        return self.salts[key]


def _rate_units(value: float) -> int:
    return round(value * UNITS)


def _rate_text(units: int) -> str:
    return f"{units / UNITS:.10f}"


def _short_decimal(units: int) -> str:
    text = f"{Decimal(units).scaleb(-10):f}".rstrip("0")
    return text + "0" if text.endswith(".") else text


def _build_catalog() -> Catalog:
    skus: list[Sku] = []
    for service in SERVICES:
        for r, (region, prefix, short, location, _factor) in enumerate(REGIONS):
            peer = INTER_REGION_PEER[region]
            peer_short, peer_loc = next((s, loc) for code, _, s, loc, _ in REGIONS if code == peer)
            if "{short}" in service.usage:  # inter-region transfer names both ends, no prefix
                usage = service.usage.format(short=short, peer=peer_short)
            else:
                usage = prefix + service.usage
            code = _code(("sku", service.key, region), 16)
            attrs = {
                "product_product_name": PRODUCT_NAMES[service.code], "product_servicecode": service.code,
                "product_servicename": PRODUCT_NAMES[service.code], "product_product_family": service.family,
                "product_usagetype": usage, "product_operation": service.operation, "product_region": region,
                "product_region_code": region, "product_location": location, "product_location_type": "AWS Region",
                "product_sku": code,
            }
            if service.family == "Data Transfer":
                attrs |= {"product_from_location": location, "product_from_location_type": "AWS Region",
                          "product_from_region_code": region, "product_to_location": location,
                          "product_to_location_type": "AWS Region", "product_to_region_code": region}
                if service.key == "dt.inter-region":
                    attrs |= {"product_to_location": peer_loc, "product_to_region_code": peer}
            attrs |= {f"product_{k}": v for k, v in service.attrs if f"product_{k}" in _ALL_KINDS}
            if service.key == "dt.out":
                attrs |= {"product_to_location_type": "Other", "product_to_region_code": ""}
            skus.append(Sku(service, r, code, str(_h64("rate-id", code) % 900_000_000 + 100_000_000), usage,
                            location, peer_loc, {k: v for k, v in attrs.items() if k in _ALL_KINDS}))
    rate, od_rate, descriptions, rate_text, od_rate_text = {}, {}, {}, {}, {}
    for currency, fx in CURRENCY_RATE.items():
        factor = [REGIONS[s.region][4] * fx for s in skus]
        rate[currency] = np.array([_rate_units(s.service.usd * f) for s, f in zip(skus, factor, strict=True)], np.int64)
        od_rate[currency] = np.array([_rate_units((s.service.od_usd or s.service.usd) * f)
                                      for s, f in zip(skus, factor, strict=True)], np.int64)
        rate_text[currency] = [_rate_text(int(u)) for u in rate[currency]]
        od_rate_text[currency] = [_rate_text(int(u)) for u in od_rate[currency]]
        descriptions[currency] = [
            s.service.desc.format(rate=CURRENCY_SYMBOL[currency] + _short_decimal(int(u)), loc=s.location,
                                  peerloc=s.peer_location)
            for s, u in zip(skus, rate[currency], strict=True)]
    columns: dict[str, list[str]] = {
        "line_item_product_code": [s.service.code for s in skus],
        "line_item_usage_type": [s.usage_type for s in skus],
        "line_item_operation": [s.service.operation for s in skus],
        "pricing_unit": [s.service.unit for s in skus],
        "pricing_term": [s.service.term for s in skus],
        "pricing_rate_id": [s.rate_id for s in skus],
        "pricing_rate_code": [f"{s.code}.JRTCKXETXF.6YS6EN2CT7" if s.service.term else "" for s in skus],
    }
    for name in sorted({k for s in skus for k in s.attrs}):
        columns[name] = [s.attrs.get(name, "") for s in skus]
    index = {(s.service.key, REGIONS[s.region][0]): i for i, s in enumerate(skus)}
    return Catalog(
        skus=skus, rate=rate, od_rate=od_rate,
        resource_sku=np.array([index[(s.service.shares or s.service.key, REGIONS[s.region][0])] for s in skus]),
        amount_model=np.array([AMOUNT_MODEL_NAMES.index(s.service.amount) for s in skus]),
        resource_kind=np.array([RESOURCE_KINDS.index(s.service.resource) for s in skus]),
        nf=np.array([s.service.nf for s in skus]), pcode=np.array([PCODE[s.service.code] for s in skus]),
        region=np.array([s.region for s in skus]),
        zonal=np.array([s.service.resource in ZONAL_RESOURCES and s.service.family != "Data Transfer" for s in skus]),
        columns=columns, descriptions=descriptions, rate_text=rate_text, od_rate_text=od_rate_text, index=index,
    )


def _account_id(seed: int, payer: int, role: int) -> str:
    value = _h64(seed, "account", payer, role) % 10**12
    if role == 2:  # some ids start with zeros; they must survive as strings
        value %= 10**10
    return f"{value:012d}"


def _build_payers(seed: int, n_payers: int, catalog: Catalog) -> tuple[list[Payer], list[Account]]:
    payers, accounts = [], []
    service_weight = np.array([s.service.weight for s in catalog.skus])
    for p in range(n_payers):
        name, slug, currency, entity, tax_type, tax_rate, share = PAYER_PROFILES[p % len(PAYER_PROFILES)]
        if p >= len(PAYER_PROFILES):
            name, slug, share = f"{name} {p // len(PAYER_PROFILES) + 1}", f"{slug}{p // len(PAYER_PROFILES) + 1}", 0.15
        n_linked = (4, 3, 2)[p % 3]
        own = []
        for role, (suffix, weight, unit) in enumerate(ACCOUNT_ROLES[:n_linked + 1]):
            acct = Account(len(accounts), p, _account_id(seed, p, role),
                           name if role == 0 else f"{slug}-{suffix}", weight, unit)
            accounts.append(acct)
            own.append(acct)
        region_weight = np.array([REGION_MIX[currency][r] for r in catalog.region])
        sku_cum = np.cumsum(service_weight * region_weight)
        sp_skus = np.array([i for i, s in enumerate(catalog.skus)
                            if s.service.key.startswith("ec2.") and s.service.usage.startswith("BoxUsage")
                            and REGION_MIX[currency][s.region] > 0])
        seller, product_name, monthly = MARKETPLACE_OFFERS[p % len(MARKETPLACE_OFFERS)]
        product_id = _code(("marketplace", seed, p), 25, "abcdefghijklmnopqrstuvwxyz0123456789")
        fee_units = _rate_units(round(monthly * CURRENCY_RATE[currency], 2))
        payers.append(Payer(
            idx=p, name=name, slug=slug, account_id=own[0].account_id, currency=currency, invoicing_entity=entity,
            tax_type=tax_type, tax_rate=Decimal(tax_rate), share=share, accounts=own, sku_cum=sku_cum / sku_cum[-1],
            sp_skus=sp_skus, edp=p % 4 == 0, private_rates=p % 4 == (1 if n_payers > 1 else 0),
            marketplace=(product_id, product_name, seller, fee_units)))
    return payers, accounts


def _iso_ms(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _bought_before(first: datetime, term_years: int, days_before: int, months: int) -> datetime:
    """Purchase date of a commitment bought before the data starts, still active at its end."""
    latest_possible = 365 * term_years - 31 * months - 1
    return first - timedelta(days=max(1, min(days_before, latest_possible)), hours=5, minutes=17)


def _build_commitments(seed: int, payers: list[Payer], catalog: Catalog, first: datetime,
                       months: int) -> tuple[list[Reservation], list[SavingsPlan]]:
    ris, sps = [], []
    for payer in payers:
        for t, (sku_key, years, klass, option, discount, util, at_start) in enumerate(RI_TEMPLATES):
            years = years if 365 * years > 31 * months else 3  # long runs: terms that cover them
            sku = catalog.index[sku_key]
            od = catalog.od_rate[payer.currency][sku] / UNITS
            effective = od * (1 - discount)  # per hour, all-in
            upfront_share = UPFRONT_FRACTION[option]
            upfront_each = _rate_units(round(effective * upfront_share * 8760 * years))  # whole currency units
            recurring = _rate_units(round(effective * (1 - upfront_share), 4))
            start = first if at_start else _bought_before(first, years, 60 + 90 * t, months)
            end = start + timedelta(days=365 * years)
            service = catalog.skus[sku].service
            arn_region, account = REGIONS[catalog.skus[sku].region][0], payer.account_id
            ident = _uuid(seed, "ri", payer.idx, t)
            arn = (f"arn:aws:ec2:{arn_region}:{account}:reserved-instances/{ident}" if service.code == "AmazonEC2"
                   else f"arn:aws:rds:{arn_region}:{account}:ri:{payer.slug}-ri-{t + 1}")
            res = Reservation(
                idx=len(ris), payer=payer.idx, sku=sku, term_years=years, offering_class=klass,
                purchase_option=option, utilisation=util, bought_at_start=at_start, arn=arn,
                subscription_id=str(_h64(seed, "sub", payer.idx, t) % 9_000_000_000 + 1_000_000_000),
                rate_code=f"{catalog.skus[sku].code}.{_code(('offer', option, years), 10)}.{_code(('dim', t), 10)}",
                start_time=_iso_ms(start), end_time=_iso_ms(end), upfront_each=upfront_each,
                upfront_hourly=round(upfront_each / (8760 * years), -2) if upfront_each else 0,
                recurring_hourly=recurring)
            ris.append(res)
            payer.ris.append(res)
        for t, (options, years, discount, fully_used, at_start, _share) in enumerate(SP_TEMPLATES):
            years = years if 365 * years > 31 * months else 3
            option = options[payer.idx % len(options)]
            start = first if at_start else _bought_before(first, years, 120 + 31 * t, months)
            sp = SavingsPlan(
                idx=len(sps), payer=payer.idx, payment_option=option, term_years=years, discount=discount,
                fully_used=fully_used, bought_at_start=at_start,
                arn=f"arn:aws:savingsplans::{payer.account_id}:savingsplan/{_uuid(seed, 'sp', payer.idx, t)}",
                start_time=_iso_ms(start), end_time=_iso_ms(start + timedelta(days=365 * years)))
            od = catalog.od_rate[payer.currency]
            sp.eff_by_sku = np.array([round(int(u) * (1 - discount), -2) for u in od], np.int64)
            sps.append(sp)
            payer.sps.append(sp)
    return ris, sps


def _months(start_period: str, months: int, rows: int) -> list[MonthPlan]:
    try:
        year, month = (int(x) for x in start_period.split("-"))
        first = datetime(year, month, 1, tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"start_period must be YYYY-MM, not {start_period!r}") from exc
    out = []
    base, extra = divmod(rows, months)
    for m in range(months):
        y, mo = divmod(first.month - 1 + m, 12)
        start = datetime(first.year + y, mo + 1, 1, tzinfo=UTC)
        y2, mo2 = divmod(start.month, 12)
        end = datetime(start.year + y2, mo2 + 1, 1, tzinfo=UTC)
        out.append(MonthPlan(idx=m, period=start.strftime("%Y-%m"), start=start, end=end,
                             hours=int((end - start).total_seconds() // 3600), rows=base + (m < extra),
                             closed=months == 1 or m < months - 1))
    return out


def _split(total: int, weights: list[float]) -> list[int]:
    """Largest-remainder split of ``total`` in proportion to ``weights``."""
    w = np.asarray(weights, dtype=float)
    raw = total * w / w.sum()
    out = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - out), kind="stable")[: total - out.sum()]:
        out[i] += 1
    return [int(x) for x in out]


def _build_plan(*, rows: int, months: int, seed: int, start_period: str, payers: int) -> Plan:
    catalog = _build_catalog()
    month_plans = _months(start_period, months, rows)
    payer_list, accounts = _build_payers(seed, payers, catalog)
    ris, sps = _build_commitments(seed, payer_list, catalog, month_plans[0].start, months)
    plan = Plan(seed, catalog, payer_list, accounts, ris, sps, month_plans)
    # Savings plan fees are hourly rows when the plan's covered rows can fill every hour of every
    # month, else one monthly row. Start monthly, promote, and step back if the hourly fee rows
    # themselves eat the budget.
    for sp in sps:
        sp.hourly = False
    _layout_bulk(plan)
    for sp in sps:
        sp.hourly = all(sp.covered_rows[m.idx] >= 1.05 * m.hours for m in month_plans)
    _layout_bulk(plan)
    if any(sp.hourly and any(sp.covered_rows[m.idx] < m.hours for m in month_plans) for sp in sps):
        for sp in sps:
            sp.hourly = False
        _layout_bulk(plan)
    _size_commitments(plan)
    for month in month_plans:
        _finish_layout(plan, month)
    return plan


def _layout_bulk(plan: Plan) -> None:
    """Row counts per month: month-end rows first, the rest split into payer / type segments."""
    for month in plan.months:
        month.special = sum(_special_count(plan, payer, month) for payer in plan.payers)
        month.bulk = month.rows - month.special
        if month.bulk < 20 * len(plan.payers):
            need = (month.special + 20 * len(plan.payers)) * len(plan.months)
            raise ValueError(f"rows={sum(m.rows for m in plan.months)} is too small for {len(plan.payers)} payer(s) "
                             f"and {len(plan.months)} month(s); use at least {need}")
        month.segments = []
        for payer, bulk in zip(plan.payers, _split(month.bulk, [p.share for p in plan.payers]), strict=True):
            du = _split(round(bulk * DISCOUNTED_SHARE), list(RI_DU_WEIGHTS))
            cov = _split(round(bulk * SP_COVERED_SHARE), [t[-1] for t in SP_TEMPLATES])
            for ri, n in zip(payer.ris, du, strict=True):
                ri.du_rows[month.idx] = n
            for sp, n in zip(payer.sps, cov, strict=True):
                sp.covered_rows[month.idx] = n
            month.segments.append(Segment(USAGE, payer.idx, -1, bulk))


def _size_commitments(plan: Plan) -> None:
    """RI sizes / used hours and SP commitments from the planned row counts (exact unused amounts)."""
    hours_max = max(m.hours for m in plan.months)
    for ri in plan.ris:
        min_rows = min(ri.du_rows[m.idx] for m in plan.months)
        ri.n_res = max(1, min_rows // hours_max)
        for m in plan.months:
            capacity = ri.n_res * m.hours
            used = capacity if ri.utilisation >= 1 else math.floor(capacity * ri.utilisation)
            rows = min(ri.du_rows[m.idx], used)  # surplus rows become on-demand Usage
            ri.used_hours[m.idx] = used if rows else 0
            ri.du_rows[m.idx] = rows
    for sp in plan.sps:
        payer = plan.payers[sp.payer]
        if sp.hourly and sp.fully_used:  # the same number of covered instances every hour
            q = min(sp.covered_rows[m.idx] // m.hours for m in plan.months)
            for m in plan.months:
                sp.covered_rows[m.idx] = q * m.hours
        fleet = max(sp.covered_rows.values()) + 1
        keys = np.arange(fleet, dtype=np.uint64)
        salt = _h64(plan.seed, "sp-fleet", sp.idx)
        sp.fleet_sku = payer.sp_skus[_randint(keys, salt, len(payer.sp_skus))]
        weights = np.cumsum([a.weight for a in payer.accounts])
        local = np.searchsorted(weights / weights[-1], _uniform(keys, salt + 1), side="right")
        sp.fleet_account = np.array([a.idx for a in payer.accounts])[np.minimum(local, len(payer.accounts) - 1)]
        peak = max(int(sp.used(m).max()) for m in plan.months)  # per hour (hourly) or per month
        if sp.hourly and sp.fully_used:
            sp.commitment = max(peak, 1)  # every hour has the same covered instances: 100 % used
        else:
            per_hour = peak if sp.hourly else max(int(sp.used(m)[0]) / m.hours for m in plan.months)
            # commitments are bought in tenths of a cent per hour
            sp.commitment = max(10**7, math.ceil(per_hour / SP_UTILISATION / 10**7) * 10**7)
    for month in plan.months:
        for payer in plan.payers:
            seg = next(s for s in month.segments if s.payer == payer.idx and s.kind == USAGE)
            committed = sum(ri.du_rows[month.idx] for ri in payer.ris) \
                + 2 * sum(sp.covered_rows[month.idx] for sp in payer.sps)
            total = seg.rows
            seg.rows = total - committed
            for ri in payer.ris:
                month.segments.append(Segment(DISCOUNTED, payer.idx, ri.idx, ri.du_rows[month.idx]))
            for sp in payer.sps:
                month.segments.append(Segment(SP_COVERED, payer.idx, sp.idx, sp.covered_rows[month.idx]))
                month.segments.append(Segment(SP_NEGATION, payer.idx, sp.idx, sp.covered_rows[month.idx]))


def _finish_layout(plan: Plan, month: MonthPlan) -> None:
    order = sorted(range(len(month.segments)), key=lambda i: (month.segments[i].payer, i))
    month.segments = [month.segments[i] for i in order if month.segments[i].rows > 0]
    sizes = np.array([s.rows for s in month.segments], np.int64)
    month.seg_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    month.seg_kind = np.array([s.kind for s in month.segments], np.int64)
    month.seg_payer = np.array([s.payer for s in month.segments], np.int64)
    month.seg_ref = np.array([s.ref for s in month.segments], np.int64)
    month.seg_pair = month.seg_start.copy()
    for i, s in enumerate(month.segments):
        if s.kind == SP_NEGATION:
            month.seg_pair[i] = month.seg_start[i - 1]  # the covered segment sits right before
    assert int(sizes.sum()) == month.bulk
    # visiting order: i -> (i * step + offset) mod bulk, a permutation because gcd(step, bulk) == 1
    step = max(1, int(month.bulk * 0.6180339887))
    while math.gcd(step, month.bulk) != 1:
        step += 1
    month.step, month.offset = step, plan.salt(month.idx, "offset") % month.bulk


# =============================================================================================
# Month-end rows (RIFee, fees, credits, discounts, tax): counted up front, filled at month end
# =============================================================================================


def _special_count(plan: Plan, payer: Payer, month: MonthPlan) -> int:
    first = month.idx == 0
    n = len(payer.ris)                                                   # RIFee
    n += sum(1 for ri in payer.ris if ri.bought_at_start and first)      # RI upfront Fee
    n += sum(1 for sp in payer.sps if sp.bought_at_start and first and sp.upfront_fraction > 0)
    n += sum(month.hours if sp.hourly else 1 for sp in payer.sps)        # SavingsPlanRecurringFee
    n += 2                                                               # support + marketplace Fee
    n += 2                                                               # Credits
    n += 1 if (payer.idx + month.idx) % 3 == 0 else 0                    # Refund
    n += len(payer.accounts) * len(TAXED_PER_ACCOUNT) if payer.edp else 0
    n += len(payer.accounts) if payer.private_rates else 0
    n += 1                                                               # BundledDiscount
    n += len(payer.accounts) * len(TAXED_PER_ACCOUNT) + len(TAXED_PER_PAYER)  # Tax
    return n


class _MonthState:
    """Accumulators over a month's bulk rows, and the month-end rows built from them."""

    def __init__(self, plan: Plan):
        self.base = np.zeros((len(plan.accounts), len(PRODUCT_CODES)), np.float64)  # unblended by acct/code
        self.special: list[dict] | None = None

    def add(self, accounts: np.ndarray, pcodes: np.ndarray, unblended: np.ndarray) -> None:
        flat = accounts * len(PRODUCT_CODES) + pcodes
        self.base += np.bincount(flat, weights=unblended, minlength=self.base.size).reshape(self.base.shape)


def _cents(value: float) -> int:
    """A currency amount rounded to cents, in units."""
    return round(value * 100) * (UNITS // 100)


def _special_rows(plan: Plan, month: MonthPlan, state: _MonthState) -> list[dict]:
    rows: list[dict] = []
    for payer in plan.payers:
        rows += _MonthEnd(plan, payer, month, state).rows()
    assert len(rows) == month.special, (len(rows), month.special)
    return rows


class _MonthEnd:
    """One payer's month-end rows, as dicts of column -> value (money in units).

    Each row also feeds the (account, product code) base that credits, discounts and tax use.
    The rows come in the order counted by ``_special_count``.
    """

    def __init__(self, plan: Plan, payer: Payer, month: MonthPlan, state: _MonthState):
        self.plan, self.payer, self.month, self.state = plan, payer, month, state
        self.cat = plan.catalog
        self.mgmt, self.linked = payer.accounts[0], payer.accounts[1]
        self.out: list[dict] = []

    def rows(self) -> list[dict]:
        self.ri_fees()
        self.ri_upfront_fees()
        self.savings_plan_fees()
        self.support_and_marketplace_fees()
        self.credits_and_refund()
        self.discounts()
        self.taxes()
        return self.out

    def add(self, kind: int, account: Account, pcode: str, unblended: int, slot: str | None = None,
            **cols: object) -> None:
        row = {"__type": kind, "__payer": self.payer.idx, "__account": account.idx, "__pcode": PCODE[slot or pcode],
               "line_item_line_item_type": LINE_ITEM_TYPES[kind], "line_item_product_code": pcode,
               "product_product_name": PRODUCT_NAMES.get(pcode, ""), "line_item_unblended_cost": unblended,
               "line_item_blended_cost": unblended, "line_item_usage_start_date": self.month.start_ms,
               "line_item_usage_end_date": self.month.end_ms, **cols}
        if kind != TAX:
            self.state.base[account.idx, row["__pcode"]] += unblended / UNITS
        self.out.append(row)

    def base(self, accounts: list[Account], code: str) -> float:
        return float(self.state.base[[a.idx for a in accounts], PCODE[code]].sum())

    def ri_columns(self, ri: Reservation) -> dict[str, object]:
        sku = self.cat.skus[ri.sku]
        return {
            "line_item_usage_type": f"{REGIONS[sku.region][1]}HeavyUsage:{sku.attrs.get('product_instance_type', '')}",
            "line_item_operation": sku.service.operation, "product_region": sku.attrs["product_region"],
            "product_region_code": sku.attrs["product_region"], "product_sku": sku.code,
            "pricing_term": "Reserved", "pricing_purchase_option": ri.purchase_option,
            "pricing_lease_contract_length": f"{ri.term_years}yr", "pricing_offering_class": ri.offering_class,
            "reservation_reservation_a_r_n": ri.arn, "reservation_subscription_id": ri.subscription_id,
            "reservation_start_time": ri.start_time, "reservation_end_time": ri.end_time,
            "reservation_number_of_reservations": str(ri.n_res),
            "reservation_upfront_value": ri.n_res * ri.upfront_each,
        }

    def ri_fees(self) -> None:
        """RIFee: one per RI and month; its unused hours carry the unused upfront and recurring fee."""
        hours = self.month.hours
        for ri in self.payer.ris:
            sku = self.cat.skus[ri.sku]
            capacity = ri.n_res * hours
            unused = capacity - ri.used_hours[self.month.idx]
            nf = sku.service.nf
            platform = "Linux/UNIX (Amazon VPC)" if sku.service.code == "AmazonEC2" else "MySQL"
            rate = _rate_text(ri.recurring_hourly)
            self.add(
                RI_FEE, self.mgmt, sku.service.code, capacity * ri.recurring_hourly, **self.ri_columns(ri),
                line_item_usage_amount=float(capacity), line_item_normalization_factor=nf,
                line_item_normalized_usage_amount=capacity * nf, line_item_unblended_rate=rate,
                line_item_blended_rate=rate, line_item_usage_end_date=self.month.end_ms - 1000,
                line_item_line_item_description=(f"{self.payer.currency} {_short_decimal(ri.recurring_hourly)} "
                                                 f"hourly fee per {platform}, "
                                                 f"{sku.attrs.get('product_instance_type', '')} instance"),
                product_location=sku.location, product_location_type="AWS Region", pricing_rate_code=ri.rate_code,
                pricing_unit="Hrs", reservation_modification_status="Original",
                reservation_total_reserved_units=f"{capacity:.10f}", reservation_units_per_reservation=f"{hours:.10f}",
                reservation_normalized_units_per_reservation=f"{hours * nf:.11f}",
                reservation_total_reserved_normalized_units=f"{capacity * nf:.11f}",
                reservation_amortized_upfront_fee_for_billing_period=capacity * ri.upfront_hourly,
                reservation_unused_amortized_upfront_fee_for_billing_period=unused * ri.upfront_hourly,
                reservation_unused_recurring_fee=unused * ri.recurring_hourly,
                reservation_unused_quantity=float(unused), reservation_unused_normalized_unit_quantity=unused * nf)

    def ri_upfront_fees(self) -> None:
        """Fee: the upfront payment of RIs bought in this month (a Purchase bill)."""
        for ri in self.payer.ris:
            if ri.bought_at_start and self.month.idx == 0:
                upfront = ri.n_res * ri.upfront_each
                self.add(FEE, self.mgmt, self.cat.skus[ri.sku].service.code, upfront, **self.ri_columns(ri),
                         bill_bill_type="Purchase", line_item_usage_amount=float(ri.n_res),
                         line_item_unblended_rate=_rate_text(ri.upfront_each),
                         line_item_blended_rate=_rate_text(ri.upfront_each),
                         line_item_line_item_description=(
                             f"Sign up charge for subscription: {ri.subscription_id}, "
                             f"planId: {_h64('plan', ri.arn) % 9_000_000 + 1_000_000}"))

    def savings_plan_fees(self) -> None:
        """SavingsPlanUpfrontFee once; SavingsPlanRecurringFee every hour (or once a month)."""
        month = self.month
        for sp in self.payer.sps:
            sp_cols = {"savings_plan_savings_plan_a_r_n": sp.arn, "savings_plan_offering_type": "ComputeSavingsPlans",
                       "savings_plan_payment_option": sp.payment_option,
                       "savings_plan_purchase_term": f"{sp.term_years}yr", "savings_plan_start_time": sp.start_time,
                       "savings_plan_end_time": sp.end_time, "product_product_family": "Savings Plans",
                       "product_servicecode": "ComputeSavingsPlans",
                       "line_item_usage_type": f"ComputeSP:{sp.term_years}yr{sp.payment_option.replace(' ', '')}"}
            name = f"{sp.term_years} year {sp.payment_option} Compute Savings Plan"
            if sp.bought_at_start and month.idx == 0 and sp.upfront_fraction > 0:
                upfront = _cents(sp.commitment * sp.upfront_fraction * 8760 * sp.term_years / UNITS)
                self.add(SP_UPFRONT, self.mgmt, "ComputeSavingsPlans", upfront, **sp_cols, bill_bill_type="Purchase",
                         line_item_usage_amount=1.0, line_item_unblended_rate=_rate_text(upfront),
                         line_item_blended_rate=_rate_text(upfront), line_item_usage_end_date=month.start_ms,
                         line_item_line_item_description=f"{name} upfront fee")
            per_row = sp.commitment if sp.hourly else sp.commitment * month.hours
            amortised = int(per_row * sp.upfront_fraction)
            recurring = per_row - amortised
            rate = _rate_text(recurring if sp.hourly else round(recurring / month.hours))
            starts = range(month.hours) if sp.hourly else [0]
            length = 1 if sp.hourly else month.hours
            for h, used in zip(starts, sp.used(month).tolist(), strict=True):
                self.add(SP_RECURRING, self.mgmt, "ComputeSavingsPlans", recurring, **sp_cols,
                         line_item_usage_start_date=month.start_ms + h * HOUR_MS,
                         line_item_usage_end_date=month.start_ms + (h + length) * HOUR_MS,
                         line_item_usage_amount=float(length), line_item_unblended_rate=rate,
                         line_item_blended_rate=rate, line_item_line_item_description=name,
                         savings_plan_total_commitment_to_date=per_row, savings_plan_used_commitment=used,
                         savings_plan_amortized_upfront_commitment_for_billing_period=amortised,
                         savings_plan_recurring_commitment_for_billing_period=recurring)

    def support_and_marketplace_fees(self) -> None:
        """Fee: Business support (greater of 100 or 10 % of usage) and an AWS Marketplace subscription."""
        usage = sum(self.base(self.payer.accounts, code) for code in TAXED_PER_ACCOUNT)
        support = _cents(max(100.0 * CURRENCY_RATE[self.payer.currency], 0.10 * usage))
        self.add(FEE, self.mgmt, "AWSSupportBusiness", support, line_item_usage_type="Dollar",
                 line_item_usage_amount=1.0, line_item_unblended_rate=_rate_text(support),
                 line_item_blended_rate=_rate_text(support), line_item_line_item_description="AWS Support (Business)",
                 product_product_family="AWS Support", product_servicecode="AWSSupportBusiness",
                 product_sku=_code(("support", self.payer.currency), 16))
        product_id, product_name, seller, fee = self.payer.marketplace
        self.add(FEE, self.linked, product_id, fee, slot="AWSMarketplace", bill_billing_entity="AWS Marketplace",
                 line_item_legal_entity=seller, line_item_usage_type="SaaS-Subscription", line_item_usage_amount=1.0,
                 line_item_unblended_rate=_rate_text(fee), line_item_blended_rate=_rate_text(fee),
                 line_item_line_item_description=f"{product_name} monthly subscription",
                 product_product_name=product_name, product_sku=_code(("mp-sku", product_id), 16))

    def credits_and_refund(self) -> None:
        """Credit: a promotional credit and an SLA credit; Refund: every third payer-month."""
        promo = -_cents(max(1.0, min(500.0, 0.05 * self.base([self.mgmt, self.linked], "AmazonEC2"))))
        self.add(CREDIT, self.linked, "AmazonEC2", promo, line_item_line_item_description="AWS Promotional Credit")
        sla = -_cents(max(0.5, 0.10 * self.base([self.linked], "AmazonS3")))
        self.add(CREDIT, self.linked, "AmazonS3", sla,
                 line_item_line_item_description="Service level agreement credit - Amazon S3")
        if (self.payer.idx + self.month.idx) % 3 == 0:
            refund = -_cents(25 + _h64(self.plan.seed, "refund", self.payer.idx, self.month.idx) % 5000 / 100)
            self.add(REFUND, self.linked, "AmazonRDS", refund, bill_bill_type="Refund",
                     line_item_line_item_description="Refund for RDS instance hours billed in error")

    def discounts(self) -> None:
        """EDP and private-rate discounts (separate rows, 8 decimals) and a bundled discount."""
        def share(rate: float, account: Account, code: str) -> int:
            return -round(rate * max(0.0, self.base([account], code)) * 10**8) * 100

        if self.payer.edp:
            for account in self.payer.accounts:
                for code in TAXED_PER_ACCOUNT:
                    self.add(EDP, account, code, share(0.03, account, code),
                             line_item_line_item_description="Enterprise Program Discount")
        if self.payer.private_rates:
            for account in self.payer.accounts:
                self.add(PRD, account, "AmazonS3", share(0.07, account, "AmazonS3"),
                         line_item_line_item_description="Private rate discount for Amazon S3")
        bundled = -_cents(min(9.0, max(0.01, 0.5 * self.base(self.payer.accounts, "AWSDataTransfer"))))
        self.add(BUNDLED, self.mgmt, "AWSDataTransfer", bundled,
                 line_item_line_item_description="Data transfer bundled with Amazon CloudFront")

    def taxes(self) -> None:
        """Tax last, per account and product code, in cents, on everything billed so far."""
        taxed = [(account, code) for account in self.payer.accounts for code in TAXED_PER_ACCOUNT]
        taxed += [(self.mgmt, code) for code in TAXED_PER_PAYER]
        for account, code in taxed:
            base = Decimal(repr(max(0.0, self.base([account], code))))
            tax = int((base * self.payer.tax_rate).quantize(Decimal("0.01")) * UNITS)
            self.add(TAX, account, code, tax, line_item_tax_type=self.payer.tax_type, line_item_usage_amount=1.0,
                     line_item_line_item_description=f"Tax for product code {code}")


# =============================================================================================
# Batch: the columns of up to BATCH_ROWS rows, strings as dictionary codes
# =============================================================================================


class _Batch:
    def __init__(self, n: int):
        self.n = n
        self.codes = {c: np.zeros(n, np.int32) for c in STRING_COLUMNS}
        self.vocab: dict[str, dict[str, int]] = {c: {"": 0} for c in STRING_COLUMNS}
        self.num = {c: np.zeros(n, np.float64) for c in FLOAT_COLUMNS}
        self.ts = {c: np.zeros(n, np.int64) for c in TIMESTAMP_COLUMNS}
        self.id_keys = np.zeros(n, np.uint64)
        self.payer = np.zeros(n, np.int64)
        self.type = np.zeros(n, np.int64)
        self.account = np.zeros(n, np.int64)
        self.pcode = np.zeros(n, np.int64)
        self.resource_key = np.full(n, -1, np.int64)

    def _code(self, col: str, value: str) -> int:
        vocab = self.vocab[col]
        code = vocab.get(value)
        if code is None:
            code = vocab[value] = len(vocab)
        return code

    def text(self, col: str, rows: np.ndarray | slice, value: str) -> None:
        """Same string for all ``rows``."""
        self.codes[col][rows] = self._code(col, value)

    def choose(self, col: str, rows: np.ndarray | slice, index: np.ndarray, values: list[str]) -> None:
        """``values[index]`` for each of ``rows`` (values: a short list, e.g. one per SKU)."""
        used = range(len(values)) if len(values) <= 4096 else np.unique(index).tolist()
        remap = np.zeros(len(values), np.int32)
        for i in used:
            remap[i] = self._code(col, values[i])
        self.codes[col][rows] = remap[index]

    def money(self, col: str, rows: np.ndarray | slice, units: np.ndarray) -> None:
        self.num[col][rows] = units / UNITS

    def vocab_list(self, col: str) -> list[str]:
        return list(self.vocab[col])


class _ResourceNames:
    """Resource id strings by integer key, cached across batches."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.cache: dict[int, str] = {}

    @staticmethod
    def key(account: np.ndarray, sku: np.ndarray, slot: np.ndarray, n_skus: int) -> np.ndarray:
        return (account * n_skus + sku) * 1000 + slot

    def names(self, keys: np.ndarray) -> list[str]:
        out = []
        cat, accounts = self.plan.catalog, self.plan.accounts
        n_skus = len(cat.skus)
        for key in keys.tolist():
            name = self.cache.get(key)
            if name is None:
                acct_sku, slot = divmod(key, 1000)
                account_idx, sku_idx = divmod(acct_sku, n_skus)
                name = self.cache[key] = self._name(accounts[account_idx], cat.skus[sku_idx], slot, key)
            out.append(name)
        return out

    def _name(self, account: Account, sku: Sku, slot: int, key: int) -> str:
        h = _h64(self.plan.seed, "resource", key)
        region = REGIONS[sku.region][0]
        acct, kind = account.account_id, sku.service.resource
        slug = self.plan.payers[account.payer].slug
        short = account.name if account.name.startswith(slug) else f"{slug}-mgmt"
        if kind == "instance":
            return f"i-0{h % 16**16:016x}"
        if kind == "volume":
            return f"vol-0{h % 16**16:016x}"
        if kind == "snapshot":
            return f"arn:aws:ec2:{region}:{acct}:snapshot/snap-0{h % 16**16:016x}"
        if kind == "nat":
            return f"arn:aws:ec2:{region}:{acct}:natgateway/nat-0{h % 16**16:016x}"
        if kind == "bucket":
            return f"{short}-{BUCKET_PURPOSES[slot % len(BUCKET_PURPOSES)]}-{region}"
        if kind == "db":
            return f"arn:aws:rds:{region}:{acct}:db:{DB_NAMES[slot % len(DB_NAMES)]}"
        if kind == "function":
            return f"arn:aws:lambda:{region}:{acct}:function:{FUNCTION_NAMES[slot % len(FUNCTION_NAMES)]}"
        if kind == "loggroup":
            return f"arn:aws:logs:{region}:{acct}:log-group:/aws/lambda/{FUNCTION_NAMES[slot % len(FUNCTION_NAMES)]}"
        return ""


# =============================================================================================
# Bulk rows
# =============================================================================================


class _BulkFiller:
    """Fills a batch's bulk rows (Usage, DiscountedUsage, SP covered / negation) for one month."""

    def __init__(self, plan: Plan, month: MonthPlan, resources: _ResourceNames):
        self.plan, self.month, self.res = plan, month, resources
        self.cat = plan.catalog
        self.payer_accounts = [np.array([a.idx for a in p.accounts]) for p in plan.payers]
        self.account_cum = []
        for p in plan.payers:
            w = np.cumsum([a.weight for a in p.accounts])
            self.account_cum.append(w / w[-1])
        self.intervals: dict[int, str] = {}

    def salt(self, name: str) -> int:
        return self.plan.salt(self.month.idx, name)

    def fill(self, bt: _Batch, positions: np.ndarray, state: _MonthState) -> None:
        m = self.month
        j = (positions * m.step + m.offset) % m.bulk  # layout index
        seg = np.searchsorted(m.seg_start, j, side="right") - 1
        k = j - m.seg_start[seg]
        kind, payer, ref = m.seg_kind[seg], m.seg_payer[seg], m.seg_ref[seg]
        # random values hang off this key; a negation row takes its covered row's key (seg_pair)
        key = (m.seg_pair[seg] + k).astype(np.uint64)
        rows = np.arange(len(positions))
        bt.id_keys[rows] = j.astype(np.uint64)
        bt.payer[rows] = payer
        bt.type[rows] = kind
        _payer_columns(bt, self.plan, m, rows, payer)
        for kind_value, method in ((USAGE, self._usage), (DISCOUNTED, self._discounted),
                                   (SP_COVERED, self._sp_covered), (SP_NEGATION, self._sp_negation)):
            sel = kind == kind_value
            if sel.any():
                method(bt, rows[sel], payer[sel], ref[sel], k[sel], key[sel])
        state.add(bt.account[rows], bt.pcode[rows], bt.num["line_item_unblended_cost"][rows])

    def _sku_columns(self, bt: _Batch, rows: np.ndarray, sku: np.ndarray, payer: np.ndarray) -> None:
        cat = self.cat
        bt.pcode[rows] = cat.pcode[sku]
        for col, values in cat.columns.items():
            bt.choose(col, rows, sku, values)
        nf = cat.nf[sku]
        bt.num["line_item_normalization_factor"][rows] = nf
        currency_of = np.array([p.currency for p in self.plan.payers])[payer]
        for currency in np.unique(currency_of).tolist():
            sel = currency_of == currency
            r, s = rows[sel], sku[sel]
            bt.choose("line_item_line_item_description", r, s, cat.descriptions[currency])
            bt.choose("line_item_unblended_rate", r, s, cat.rate_text[currency])
            bt.choose("line_item_blended_rate", r, s, cat.rate_text[currency])
            bt.choose("pricing_public_on_demand_rate", r, s, cat.od_rate_text[currency])

    def _times(self, bt: _Batch, rows: np.ndarray, start_hour: np.ndarray, hours: np.ndarray) -> None:
        m = self.month
        bt.ts["line_item_usage_start_date"][rows] = m.start_ms + start_hour * HOUR_MS
        bt.ts["line_item_usage_end_date"][rows] = m.start_ms + (start_hour + hours) * HOUR_MS
        keys = start_hour * 10_000 + hours
        uniq, inverse = np.unique(keys, return_inverse=True)
        names = []
        for key in uniq.tolist():
            text = self.intervals.get(key)
            if text is None:
                h, n = divmod(key, 10_000)
                a = m.start + timedelta(hours=h)
                text = self.intervals[key] = (f"{a:%Y-%m-%dT%H:%M:%S}Z/{a + timedelta(hours=n):%Y-%m-%dT%H:%M:%S}Z")
            names.append(text)
        bt.choose("identity_time_interval", rows, inverse, names)

    def _resources(self, bt: _Batch, rows: np.ndarray, account: np.ndarray, sku: np.ndarray,
                   slot: np.ndarray) -> None:
        cat = self.cat
        owner = cat.resource_sku[sku]
        pool = np.array([RESOURCE_POOLS[k] for k in RESOURCE_KINDS])[cat.resource_kind[owner]]
        has = pool > 0
        keys = np.where(has, _ResourceNames.key(account, owner, slot % np.maximum(pool, 1), len(cat.skus)), -1)
        bt.resource_key[rows] = keys
        if not has.any():
            return
        r, kk = rows[has], keys[has]
        uniq, inverse = np.unique(kk, return_inverse=True)
        bt.choose("line_item_resource_id", r, inverse, self.res.names(uniq))
        zonal = cat.zonal[sku[has]]
        if zonal.any():
            zone = (_hash(kk[zonal].astype(np.uint64), _h64(self.plan.seed, "az")) % _U64(3)).astype(np.int64)
            region = cat.region[owner[has][zonal]]
            names = [f"{REGIONS[reg][0]}{'abc'[z]}" for reg in range(len(REGIONS)) for z in range(3)]
            bt.choose("line_item_availability_zone", r[zonal], region * 3 + zone, names)
        self._tags(bt, r, kk)

    def _tags(self, bt: _Batch, rows: np.ndarray, keys: np.ndarray) -> None:
        ukeys = keys.astype(np.uint64)
        for col, share, values in TAGS:
            h = _hash(ukeys, _h64(self.plan.seed, "tag", col))
            tagged = (h >> _U64(11)).astype(np.float64) * (1.0 / (1 << 53)) < share
            if tagged.any():
                pick = ((h & _U64(0xFFFF)) % _U64(len(values))).astype(np.int64)
                bt.choose(col, rows[tagged], pick[tagged], list(values))

    # --- row kinds ----------------------------------------------------------------------------
    def _usage(self, bt: _Batch, rows: np.ndarray, payer: np.ndarray, _ref: np.ndarray, _k: np.ndarray,
               key: np.ndarray) -> None:
        """On-demand and Spot usage: account, SKU, hour and amount drawn per row."""
        cat, m = self.cat, self.month
        u_acct, u_sku = _uniform(key, self.salt("account")), _uniform(key, self.salt("sku"))
        account = np.empty(len(rows), np.int64)
        sku = np.empty(len(rows), np.int64)
        for p in np.unique(payer):
            sel = payer == p
            local = np.minimum(np.searchsorted(self.account_cum[p], u_acct[sel], side="right"),
                               len(self.account_cum[p]) - 1)
            account[sel] = self.payer_accounts[p][local]
            sku[sel] = np.minimum(np.searchsorted(self.plan.payers[p].sku_cum, u_sku[sel], side="right"),
                                  len(cat.skus) - 1)
        _account_columns(bt, self.plan, rows, account)
        self._sku_columns(bt, rows, sku, payer)
        hour = _randint(key, self.salt("hour"), m.hours)
        self._times(bt, rows, hour, np.ones(len(rows), np.int64))
        amount = self._amount(key, cat.amount_model[sku])
        rate = np.empty(len(rows), np.int64)
        od = np.empty(len(rows), np.int64)
        for p in np.unique(payer):
            sel = payer == p
            currency = self.plan.payers[p].currency
            rate[sel], od[sel] = cat.rate[currency][sku[sel]], cat.od_rate[currency][sku[sel]]
        unblended = np.rint(amount * rate).astype(np.int64)
        bt.num["line_item_usage_amount"][rows] = amount
        bt.num["line_item_normalized_usage_amount"][rows] = amount * cat.nf[sku]
        bt.money("line_item_unblended_cost", rows, unblended)
        bt.money("line_item_blended_cost", rows, unblended)
        bt.money("pricing_public_on_demand_cost", rows, np.rint(amount * od).astype(np.int64))
        bt.text("line_item_line_item_type", rows, "Usage")
        self._resources(bt, rows, account, sku, _randint(key, self.salt("resource"), 1 << 30))

    def _amount(self, key: np.ndarray, model: np.ndarray) -> np.ndarray:
        mu = np.array([AMOUNT_MODELS[n][0] for n in AMOUNT_MODEL_NAMES])[model]
        sigma = np.array([AMOUNT_MODELS[n][1] for n in AMOUNT_MODEL_NAMES])[model]
        value = np.exp(mu + sigma * _normal(key, self.salt("amount")))
        hours = self.month.hours
        index = {n: i for i, n in enumerate(AMOUNT_MODEL_NAMES)}
        return np.select(
            [model == index["hour"], model == index["req"], model == index["gbmo"], model == index["metric"],
             model == index["gb"]],
            [np.ones_like(value), np.maximum(1.0, np.rint(value)), np.round(value / hours, 10),
             np.round(np.maximum(1.0, np.rint(value)) / hours, 10), np.maximum(1e-8, np.round(value, 8))],
            default=np.round(value, 3))

    def _discounted(self, bt: _Batch, rows: np.ndarray, payer: np.ndarray, ref: np.ndarray, k: np.ndarray,
                    _key: np.ndarray) -> None:
        """RI-covered usage. Row k of an RI's month: with enough rows, one instance-hour per row and the
        RI's instances fill the hours in turn; with few rows, consecutive multi-hour rows of one
        instance. Either way the rows' hours add up to the RI's planned used hours."""
        cat, m = self.cat, self.month
        ris = self.plan.ris
        sku = np.array([ris[i].sku for i in range(len(ris))])[ref]
        d = np.array([ri.du_rows.get(m.idx, 0) for ri in ris])[ref]
        used = np.array([ri.used_hours.get(m.idx, 0) for ri in ris])[ref]
        base, extra = used // np.maximum(d, 1), used % np.maximum(d, 1)
        amount = base + (k < extra)
        one_hour_rows = d >= used  # large runs: one instance-hour per row, instances fill hours in turn
        start = np.where(one_hour_rows, k % m.hours, k * base + np.minimum(k, extra))
        fleet = np.where(one_hour_rows, k // m.hours, 0)
        account = np.empty(len(rows), np.int64)
        fkey = (ref * 1_000_003 + fleet).astype(np.uint64)
        u = _uniform(fkey, self.salt("du-account"))
        for p in np.unique(payer):
            sel = payer == p
            local = np.minimum(np.searchsorted(self.account_cum[p], u[sel], side="right"),
                               len(self.account_cum[p]) - 1)
            account[sel] = self.payer_accounts[p][local]
        _account_columns(bt, self.plan, rows, account)
        self._sku_columns(bt, rows, sku, payer)
        self._times(bt, rows, start, amount)
        up = np.array([ri.upfront_hourly for ri in ris])[ref]
        rec = np.array([ri.recurring_hourly for ri in ris])[ref]
        od = np.empty(len(rows), np.int64)
        for p in np.unique(payer):
            sel = payer == p
            od[sel] = cat.od_rate[self.plan.payers[p].currency][sku[sel]]
        famount = amount.astype(np.float64)
        bt.num["line_item_usage_amount"][rows] = famount
        bt.num["line_item_normalized_usage_amount"][rows] = famount * cat.nf[sku]
        bt.money("pricing_public_on_demand_cost", rows, amount * od)
        bt.money("reservation_effective_cost", rows, amount * (up + rec))
        bt.money("line_item_blended_cost", rows, amount * (up + rec))
        bt.money("reservation_amortized_upfront_cost_for_usage", rows, amount * up)
        bt.money("reservation_recurring_fee_for_usage", rows, amount * rec)
        bt.text("line_item_unblended_rate", rows, _rate_text(0))
        bt.choose("line_item_blended_rate", rows, ref,
                  [_rate_text(ri.upfront_hourly + ri.recurring_hourly) for ri in ris])
        bt.text("line_item_line_item_type", rows, "DiscountedUsage")
        bt.text("pricing_term", rows, "Reserved")
        bt.choose("reservation_reservation_a_r_n", rows, ref, [ri.arn for ri in ris])
        bt.choose("reservation_subscription_id", rows, ref, [ri.subscription_id for ri in ris])
        bt.choose("pricing_rate_code", rows, ref, [ri.rate_code for ri in ris])
        bt.choose("pricing_purchase_option", rows, ref, [ri.purchase_option for ri in ris])
        bt.choose("pricing_lease_contract_length", rows, ref, [f"{ri.term_years}yr" for ri in ris])
        bt.choose("pricing_offering_class", rows, ref, [ri.offering_class for ri in ris])
        platform = {"AmazonEC2": "Linux/UNIX (Amazon VPC)", "AmazonRDS": "MySQL"}
        descriptions = [f"{platform[cat.skus[ri.sku].service.code]}, "
                        f"{cat.skus[ri.sku].attrs.get('product_instance_type', '')} reserved instance applied"
                        for ri in ris]
        bt.choose("line_item_line_item_description", rows, ref, descriptions)
        self._resources(bt, rows, account, sku, _randint(fkey, self.salt("du-resource"), 1 << 30))

    def _sp_covered(self, bt: _Batch, rows: np.ndarray, payer: np.ndarray, ref: np.ndarray, k: np.ndarray,
                    key: np.ndarray) -> None:
        self._savings_plan_rows(bt, rows, payer, ref, k, negation=False)

    def _sp_negation(self, bt: _Batch, rows: np.ndarray, payer: np.ndarray, ref: np.ndarray, k: np.ndarray,
                     key: np.ndarray) -> None:
        self._savings_plan_rows(bt, rows, payer, ref, k, negation=True)

    def _savings_plan_rows(self, bt: _Batch, rows: np.ndarray, payer: np.ndarray, ref: np.ndarray, k: np.ndarray,
                           *, negation: bool) -> None:
        """SP-covered instance-hours at on-demand price, or the negation of covered row k (same attributes).
        Hourly plans: covered row k is fleet instance k // hours in hour k % hours, so every hour's
        covered cost is known in advance (SavingsPlan.used)."""
        cat, m = self.cat, self.month
        sps = self.plan.sps
        sku = np.empty(len(rows), np.int64)
        account = np.empty(len(rows), np.int64)
        eff = np.empty(len(rows), np.int64)
        od = np.empty(len(rows), np.int64)
        start = np.empty(len(rows), np.int64)
        fleet_key = np.empty(len(rows), np.uint64)
        for s in np.unique(ref):
            sel = ref == s
            sp = sps[s]
            kk = k[sel]
            covered = sp.covered_rows[m.idx]
            fleet = kk // m.hours if sp.hourly else kk
            start[sel] = kk % m.hours if sp.hourly else (kk * m.hours) // max(covered, 1)
            sku[sel], account[sel] = sp.fleet_sku[fleet], sp.fleet_account[fleet]
            fleet_key[sel] = (s * 1_000_003 + fleet).astype(np.uint64)
            eff[sel] = sp.eff_by_sku[sku[sel]]
            od[sel] = cat.od_rate[self.plan.payers[sp.payer].currency][sku[sel]]
        _account_columns(bt, self.plan, rows, account)
        self._sku_columns(bt, rows, sku, payer)
        self._times(bt, rows, start, np.ones(len(rows), np.int64))
        bt.num["line_item_usage_amount"][rows] = 1.0
        bt.num["line_item_normalized_usage_amount"][rows] = cat.nf[sku]
        bt.choose("savings_plan_savings_plan_a_r_n", rows, ref, [sp.arn for sp in sps])
        bt.num["savings_plan_savings_plan_rate"][rows] = eff / UNITS
        sign = -1 if negation else 1
        bt.money("line_item_unblended_cost", rows, sign * od)
        bt.money("line_item_blended_cost", rows, sign * od)
        if negation:
            bt.text("line_item_line_item_type", rows, "SavingsPlanNegation")
            accounts = self.plan.accounts
            pair, inverse = np.unique(account * len(cat.skus) + sku, return_inverse=True)
            names = [f"SavingsPlanNegation used by AccountId : {accounts[a].account_id} and UsageSku : "
                     f"{cat.skus[s].code}" for a, s in (divmod(int(x), len(cat.skus)) for x in pair)]
            bt.choose("line_item_line_item_description", rows, inverse, names)
        else:
            bt.text("line_item_line_item_type", rows, "SavingsPlanCoveredUsage")
            bt.money("savings_plan_savings_plan_effective_cost", rows, eff)
            bt.money("pricing_public_on_demand_cost", rows, od)
        self._resources(bt, rows, account, sku, _randint(fleet_key, self.salt("sp-resource"), 1 << 30))


def _payer_columns(bt: _Batch, plan: Plan, m: MonthPlan, rows: np.ndarray, payer: np.ndarray) -> None:
    """Columns shared by every row of a payer and month."""
    payers = plan.payers
    bt.choose("bill_payer_account_id", rows, payer, [p.account_id for p in payers])
    bt.choose("bill_payer_account_name", rows, payer, [p.name for p in payers])
    bt.choose("bill_invoicing_entity", rows, payer, [p.invoicing_entity for p in payers])
    bt.choose("line_item_legal_entity", rows, payer, [p.invoicing_entity for p in payers])
    bt.choose("line_item_currency_code", rows, payer, [p.currency for p in payers])
    bt.choose("pricing_currency", rows, payer, [p.currency for p in payers])
    bt.choose("bill_invoice_id", rows, payer, [_invoice_id(plan, p, m) for p in payers])
    bt.text("bill_billing_entity", rows, "AWS")
    bt.text("bill_bill_type", rows, "Anniversary")
    bt.ts["bill_billing_period_start_date"][rows] = m.start_ms
    bt.ts["bill_billing_period_end_date"][rows] = m.end_ms


def _account_columns(bt: _Batch, plan: Plan, rows: np.ndarray, account: np.ndarray) -> None:
    accounts = plan.accounts
    bt.account[rows] = account
    bt.choose("line_item_usage_account_id", rows, account, [a.account_id for a in accounts])
    bt.choose("line_item_usage_account_name", rows, account, [a.name for a in accounts])
    bt.choose("cost_category_business_unit", rows, account, [a.business_unit for a in accounts])


def _invoice_id(plan: Plan, payer: Payer, month: MonthPlan) -> str:
    if not month.closed:
        return ""
    return str(_h64(plan.seed, "invoice", payer.idx, month.idx) % 9_000_000_000 + 1_000_000_000)


# =============================================================================================
# Month-end rows into a batch, money stabilisation
# =============================================================================================


def _fill_special(plan: Plan, month: MonthPlan, bt: _Batch, rows: np.ndarray, specials: list[dict],
                  first_index: int) -> None:
    n = len(specials)
    payer = np.array([r["__payer"] for r in specials])
    bt.payer[rows] = payer
    bt.type[rows] = [r["__type"] for r in specials]
    bt.account[rows] = [r["__account"] for r in specials]
    bt.pcode[rows] = [r["__pcode"] for r in specials]
    bt.id_keys[rows] = np.arange(first_index, first_index + n, dtype=np.uint64) + _U64(month.bulk)
    _payer_columns(bt, plan, month, rows, payer)
    _account_columns(bt, plan, rows, bt.account[rows].copy())
    columns = sorted({c for r in specials for c in r if not c.startswith("__")})
    for col in columns:
        values = [r.get(col) for r in specials]
        present = np.array([v is not None for v in values])
        idx = rows[present]
        vals = [v for v in values if v is not None]
        if col in bt.ts:
            bt.ts[col][idx] = vals
        elif col in MONEY_COLUMNS:
            bt.money(col, idx, np.array(vals, dtype=np.int64))
        elif col in bt.num:
            bt.num[col][idx] = vals
        else:
            uniq = sorted(set(vals))
            pos = {v: i for i, v in enumerate(uniq)}
            bt.choose(col, idx, np.array([pos[v] for v in vals], np.int64), uniq)
    starts = bt.ts["line_item_usage_start_date"][rows]
    ends = bt.ts["line_item_usage_end_date"][rows]
    texts = [f"{_ms_iso(s)}/{_ms_iso(e)}" for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
    uniq = sorted(set(texts))
    pos = {v: i for i, v in enumerate(uniq)}
    bt.choose("identity_time_interval", rows, np.array([pos[t] for t in texts], np.int64), uniq)


def _ms_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stabilise(values: np.ndarray) -> np.ndarray:
    """Nudge money floats so that Decimal(repr(x)) == polars' Float64 -> Decimal(38,12) cast."""
    units = np.rint(values * UNITS).astype(np.int64)
    big = np.abs(units) >= 10**14  # keep <= 15 significant digits
    if big.any():
        units[big] = np.rint(units[big] / 10**4).astype(np.int64) * 10**4
    step = np.where(big, 10**4, 1) * np.where(units < 0, -1, 1)
    out = units / UNITS
    bad = np.rint(out * 1e12).astype(np.int64) != units * 100
    for _ in range(64):
        if not bad.any():
            return out
        units[bad] += step[bad]
        out[bad] = units[bad] / UNITS
        bad = np.rint(out * 1e12).astype(np.int64) != units * 100
    raise AssertionError("money value could not be stabilised")


def _make_batch(plan: Plan, month: MonthPlan, filler: _BulkFiller, state: _MonthState, a: int, b: int) -> _Batch:
    """Rows [a, b) of the month: the bulk part first, then month-end rows."""
    bt = _Batch(b - a)
    n_bulk = max(0, min(b, month.bulk) - a)
    if n_bulk:
        filler.fill(bt, np.arange(a, a + n_bulk, dtype=np.int64), state)
    if b > month.bulk:
        if state.special is None:
            state.special = _special_rows(plan, month, state)
        first = max(a, month.bulk) - month.bulk
        _fill_special(plan, month, bt, np.arange(n_bulk, bt.n), state.special[first:first + bt.n - n_bulk], first)
    for col in MONEY_COLUMNS:
        bt.num[col] = _stabilise(bt.num[col])
    return bt


def _write_month(plan: Plan, month: MonthPlan, writer: _MonthWriter, rows_per_file: int, totals: _Totals,
                 progress: Callable[[int], None] | None) -> list[Path]:
    """Generate the month batch by batch; a second thread encodes and writes the previous batch."""
    state = _MonthState(plan)
    filler = _BulkFiller(plan, month, _ResourceNames(plan))
    files = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        for n, a in enumerate(range(0, month.rows, rows_per_file), start=1):
            b = min(month.rows, a + rows_per_file)
            with writer.open(n) as sink:
                pending: Future | None = None
                for x in range(a, b, BATCH_ROWS):
                    y = min(b, x + BATCH_ROWS)
                    bt = _make_batch(plan, month, filler, state, x, y)
                    totals.add(month, bt)
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(sink.write, bt)
                    if progress is not None:
                        progress(y - x)
                if pending is not None:
                    pending.result()
            files.append(sink.path)
    return files


# =============================================================================================
# Expected totals (exact, from the values written)
# =============================================================================================


class _Totals:
    def __init__(self, plan: Plan):
        n = len(LINE_ITEM_TYPES)
        self.rows = {(p.idx, m.idx): [0] * n for p in plan.payers for m in plan.months}
        self.billed = {key: [0] * n for key in self.rows}
        self.amortised = {key: 0 for key in self.rows}
        self.unused_rows = {key: 0 for key in self.rows}

    def add(self, month: MonthPlan, bt: _Batch) -> None:
        def units(col: str) -> np.ndarray:
            return np.rint(bt.num[col] * UNITS).astype(np.int64)

        t = bt.type
        unblended = units("line_item_unblended_cost")
        has_ri = bt.codes["reservation_reservation_a_r_n"] != 0
        amortised = np.select(
            [t == SP_COVERED, t == SP_RECURRING, (t == SP_NEGATION) | (t == SP_UPFRONT), t == DISCOUNTED,
             t == RI_FEE, (t == FEE) & has_ri],
            [units("savings_plan_savings_plan_effective_cost"),
             units("savings_plan_amortized_upfront_commitment_for_billing_period")
             + units("savings_plan_recurring_commitment_for_billing_period") - units("savings_plan_used_commitment"),
             0, units("reservation_effective_cost"),
             units("reservation_unused_amortized_upfront_fee_for_billing_period")
             + units("reservation_unused_recurring_fee"), 0],
            default=unblended)
        unused = ((t == RI_FEE) | (t == SP_RECURRING)) & (amortised != 0)
        group = bt.payer * len(LINE_ITEM_TYPES) + t
        order = np.argsort(group, kind="stable")
        g = group[order]
        starts = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
        sums_billed = np.add.reduceat(unblended[order], starts)
        sums_amort = np.add.reduceat(amortised[order], starts)
        counts = np.diff(np.append(starts, len(g)))
        sums_unused = np.add.reduceat(unused[order].astype(np.int64), starts)
        for gi, s, b, c, un in zip(g[starts].tolist(), sums_billed.tolist(), sums_amort.tolist(), counts.tolist(),
                                   sums_unused.tolist(), strict=True):
            p, kind = divmod(gi, len(LINE_ITEM_TYPES))
            key = (p, month.idx)
            self.rows[key][kind] += c
            self.billed[key][kind] += s
            self.amortised[key] += b
            self.unused_rows[key] += un

    def record(self, plan: Plan, payer: Payer, month: MonthPlan) -> dict:
        key = (payer.idx, month.idx)
        billed = self.billed[key]
        return {
            "billing_account_id": payer.account_id,
            "billing_account_name": payer.name,
            "billing_period": month.period,
            "currency": payer.currency,
            "invoice_id": _invoice_id(plan, payer, month) or None,
            "rows": sum(self.rows[key]),
            "rows_by_line_item_type": {LINE_ITEM_TYPES[i]: c for i, c in enumerate(self.rows[key]) if c},
            "billed_cost": _decimal_text(sum(billed)),
            "amortized_cost": _decimal_text(self.amortised[key]),
            "unused_commitment_rows": self.unused_rows[key],
            "tax": _decimal_text(billed[TAX]),
            "credits": _decimal_text(sum(billed[i] for i in CREDIT_TYPES)),
            "billed_cost_by_line_item_type": {LINE_ITEM_TYPES[i]: _decimal_text(v)
                                              for i, v in enumerate(billed) if self.rows[key][i]},
        }

    def as_json(self, plan: Plan, *, layout: str, file_format: str, seed: int, report_name: str) -> dict:
        return {
            "generator": "focus_platform.generate.aws_cur",
            "report_name": report_name,
            "layout": layout,
            "file_format": file_format,
            "seed": seed,
            "money_rule": ("money values are decimals with <= 10 fractional and <= 15 significant digits, written "
                           "as float64 such that Decimal(repr(x)) == polars cast Float64 -> Decimal(38,12); totals "
                           "are exact sums of those decimals (12 decimals)"),
            "amortized_cost_rule": ("CID amortized cost: SavingsPlanCoveredUsage -> savings_plan_savings_plan_"
                                    "effective_cost; SavingsPlanRecurringFee -> amortized upfront + recurring "
                                    "commitment - used commitment; SavingsPlanNegation, SavingsPlanUpfrontFee -> 0; "
                                    "DiscountedUsage -> reservation_effective_cost; RIFee -> unused amortized upfront "
                                    "+ unused recurring fee; Fee with a reservation ARN -> 0; else unblended cost"),
            "totals": [self.record(plan, p, m) for m in plan.months for p in plan.payers],
        }


def _decimal_text(units: int) -> str:
    return str((Decimal(units).scaleb(-10)).quantize(Decimal("1E-12")))


# =============================================================================================
# Writers: Arrow tables per layout, Parquet / CSV sinks, manifests, invoices
# =============================================================================================


def _dictionary(bt: _Batch, col: str, *, null_empty: bool = False) -> pa.Array:
    codes = bt.codes[col]
    mask = codes == 0 if null_empty else None
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32(), mask=mask),
                                          pa.array(bt.vocab_list(col), pa.string()))


_BASE32 = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", np.uint8)


def _line_item_ids(bt: _Batch, plan: Plan, month: MonthPlan) -> pa.Array:
    """52-character lower-case base32 ids, like AWS's identity/LineItemId."""
    n = bt.n
    chars = np.empty((n, 52), np.uint8)
    for w in range(5):
        h = _hash(bt.id_keys, plan.salt(month.idx, f"line-item-id-{w}"))
        for c in range(min(12, 52 - 12 * w)):
            chars[:, 12 * w + c] = _BASE32[((h >> _U64(5 * c)) & _U64(31)).astype(np.intp)]
    offsets = np.arange(0, 52 * n + 1, 52, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))


def _map_array(bt: _Batch, columns: list[str], keys: list[str]) -> pa.Array:
    """Rows' non-empty values of ``columns`` as a map<string,string> keyed by ``keys``."""
    codes = np.stack([bt.codes[c] for c in columns], axis=1)
    row, k = np.nonzero(codes)  # row-major: grouped by row, keys in column order
    vocab = [bt.vocab_list(c) for c in columns]
    offsets_in_flat = np.concatenate([[0], np.cumsum([len(v) for v in vocab])[:-1]])
    flat_values = pa.array([v for voc in vocab for v in voc], pa.string())
    items = flat_values.take(pa.array(offsets_in_flat[k] + codes[row, k]))
    key_arr = pa.array(keys, pa.string()).take(pa.array(k))
    offsets = np.concatenate([[0], np.cumsum(np.bincount(row, minlength=bt.n))]).astype(np.int32)
    return pa.MapArray.from_arrays(pa.array(offsets), key_arr, items)


def _discount_map(bt: _Batch) -> pa.Array:
    kinds = list(CUR2_DISCOUNT_KEYS)
    has = np.isin(bt.type, kinds)
    row = np.flatnonzero(has)
    names = pa.array([CUR2_DISCOUNT_KEYS[int(t)] for t in bt.type[row]], pa.string())
    values = pa.array(bt.num["line_item_unblended_cost"][row], pa.float64())
    offsets = np.concatenate([[0], np.cumsum(has)]).astype(np.int32)
    return pa.MapArray.from_arrays(pa.array(offsets), names, values)


def _timestamp(values: np.ndarray) -> pa.Array:
    return pa.array(values, pa.timestamp("ms", tz="UTC"))


def _legacy_table(bt: _Batch, plan: Plan, month: MonthPlan, *, for_csv: bool) -> pa.Table:
    """Athena snake_case names for Parquet; `category/Name` headers (and '' as empty) for CSV."""
    arrays, names = [], []
    for header, name, kind in LEGACY_COLUMNS:
        if kind == "id":
            arrays.append(_line_item_ids(bt, plan, month))
        elif kind == "s":
            arrays.append(_dictionary(bt, name, null_empty=for_csv))
        elif kind == "t":
            arrays.append(_timestamp(bt.ts[name]))
        else:
            arrays.append(pa.array(bt.num[name], pa.float64()))
        names.append(header if for_csv else name)
    return pa.Table.from_arrays(arrays, names=names)


def _cur2_table(bt: _Batch, plan: Plan, month: MonthPlan, *, for_csv: bool) -> pa.Table:
    """The fixed CUR 2.0 schema; product attributes, tags and cost categories folded into maps."""
    arrays, names = [], []
    product_keys = [c.removeprefix("product_") for c in CUR2_PRODUCT_MAP_COLUMNS]
    for name, kind in CUR2_COLUMNS:
        source = CUR2_COPIES.get(name, name)
        if kind == "id":
            arr = _line_item_ids(bt, plan, month)
        elif name == "product":
            arr = _map_array(bt, CUR2_PRODUCT_MAP_COLUMNS, product_keys)
        elif name == "resource_tags":
            arr = _map_array(bt, TAG_COLUMNS, [c.removeprefix("resource_tags_") for c in TAG_COLUMNS])
        elif name == "cost_category":
            arr = _map_array(bt, COST_CATEGORY_COLUMNS,
                             [c.removeprefix("cost_category_") for c in COST_CATEGORY_COLUMNS])
        elif name == "discount":
            arr = _discount_map(bt)
        elif kind == "n":
            arr = pa.nulls(bt.n, pa.float64())
        elif name == "discount_total_discount":
            is_discount = np.isin(bt.type, list(CUR2_DISCOUNT_KEYS))
            arr = pa.array(np.where(is_discount, bt.num["line_item_unblended_cost"], 0.0))
        elif name == "discount_bundled_discount":
            arr = pa.array(np.where(bt.type == BUNDLED, bt.num["line_item_unblended_cost"], 0.0))
        elif kind == "s":
            arr = _dictionary(bt, source, null_empty=for_csv)
        elif kind == "t":
            arr = _timestamp(bt.ts[source])
        else:
            arr = pa.array(bt.num[source], pa.float64())
        arrays.append(arr)
        names.append(name)
    return pa.Table.from_arrays(arrays, names=names)


def _json_escaped(col: str) -> pl.Expr:
    return (pl.col(col).cast(pl.String).str.replace_all("\\", "\\\\", literal=True)
            .str.replace_all('"', '\\"', literal=True))


def _maps_as_json(table: pa.Table) -> pa.Table:
    """CUR 2.0 CSV: map columns as JSON object text."""
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        if not pa.types.is_map(col.type):
            continue
        arr = col.combine_chunks()
        lengths = np.diff(np.asarray(arr.offsets))
        row = np.repeat(np.arange(len(arr)), lengths)
        quote = '"' if pa.types.is_string(arr.type.item_type) else ""
        flat = pl.DataFrame({"row": row, "key": pl.from_arrow(arr.keys), "value": pl.from_arrow(arr.items)})
        joined = (flat.with_columns(kv=pl.concat_str([pl.lit('"'), _json_escaped("key"), pl.lit(f'":{quote}'),
                                                      _json_escaped("value"), pl.lit(quote)]))
                  .group_by("row", maintain_order=True).agg(pl.col("kv").str.join(",")))
        text = (pl.DataFrame({"row": np.arange(len(arr))}).join(joined, on="row", how="left")
                .select(pl.concat_str([pl.lit("{"), pl.col("kv").fill_null(""), pl.lit("}")])).to_series())
        table = table.set_column(i, name, text.to_arrow())
    return table


class _Sink:
    """One data file, written batch by batch (Parquet row groups or gzip-compressed CSV chunks)."""

    def __init__(self, path: Path, to_table: Callable[[_Batch], pa.Table], file_format: str):
        self.path, self.to_table, self.file_format = path, to_table, file_format
        self._pq: pq.ParquetWriter | None = None
        self._gz = None

    def __enter__(self) -> _Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, bt: _Batch) -> None:
        table = self.to_table(bt)
        if self.file_format == "parquet":
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.path, table.schema, compression="snappy", store_schema=False)
            self._pq.write_table(table)
        else:
            first = self._gz is None
            if first:
                self._gz = gzip.open(self.path, "wb", compresslevel=6)
            pl.from_arrow(_maps_as_json(table)).write_csv(
                self._gz, include_header=first, datetime_format="%Y-%m-%dT%H:%M:%S.000Z")

    def close(self) -> None:
        if self._pq is not None:
            self._pq.close()
        if self._gz is not None:
            self._gz.close()


class _MonthWriter:
    """Paths and manifests of one billing period for a layout."""

    def __init__(self, out: Path, report: str, layout: str, file_format: str, month: MonthPlan, plan: Plan):
        self.out, self.report, self.layout, self.file_format, self.month = out, report, layout, file_format, month
        self.plan, self.seed = plan, plan.seed
        self.ext = "snappy.parquet" if file_format == "parquet" else "csv.gz"
        self.assembly_id = _uuid(self.seed, report, month.period, "assembly")
        self.range_dir = f"{month.start:%Y%m%d}-{month.end:%Y%m%d}"
        if layout == "legacy":
            self.data_dir = out / report / self.range_dir / self.assembly_id
        else:
            self.data_dir = out / report / "data" / f"BILLING_PERIOD={month.period}"

    def open(self, n: int) -> _Sink:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return _Sink(self.data_dir / f"{self.report}-{n}.{self.ext}", self.table, self.file_format)

    def table(self, bt: _Batch) -> pa.Table:
        for_csv = self.file_format == "csv.gz"
        if self.layout == "legacy":
            return _legacy_table(bt, self.plan, self.month, for_csv=for_csv)
        return _cur2_table(bt, self.plan, self.month, for_csv=for_csv)

    def write_manifests(self, files: list[Path], plan: Plan) -> list[Path]:
        keys = [f.relative_to(self.out).as_posix() for f in files]
        if self.layout == "legacy":
            manifest = self._legacy_manifest(keys, plan)
            paths = [self.out / self.report / self.range_dir / f"{self.report}-Manifest.json",
                     self.data_dir / f"{self.report}-Manifest.json"]
        else:
            manifest = self._cur2_manifest(keys, plan)
            meta = self.out / self.report / "metadata" / f"BILLING_PERIOD={self.month.period}"
            meta.mkdir(parents=True, exist_ok=True)
            paths = [meta / f"{self.report}-Manifest.json"]
        for path in paths:
            path.write_text(json.dumps(manifest, indent=4) + "\n", encoding="utf-8")
        return paths

    def _legacy_manifest(self, keys: list[str], plan: Plan) -> dict:
        columns = []
        for header, name, kind in LEGACY_COLUMNS:
            category, col = header.split("/", 1)
            mtype = "Interval" if name == "identity_time_interval" else _MANIFEST_TYPE[kind]
            if name in _REQUIRED_LEGACY:
                mtype = mtype.removeprefix("Optional")
            columns.append({"category": category, "name": col, "type": mtype})
        parquet = self.file_format == "parquet"
        return {
            "assemblyId": self.assembly_id,
            "account": plan.payers[0].account_id,
            "columns": columns,
            "charset": "UTF-8",
            "compression": "Parquet" if parquet else "GZIP",
            "contentType": "Parquet" if parquet else "text/csv",
            "reportId": hashlib.sha256(f"{self.seed}|{self.report}".encode()).hexdigest(),
            "reportName": self.report,
            "billingPeriod": {"start": f"{self.month.start:%Y%m%dT%H%M%S}.000Z",
                              "end": f"{self.month.end:%Y%m%dT%H%M%S}.000Z"},
            "bucket": BUCKET,
            "reportKeys": keys,
            "additionalArtifactKeys": [],
        }

    def _cur2_manifest(self, keys: list[str], plan: Plan) -> dict:
        account = plan.payers[0].account_id
        export_id = _uuid(self.seed, self.report, "export")
        return {
            "executionId": _uuid(self.seed, self.report, self.month.period, "execution"),
            "exportArn": f"arn:aws:bcm-data-exports:us-east-1:{account}:export/{self.report}-{export_id}",
            "exportName": self.report,
            "billingPeriod": {"start": _iso_ms(self.month.start), "end": _iso_ms(self.month.end)},
            "deliveryTimestamp": _iso_ms(self.month.end + timedelta(days=2, hours=6)),
            "columns": [{"name": name, "type": _CUR2_MANIFEST_TYPE[kind]} for name, kind in CUR2_COLUMNS],
            "dataFiles": [f"s3://{BUCKET}/{key}" for key in keys],
            "additionalOutputFiles": [],
        }


def _write_invoices(out: Path, plan: Plan, totals: _Totals) -> list[Path]:
    """invoices/<payer>/<YYYY-MM>.csv for every closed month: one invoice per payer and period."""
    paths = []
    header = ["invoice_id", "issuer", "billing_account_id", "billing_period", "currency", "total", "tax",
              "credits", "issued_date", "adjusts_invoice_id"]
    for month in plan.months:
        if not month.closed:
            continue
        for payer in plan.payers:
            billed = totals.billed[(payer.idx, month.idx)]
            path = out / "invoices" / payer.account_id / f"{month.period}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("w", newline="", encoding="utf-8") as fh:
                w = csv.writer(fh)
                w.writerow(header)
                w.writerow([_invoice_id(plan, payer, month), payer.invoicing_entity, payer.account_id, month.period,
                            payer.currency, _money_text(sum(billed)), _money_text(billed[TAX]),
                            _money_text(sum(billed[i] for i in CREDIT_TYPES)),
                            (month.end + timedelta(days=1)).strftime("%Y-%m-%d"), ""])
            paths.append(path)
    return paths


def _money_text(units: int) -> str:
    """Exact amount, at least two decimals, no trailing zeros beyond them."""
    text = f"{Decimal(units).scaleb(-10):f}"
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{whole}.{frac}"

