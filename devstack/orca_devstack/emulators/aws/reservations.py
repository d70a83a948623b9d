"""On-Demand Capacity Reservations: the part of the EC2 API moto does not implement.

``ReservationBook`` is pure state: reservations, which live instances occupy them, and the
matching rules AWS applies. A *targeted* launch names a reservation
(``CapacityReservationSpecification.CapacityReservationTarget.CapacityReservationId``) and fails
with ``ReservationCapacityExceeded`` when it is full; an *open* reservation is also used
automatically by a matching launch whose preference is ``open`` (the default). Instances in a
reservation do not draw on the zone's general capacity.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from xml.sax.saxutils import escape

from orca_devstack.emulators.aws.errors import AwsError


@dataclass
class CapacityReservation:
    reservation_id: str
    account: str
    region: str
    instance_type: str
    instance_platform: str
    availability_zone: str
    total_instance_count: int
    instance_match_criteria: str = "open"
    tenancy: str = "default"
    ebs_optimized: bool = False
    end_date_type: str = "unlimited"
    end_date: str | None = None
    state: str = "active"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    tags: dict[str, str] = field(default_factory=dict)
    instances: set[str] = field(default_factory=set)

    @property
    def available_instance_count(self) -> int:
        return max(0, self.total_instance_count - len(self.instances))

    @property
    def arn(self) -> str:
        return (
            f"arn:aws:ec2:{self.region}:{self.account}:capacity-reservation/{self.reservation_id}"
        )

    def to_xml(self) -> str:
        created = self.created.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        tags = "".join(
            f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>"
            for k, v in self.tags.items()
        )
        end = f"<endDate>{self.end_date}</endDate>" if self.end_date else ""
        return (
            f"<capacityReservationId>{self.reservation_id}</capacityReservationId>"
            f"<ownerId>{self.account}</ownerId>"
            f"<capacityReservationArn>{self.arn}</capacityReservationArn>"
            f"<availabilityZoneId>{zone_id(self.availability_zone)}</availabilityZoneId>"
            f"<instanceType>{escape(self.instance_type)}</instanceType>"
            f"<instancePlatform>{escape(self.instance_platform)}</instancePlatform>"
            f"<availabilityZone>{escape(self.availability_zone)}</availabilityZone>"
            f"<tenancy>{self.tenancy}</tenancy>"
            f"<totalInstanceCount>{self.total_instance_count}</totalInstanceCount>"
            f"<availableInstanceCount>{self.available_instance_count}</availableInstanceCount>"
            f"<ebsOptimized>{str(self.ebs_optimized).lower()}</ebsOptimized>"
            "<ephemeralStorage>false</ephemeralStorage>"
            f"<state>{self.state}</state>"
            f"<startDate>{created}</startDate>{end}"
            f"<endDateType>{self.end_date_type}</endDateType>"
            f"<instanceMatchCriteria>{self.instance_match_criteria}</instanceMatchCriteria>"
            f"<createDate>{created}</createDate>"
            "<reservationType>default</reservationType>"
            f"<tagSet>{tags}</tagSet>"
        )


def zone_id(zone: str) -> str:
    """AWS maps zone names to ids per account; the emulator uses a fixed mapping."""
    region_short = "".join(part[:1] if part.isalpha() else part for part in zone[:-1].split("-"))
    return f"{region_short}-az{ord(zone[-1]) - ord('a') + 1}"


class ReservationBook:
    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region
        self.reservations: dict[str, CapacityReservation] = {}
        self._by_instance: dict[str, str] = {}

    def create(
        self,
        *,
        instance_type: str,
        instance_platform: str,
        availability_zone: str,
        instance_count: int,
        instance_match_criteria: str = "open",
        tenancy: str = "default",
        ebs_optimized: bool = False,
        end_date_type: str = "unlimited",
        end_date: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> CapacityReservation:
        if instance_count < 1:
            raise AwsError.of("InvalidParameterValue", "InstanceCount must be a positive integer.")
        if instance_match_criteria not in ("open", "targeted"):
            raise AwsError.of(
                "InvalidParameterValue",
                f"Invalid value '{instance_match_criteria}' for InstanceMatchCriteria.",
            )
        reservation = CapacityReservation(
            reservation_id="cr-" + secrets.token_hex(9)[:17],
            account=self.account,
            region=self.region,
            instance_type=instance_type,
            instance_platform=instance_platform,
            availability_zone=availability_zone,
            total_instance_count=instance_count,
            instance_match_criteria=instance_match_criteria,
            tenancy=tenancy,
            ebs_optimized=ebs_optimized,
            end_date_type=end_date_type,
            end_date=end_date,
            tags=dict(tags or {}),
        )
        self.reservations[reservation.reservation_id] = reservation
        return reservation

    def get(self, reservation_id: str) -> CapacityReservation:
        try:
            return self.reservations[reservation_id]
        except KeyError:
            raise AwsError.of(
                "InvalidCapacityReservationId.NotFound",
                f"The capacity reservation ID '{reservation_id}' does not exist",
            ) from None

    def choose(
        self,
        *,
        instance_type: str,
        zone: str | None,
        count: int,
        target_id: str | None,
        preference: str | None,
    ) -> CapacityReservation | None:
        """The reservation a launch uses, or None for the general pool; raises when a target
        does not fit."""
        if target_id:
            reservation = self.get(target_id)
            if reservation.state != "active":
                raise AwsError.of(
                    "InvalidCapacityReservationId.NotFound",
                    f"The capacity reservation '{target_id}' is not active.",
                )
            if reservation.instance_type != instance_type:
                raise AwsError.of(
                    "InvalidParameterCombination",
                    f"The instance type {instance_type} does not match the instance type "
                    f"{reservation.instance_type} of capacity reservation {target_id}.",
                )
            if zone is not None and zone != reservation.availability_zone:
                raise AwsError.of(
                    "InvalidParameterCombination",
                    f"The Availability Zone {zone} does not match the Availability Zone "
                    f"{reservation.availability_zone} of capacity reservation {target_id}.",
                )
            if reservation.available_instance_count < count:
                raise AwsError.of(
                    "ReservationCapacityExceeded",
                    f"The requested number of instances exceeds the available capacity of "
                    f"Capacity Reservation {target_id}.",
                )
            return reservation
        if preference == "none":
            return None
        for reservation in self.reservations.values():
            if (
                reservation.state == "active"
                and reservation.instance_match_criteria == "open"
                and reservation.instance_type == instance_type
                and (zone is None or zone == reservation.availability_zone)
                and reservation.available_instance_count >= count
            ):
                return reservation
        return None

    def occupy(self, reservation: CapacityReservation, instance_id: str) -> None:
        reservation.instances.add(instance_id)
        self._by_instance[instance_id] = reservation.reservation_id

    def release(self, instance_id: str) -> None:
        reservation_id = self._by_instance.pop(instance_id, None)
        if reservation_id is not None:
            self.reservations[reservation_id].instances.discard(instance_id)

    def reservation_of(self, instance_id: str) -> str | None:
        return self._by_instance.get(instance_id)
