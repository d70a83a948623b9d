"""`spot_price_history`: the budget ledger's activity for what its running spot instances cost.

The ledger (`orca.workflows.budget_ledger`) asks at each upkeep for the offerings (instance
type, zone) of its launched spot claims since the oldest price it holds; one
DescribeSpotPriceHistory listing (filtered by type and zone, paginated) answers for all of
them, and EC2 includes the price in effect at the query's StartTime. The pure correction of the
accrual is `orca.spot_accrual.reprice`.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from temporalio import activity

from orca.activities.aws_failures import fails_on_aws_errors
from orca.aws_clients import AwsClients
from orca.spot_accrual import SpotPricePoint
from orca.workflows.ledger_models import SpotPriceQuery

PRODUCT = "Linux/UNIX"
"""ORCA's instances run Linux; other product descriptions are priced differently."""


class SpotPriceActivities:
    def __init__(self, aws: AwsClients) -> None:
        self._aws = aws

    @activity.defn(name="spot_price_history")
    @fails_on_aws_errors(permanent=False)
    async def spot_price_history(self, query: SpotPriceQuery) -> list[SpotPricePoint]:
        return await asyncio.to_thread(self._history, query)

    def _history(self, query: SpotPriceQuery) -> list[SpotPricePoint]:
        wanted = {(o.instance_type, o.zone) for o in query.offerings}
        if not wanted:
            return []
        pages = self._aws.ec2.get_paginator("describe_spot_price_history").paginate(
            ProductDescriptions=[PRODUCT],
            StartTime=query.since,
            Filters=[
                {"Name": "instance-type", "Values": sorted({t for t, _ in wanted})},
                {"Name": "availability-zone", "Values": sorted({z for _, z in wanted})},
            ],
        )
        return [
            SpotPricePoint(
                instance_type=item["InstanceType"],
                zone=item["AvailabilityZone"],
                at=item["Timestamp"],
                price=Decimal(item["SpotPrice"]),
            )
            for page in pages
            for item in page["SpotPriceHistory"]
            if (item["InstanceType"], item["AvailabilityZone"]) in wanted
        ]
