"""On-demand and spot prices per instance type and zone.

Where the numbers come from:

* ``ON_DEMAND_USD_PER_HOUR`` — public on-demand list prices for Linux, shared tenancy, in
  us-west-2 (US West (Oregon)) as published on the EC2 pricing page in 2025, rounded to four
  decimals (p4d/p5 reflect the mid-2025 price reductions, approximately). The emulator uses the same
  table for every region. ``f1`` is listed for old pods although AWS retired the type.
* Types missing from the table get an estimate from their catalog entry (vCPUs, memory and
  accelerators; see ``estimated_on_demand``), which is good enough to order offerings.
* Spot prices are a documented fraction of on-demand per family (``SPOT_FRACTION``, typical of
  the 2024-2025 spot price history: 30-45% for general purpose, 35-55% for accelerators) times a
  per-zone factor (``ZONE_FACTOR``), capped at the on-demand price — so zones differ and the
  cheapest spot zone is not always ``a``.

What ORCA should call against real AWS and the emulator alike: ``ec2:DescribeSpotPriceHistory``
(InstanceTypes, ProductDescriptions=["Linux/UNIX"], StartTime=now) for spot, and
``pricing:GetProducts`` (ServiceCode AmazonEC2; TERM_MATCH instanceType, regionCode,
operatingSystem=Linux, tenancy=Shared, preInstalledSw=NA, capacitystatus=Used) for on-demand,
reading ``terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD`` from each PriceList JSON string.
"""

from __future__ import annotations

import hashlib
from typing import Any

ON_DEMAND_USD_PER_HOUR: dict[str, float] = {
    # general purpose, compute, memory
    "t3.micro": 0.0104,
    "t3.small": 0.0208,
    "t3.medium": 0.0416,
    "t3.large": 0.0832,
    "t3.xlarge": 0.1664,
    "m5.large": 0.096,
    "m5.xlarge": 0.192,
    "m5.2xlarge": 0.384,
    "m6i.large": 0.096,
    "m6i.xlarge": 0.192,
    "m6i.2xlarge": 0.384,
    "m7i.large": 0.1008,
    "m7i.xlarge": 0.2016,
    "m7i.2xlarge": 0.4032,
    "m7g.large": 0.0816,
    "m7g.xlarge": 0.1632,
    "c6i.large": 0.085,
    "c6i.xlarge": 0.17,
    "c7i.large": 0.0893,
    "c7i.xlarge": 0.1785,
    "c7g.large": 0.0725,
    "c7g.xlarge": 0.145,
    "r6i.large": 0.126,
    "r7i.large": 0.1323,
    # NVIDIA GPUs
    "g4dn.xlarge": 0.526,
    "g4dn.2xlarge": 0.752,
    "g4dn.12xlarge": 3.912,
    "g5.xlarge": 1.006,
    "g5.2xlarge": 1.212,
    "g5.4xlarge": 1.624,
    "g5.8xlarge": 2.448,
    "g5.12xlarge": 5.672,
    "g5.16xlarge": 4.096,
    "g5.24xlarge": 8.144,
    "g5.48xlarge": 16.288,
    "g6.xlarge": 0.8048,
    "g6.2xlarge": 0.9776,
    "g6.4xlarge": 1.3232,
    "g6.8xlarge": 2.0144,
    "g6.12xlarge": 4.6016,
    "g6.48xlarge": 13.3504,
    "g6e.xlarge": 1.861,
    "g6e.2xlarge": 2.2421,
    "g6e.4xlarge": 3.0042,
    "g6e.8xlarge": 4.5286,
    "g6e.12xlarge": 10.4926,
    "g6e.16xlarge": 7.5772,
    "g6e.24xlarge": 15.0656,
    "g6e.48xlarge": 30.1312,
    "p3.2xlarge": 3.06,
    "p3.8xlarge": 12.24,
    "p3.16xlarge": 24.48,
    "p4d.24xlarge": 21.9576,
    "p4de.24xlarge": 27.447,
    "p5.4xlarge": 6.88,
    "p5.48xlarge": 55.04,
    "p5e.48xlarge": 61.1,
    "p5en.48xlarge": 63.296,
    "p6-b200.48xlarge": 113.9328,
    # AWS Trainium / Inferentia
    "trn1.2xlarge": 1.3438,
    "trn1.32xlarge": 21.5,
    "trn1n.32xlarge": 24.78,
    "trn2.48xlarge": 44.7,
    "inf2.xlarge": 0.7586,
    "inf2.8xlarge": 1.9669,
    "inf2.24xlarge": 6.4906,
    "inf2.48xlarge": 12.9813,
    # FPGAs
    "f1.2xlarge": 1.65,
    "f1.4xlarge": 3.3,
    "f1.16xlarge": 13.2,
    "f2.6xlarge": 1.98,
    "f2.12xlarge": 3.96,
    "f2.48xlarge": 15.84,
}

SPOT_FRACTION: dict[str, float] = {
    "t3": 0.32,
    "m5": 0.38,
    "m6i": 0.36,
    "m7i": 0.4,
    "m7g": 0.37,
    "c6i": 0.35,
    "c7i": 0.38,
    "c7g": 0.36,
    "r6i": 0.33,
    "r7i": 0.36,
    "g4dn": 0.35,
    "g5": 0.42,
    "g6": 0.4,
    "g6e": 0.45,
    "p3": 0.35,
    "p4d": 0.45,
    "p4de": 0.5,
    "p5": 0.55,
    "p5e": 0.55,
    "p5en": 0.55,
    "trn1": 0.38,
    "trn1n": 0.4,
    "inf2": 0.36,
    "f2": 0.5,
}
DEFAULT_SPOT_FRACTION = 0.4
ZONE_FACTOR: dict[str, float] = {"a": 1.0, "b": 0.93, "c": 1.08, "d": 1.15, "e": 0.97, "f": 1.04}

REGION_NAMES: dict[str, str] = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
}
REGION_USAGE_PREFIX: dict[str, str] = {
    "us-east-1": "",
    "us-east-2": "USE2-",
    "us-west-1": "USW1-",
    "us-west-2": "USW2-",
    "eu-west-1": "EU-",
    "eu-central-1": "EUC1-",
    "ap-northeast-1": "APN1-",
}
PUBLICATION_DATE = "2025-06-01T00:00:00Z"


def family(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def estimated_on_demand(
    vcpus: int, memory_mib: int, gpus: int = 0, neuron_devices: int = 0, fpgas: int = 0
) -> float:
    """A rough list price for types not in the table, from m7i's per-vCPU and per-GiB rates and
    rough per-accelerator rates derived from g6e (GPU), trn1 (Neuron device) and f2 (FPGA)."""
    general = vcpus * 0.0126 + memory_mib / 1024 * 0.0063
    return round(general + gpus * 1.5 + neuron_devices * 1.2 + fpgas * 1.6, 4)


def on_demand_price(instance_type: str, estimate: float | None = None) -> float | None:
    return ON_DEMAND_USD_PER_HOUR.get(instance_type, estimate)


def spot_price(instance_type: str, zone: str, on_demand: float) -> float:
    """The current spot price in ``zone``: family fraction x zone factor, at most on-demand."""
    fraction = SPOT_FRACTION.get(family(instance_type), DEFAULT_SPOT_FRACTION)
    factor = ZONE_FACTOR.get(zone[-1:], 1.0)
    return round(min(on_demand, on_demand * fraction * factor), 6)


def _sku(instance_type: str, region: str) -> str:
    digest = hashlib.sha256(f"{region}/{instance_type}".encode()).hexdigest().upper()
    return "".join(c for c in digest if c.isalpha() or c.isdigit())[:16]


def price_list_product(
    instance_type: str, region: str, price: float, attributes: dict[str, str]
) -> dict[str, Any]:
    """One product in the Price List API's ``aws_v1`` format (GetProducts returns each JSON-encoded
    as a string in ``PriceList``)."""
    sku = _sku(instance_type, region)
    offer_term = "JRTCKXETXF"  # the on-demand offer term code AWS uses
    rate_code = f"{sku}.{offer_term}.6YS6EN2CT7"
    usage_prefix = REGION_USAGE_PREFIX.get(region, "")
    product_attributes = {
        "servicecode": "AmazonEC2",
        "servicename": "Amazon Elastic Compute Cloud",
        "instanceType": instance_type,
        "instanceFamily": attributes.get("instanceFamily", "General purpose"),
        "location": REGION_NAMES.get(region, region),
        "locationType": "AWS Region",
        "regionCode": region,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
        "licenseModel": "No License required",
        "marketoption": "OnDemand",
        "operation": "RunInstances",
        "usagetype": f"{usage_prefix}BoxUsage:{instance_type}",
        **{k: v for k, v in attributes.items() if k != "instanceFamily"},
    }
    return {
        "product": {
            "productFamily": "Compute Instance",
            "attributes": product_attributes,
            "sku": sku,
        },
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {
                f"{sku}.{offer_term}": {
                    "priceDimensions": {
                        rate_code: {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": (
                                f"${price:.4f} per On Demand Linux {instance_type} Instance Hour"
                            ),
                            "appliesTo": [],
                            "rateCode": rate_code,
                            "beginRange": "0",
                            "pricePerUnit": {"USD": f"{price:.10f}"},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": PUBLICATION_DATE,
                    "offerTermCode": offer_term,
                    "termAttributes": {},
                }
            }
        },
        "version": "20250601000000",
        "publicationDate": PUBLICATION_DATE,
    }


def term_matches(product: dict[str, Any], filters: list[dict[str, str]]) -> bool:
    """GetProducts filters: TERM_MATCH compares an attribute exactly (field names and values
    case-insensitively, as AWS does); other filter types compare the same way here."""
    attributes = {k.lower(): v for k, v in product["product"]["attributes"].items()}
    attributes["productfamily"] = product["product"]["productFamily"]
    for flt in filters:
        value = attributes.get(str(flt.get("Field", "")).lower())
        if value is None or value.lower() != str(flt.get("Value", "")).lower():
            return False
    return True
