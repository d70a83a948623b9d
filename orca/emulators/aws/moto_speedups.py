"""Make moto's per-instance work independent of how many instances exist.

moto answers every instance's tags by scanning *every* tag of the whole EC2 backend
(`TaggedEC2Resource.get_tags` calls `describe_tags` with a resource-id filter, which compiles a
regular expression and walks all resources). Listing N instances therefore costs O(N²): at 1000
instances, one DescribeInstances took seconds and a burst benchmark stalled on the emulator, not
on ORCA. `install()` replaces that one method with a lookup of the resource's own tags, returning
the same items in the same order. Nothing else in moto changes.
"""

from __future__ import annotations

from typing import Any

from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix

_installed = False


def _own_tags(self: Any) -> list[dict[str, str]]:
    resource_id = getattr(self, "id", None)
    if not resource_id:
        return []
    tags = self.ec2_backend.tags.get(resource_id)
    if not tags:
        return []
    resource_type = EC2_PREFIX_TO_RESOURCE.get(get_prefix(resource_id), "")
    return [
        {"resource_id": resource_id, "key": key, "value": value, "resource_type": resource_type}
        for key, value in list(tags.items())
    ]


def install() -> None:
    """Patch moto once per process (idempotent)."""
    global _installed
    if not _installed:
        TaggedEC2Resource.get_tags = _own_tags  # type: ignore[method-assign]
        _installed = True
