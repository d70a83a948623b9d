"""Preparing a Temporal namespace for ORCA: its search attributes (`orca temporal setup`).

`orca dev` registers them when it starts the dev server; on a self-hosted cluster or Temporal
Cloud, run `orca temporal setup` once per namespace (Temporal Cloud may require registering them
in its console or with tcld instead; the command says so when the server refuses).
"""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from orca import search_attributes


async def register_search_attributes(client: Client) -> list[str]:
    """Add ORCA's Keyword search attributes that are missing; return the names added."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as error:
        if error.status is not RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server
            raise
        known = set()
    missing = [key.name for key in search_attributes.ALL if key.name not in known]
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                search_attributes={
                    name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing
                },
                namespace=client.namespace,
            )
        )
    return missing
