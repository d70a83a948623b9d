"""Connecting to Temporal from `TemporalSettings`: address, namespace, TLS or API key.

Every process uses `orca.payload_codec.DATA_CONVERTER` (pydantic models as JSON, large payloads
compressed). An unreachable server becomes `TemporalUnavailable` with the address and the setting to
change, never a traceback.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.service import TLSConfig

from orca.payload_codec import DATA_CONVERTER
from orca.settings import TemporalSettings


class TemporalUnavailable(Exception):  # noqa: N818 - reads as a state, like the gRPC status
    """Temporal cannot be reached or refused the connection."""


def tls_config(settings: TemporalSettings) -> TLSConfig | bool:
    tls = settings.tls
    if not tls.enabled:
        return settings.api_key is not None  # Temporal Cloud API keys imply TLS
    return TLSConfig(
        server_root_ca_cert=tls.server_root_ca_path.read_bytes()
        if tls.server_root_ca_path
        else None,
        client_cert=tls.client_cert_path.read_bytes() if tls.client_cert_path else None,
        client_private_key=tls.client_key_path.read_bytes() if tls.client_key_path else None,
        domain=tls.server_name,
    )


async def connect(settings: TemporalSettings) -> Client:
    try:
        return await Client.connect(
            settings.address,
            namespace=settings.namespace,
            data_converter=DATA_CONVERTER,
            tls=tls_config(settings),
            api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        )
    except OSError as error:
        raise TemporalUnavailable(
            f"cannot read a TLS file for Temporal: {error}; check temporal.tls"
        ) from None
    except RuntimeError as error:
        raise TemporalUnavailable(
            f"cannot reach Temporal at {settings.address} (namespace {settings.namespace}): "
            f"{error}. Check temporal.address (ORCA_TEMPORAL__ADDRESS) and that the server runs."
        ) from None
