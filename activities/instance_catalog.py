"""The region's instance catalog, offerings, prices and subnets, cached per worker process.

Selection ranks by the real catalog (DescribeInstanceTypes), never a hard-coded table; offerings
come from DescribeInstanceTypeOfferings for the zones of the configured subnets; spot prices from
DescribeSpotPriceHistory (latest per type and zone); on-demand prices from the Pricing API's
GetProducts (Linux, shared tenancy, no pre-installed software). Everything is refreshed every
`ttl`; one refresh at a time (a lock), so a burst of pods costs one set of calls, not one per pod.
A Pricing API failure is not fatal: prices are then unknown and such offerings sort last.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from botocore.exceptions import ClientError

from orca.aws_clients import AwsClients
from orca.aws_errors import error_code, error_message
from orca.selection import CatalogSnapshot, InstanceTypeInfo, instance_type_info_from_api
from orca.settings import AwsSettings

log = structlog.get_logger(__name__)


class InstanceCatalog:
    def __init__(self, aws: AwsClients, settings: AwsSettings, ttl_seconds: float = 600) -> None:
        self._aws = aws
        self._settings = settings
        self._ttl = ttl_seconds
        self._lock = asyncio.Lock()
        self._snapshot: CatalogSnapshot | None = None
        self._subnets: dict[str, str] = {}
        self._fetched_at = 0.0

    async def snapshot(self) -> tuple[CatalogSnapshot, dict[str, str]]:
        """The catalog and `zone -> subnet id`, fetched at most once per TTL."""
        async with self._lock:
            if self._snapshot is None or time.monotonic() - self._fetched_at > self._ttl:
                snapshot, self._subnets = await asyncio.to_thread(self._fetch)
                self._snapshot, self._fetched_at = snapshot, time.monotonic()
            return self._snapshot, dict(self._subnets)

    async def capacity_reservation(self, reservation_id: str) -> dict[str, Any] | None:
        """One DescribeCapacityReservations item (never cached: its state and free count
        change), or None when EC2 does not know the ID."""

        def describe() -> dict[str, Any] | None:
            try:
                response = self._aws.ec2.describe_capacity_reservations(
                    CapacityReservationIds=[reservation_id]
                )
            except ClientError as error:
                if (error_code(error) or "").startswith("InvalidCapacityReservationId"):
                    return None
                raise
            items = response.get("CapacityReservations") or []
            return dict(items[0]) if items else None

        return await asyncio.to_thread(describe)

    def _fetch(self) -> tuple[CatalogSnapshot, dict[str, str]]:
        subnets = self._subnets_by_zone()
        types = self._instance_types()
        offerings = self._offerings(sorted(subnets))
        spot = self._spot_prices(sorted(subnets))
        on_demand = self._on_demand_prices()
        log.info(
            "instance catalog refreshed",
            instance_types=len(types),
            offerings=len(offerings),
            zones=sorted(subnets),
            spot_prices=sum(len(v) for v in spot.values()),
            on_demand_prices=len(on_demand),
        )
        snapshot = CatalogSnapshot(
            instance_types=types,
            offerings=frozenset(offerings),
            on_demand_prices=on_demand,
            spot_prices=spot,
        )
        return snapshot, subnets

    def _subnets_by_zone(self) -> dict[str, str]:
        subnet_ids = list(self._settings.subnets)
        if not subnet_ids:
            return {}
        response = self._aws.ec2.describe_subnets(SubnetIds=subnet_ids)
        by_zone: dict[str, str] = {}
        for subnet in sorted(response["Subnets"], key=lambda s: subnet_ids.index(s["SubnetId"])):
            by_zone.setdefault(subnet["AvailabilityZone"], subnet["SubnetId"])
        return by_zone

    def _instance_types(self) -> dict[str, InstanceTypeInfo]:
        paginator = self._aws.ec2.get_paginator("describe_instance_types")
        types: dict[str, InstanceTypeInfo] = {}
        for page in paginator.paginate(PaginationConfig={"PageSize": 100}):
            for item in page["InstanceTypes"]:
                info = instance_type_info_from_api(item)
                types[info.name] = info
        return types

    def _offerings(self, zones: list[str]) -> set[tuple[str, str]]:
        if not zones:
            return set()
        paginator = self._aws.ec2.get_paginator("describe_instance_type_offerings")
        pages = paginator.paginate(
            LocationType="availability-zone",
            Filters=[{"Name": "location", "Values": zones}],
        )
        return {
            (item["InstanceType"], item["Location"])
            for page in pages
            for item in page["InstanceTypeOfferings"]
        }

    def _spot_prices(self, zones: list[str]) -> dict[str, dict[str, Decimal]]:
        if not zones:
            return {}
        paginator = self._aws.ec2.get_paginator("describe_spot_price_history")
        prices: dict[str, dict[str, Decimal]] = {}
        latest: dict[tuple[str, str], Any] = {}
        pages = paginator.paginate(
            ProductDescriptions=["Linux/UNIX"],
            StartTime=datetime.now(UTC),
            Filters=[{"Name": "availability-zone", "Values": zones}],
        )
        for page in pages:
            for item in page["SpotPriceHistory"]:
                key = (item["InstanceType"], item["AvailabilityZone"])
                stamp = item.get("Timestamp")
                if key in latest and stamp is not None and latest[key] >= stamp:
                    continue
                latest[key] = stamp
                prices.setdefault(key[0], {})[key[1]] = Decimal(item["SpotPrice"])
        return prices

    def _on_demand_prices(self) -> dict[str, Decimal]:
        try:
            return dict(self._iter_on_demand_prices())
        except Exception as error:  # a missing Pricing permission must not stop launches
            log.warning("on-demand prices unavailable", error=error_message(error))
            return {}

    def _iter_on_demand_prices(self) -> Iterable[tuple[str, Decimal]]:
        paginator = self._aws.pricing.get_paginator("get_products")
        filters = {
            "regionCode": self._settings.region,
            "operatingSystem": "Linux",
            "tenancy": "Shared",
            "preInstalledSw": "NA",
            "capacitystatus": "Used",
        }
        pages = paginator.paginate(
            ServiceCode="AmazonEC2",
            Filters=[
                {"Type": "TERM_MATCH", "Field": field, "Value": value}
                for field, value in filters.items()
            ],
        )
        for page in pages:
            for document in page["PriceList"]:
                parsed = on_demand_price_from_price_list(document)
                if parsed is not None:
                    yield parsed


def on_demand_price_from_price_list(document: str | dict[str, Any]) -> tuple[str, Decimal] | None:
    """(instance type, USD per hour) from one Pricing API PriceList entry, if it has both."""
    product = json.loads(document) if isinstance(document, str) else document
    instance_type = product.get("product", {}).get("attributes", {}).get("instanceType")
    for term in product.get("terms", {}).get("OnDemand", {}).values():
        for dimension in term.get("priceDimensions", {}).values():
            usd = dimension.get("pricePerUnit", {}).get("USD")
            if instance_type and usd is not None and Decimal(usd) > 0:
                return instance_type, Decimal(usd)
    return None
