"""Steering the emulator: the Python control object and the same operations over HTTP.

HTTP routes (JSON bodies, on the emulator's own port):

    GET    /_orca/health
    GET    /_orca/defaults
    POST   /_orca/capacity            {"instance_type", "zone"?, "capacity_type"?, "count"}
    POST   /_orca/faults              {"operation", "error_code"?, "rate"?, "count"?,
                                       "instance_type"?, "latency_s"?}
    DELETE /_orca/faults
    POST   /_orca/launch-delay        {"instance_type"?, "seconds"}
    POST   /_orca/interrupt           {"instance_id", "kind"?, "notice_seconds"?}
    POST   /_orca/containers/finish   {"pod_uid", "exit_code"?}
    GET    /_orca/containers/<pod-uid>  what the pod's containers got from Secrets Manager
    GET    /_orca/volumes/<vol-id>    an EBS volume's state, attachment, files, formatted or not
    POST   /_orca/volume-delays       {"create"?, "attach"?, "detach"?}  (seconds)
    POST   /_orca/spot-price          {"instance_type", "zone", "price"}
    POST   /_orca/reset

e.g. ``curl -XPOST localhost:5000/_orca/capacity -d '{"instance_type":"p5.48xlarge","count":0}'``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from werkzeug.wrappers import Request, Response

from orca_devstack.emulators.aws.capacity import CapacityRule, CapacityType
from orca_devstack.emulators.aws.config import EmulatorDefaults
from orca_devstack.emulators.aws.faults import FaultRule
from orca_devstack.emulators.aws.interruptions import InterruptionKind
from orca_devstack.emulators.aws.middleware import EmulatorMiddleware


class CapacityRequest(BaseModel):
    instance_type: str
    count: int
    zone: str | None = None
    capacity_type: CapacityType | None = None


class FaultRequest(BaseModel):
    operation: str
    error_code: str | None = None
    rate: float = 1.0
    count: int | None = None
    instance_type: str | None = None
    latency_s: float = 0.0


class LaunchDelayRequest(BaseModel):
    seconds: float
    instance_type: str | None = None


class InterruptRequest(BaseModel):
    instance_id: str
    kind: InterruptionKind = InterruptionKind.SPOT_INTERRUPTION
    notice_seconds: float | None = None


class SpotPriceRequest(BaseModel):
    instance_type: str
    zone: str
    price: float = Field(gt=0)


class VolumeDelaysRequest(BaseModel):
    create: float | None = Field(default=None, ge=0)
    attach: float | None = Field(default=None, ge=0)
    detach: float | None = Field(default=None, ge=0)


class FinishRequest(BaseModel):
    pod_uid: str
    exit_code: int = 0


class EmulatorControl:
    def __init__(self, middleware: EmulatorMiddleware, reset: Callable[[], None]) -> None:
        self._middleware = middleware
        self._reset = reset

    @property
    def defaults(self) -> EmulatorDefaults:
        assert self._middleware.defaults is not None, "the emulator is not started"
        return self._middleware.defaults

    def set_capacity(
        self,
        instance_type: str,
        zone: str | None = None,
        capacity_type: CapacityType | str | None = None,
        count: int = 0,
    ) -> None:
        """At most ``count`` live instances of ``instance_type`` (fnmatch pattern) in ``zone``
        (None: every zone) as ``capacity_type`` (None: both)."""
        kind = CapacityType(capacity_type) if capacity_type is not None else None
        with self._middleware.lock:
            self._middleware.capacity.set(CapacityRule(instance_type, count, zone, kind))

    def inject_fault(
        self,
        operation: str,
        error_code: str | None = None,
        rate: float = 1.0,
        count: int | None = None,
        instance_type: str | None = None,
        latency_s: float = 0.0,
    ) -> None:
        """Fail (``error_code``) and/or delay (``latency_s``) calls of ``operation`` (``*``: all),
        for a fraction ``rate`` of calls, ``count`` times (None: until cleared), optionally only
        for ``instance_type``."""
        with self._middleware.lock:
            self._middleware.faults.add(
                FaultRule(operation, error_code, rate, count, instance_type, latency_s)
            )

    def clear_faults(self) -> None:
        with self._middleware.lock:
            self._middleware.faults.clear()

    def set_launch_delay(self, instance_type: str | None, seconds: float) -> None:
        """How long new instances of ``instance_type`` (None: all types) stay pending."""
        with self._middleware.lock:
            self._middleware.launch_delays[instance_type] = seconds

    def interrupt(
        self,
        instance_id: str,
        kind: InterruptionKind | str = InterruptionKind.SPOT_INTERRUPTION,
        notice_seconds: float | None = None,
    ) -> None:
        notice = (
            self._middleware.config.notice_seconds if notice_seconds is None else notice_seconds
        )
        self._middleware.interrupt(instance_id, InterruptionKind(kind), notice)

    def finish_containers(self, pod_uid: str, exit_code: int = 0) -> None:
        """End the pod's running containers now with ``exit_code`` (KeyError if none run)."""
        with self._middleware.lock:
            self._middleware.containers.finish(pod_uid, exit_code)

    def container_view(self, pod_uid: str) -> dict[str, Any]:
        """Per container, the env vars and files (path → content) its Secrets Manager secrets
        gave it, as the emulated runner fetched them (KeyError for an unknown pod)."""
        with self._middleware.lock:
            run = self._middleware.containers.runs.get(pod_uid)
            if run is None:
                raise KeyError(f"no containers for pod {pod_uid}")
            return {"env": run.view.env, "files": run.view.files, "finished": run.finished}

    def volume_view(self, volume_id: str) -> dict[str, Any]:
        """An EBS volume's state, attachment, whether a filesystem was created on it (and how
        many times), how many pod runs mounted it, and its files (KeyError when unknown)."""
        with self._middleware.lock:
            return self._middleware.volume_view(volume_id)

    def set_volume_delays(
        self, create: float | None = None, attach: float | None = None, detach: float | None = None
    ) -> None:
        """How long volumes stay ``creating`` and attachments ``attaching``/``detaching`` (until
        the next reset; None keeps the current value)."""
        with self._middleware.lock:
            for name, value in (("create", create), ("attach", attach), ("detach", detach)):
                if value is not None:
                    self._middleware.volume_delays[name] = value

    def set_spot_price(self, instance_type: str, zone: str, price: float) -> datetime:
        """The spot price of one offering from now on (its history keeps the earlier ones);
        returns the change's timestamp as DescribeSpotPriceHistory shows it."""
        if zone not in self._middleware.offered_zones(instance_type, self._middleware.region):
            raise KeyError(f"{instance_type} is not offered in {zone}")
        at = datetime.now(UTC).replace(microsecond=0)
        self._middleware.spot_market.set_price(instance_type, zone, price, at)
        return at

    def reset(self) -> None:
        """Back to a fresh emulator: moto emptied, default content re-seeded with the same ids,
        capacity, faults and delays back to the configuration."""
        self._reset()

    # ------------------------------------------------------------------ HTTP
    def http(self, request: Request) -> Response:
        route = (request.method, request.path.rstrip("/"))
        try:
            body: dict[str, Any] = request.get_json(force=True, silent=True) or {}
            if route == ("GET", "/_orca/health"):
                return _json({"ok": True})
            if route[0] == "GET" and route[1].startswith("/_orca/containers/"):
                return _json(self.container_view(route[1].rsplit("/", 1)[1]))
            if route[0] == "GET" and route[1].startswith("/_orca/volumes/"):
                return _json(self.volume_view(route[1].rsplit("/", 1)[1]))
            if route == ("GET", "/_orca/defaults"):
                return Response(self.defaults.model_dump_json(), content_type="application/json")
            if route == ("POST", "/_orca/capacity"):
                capacity = CapacityRequest.model_validate(body)
                self.set_capacity(
                    capacity.instance_type, capacity.zone, capacity.capacity_type, capacity.count
                )
            elif route == ("POST", "/_orca/faults"):
                self.inject_fault(**FaultRequest.model_validate(body).model_dump())
            elif route == ("DELETE", "/_orca/faults"):
                self.clear_faults()
            elif route == ("POST", "/_orca/launch-delay"):
                delay = LaunchDelayRequest.model_validate(body)
                self.set_launch_delay(delay.instance_type, delay.seconds)
            elif route == ("POST", "/_orca/interrupt"):
                self.interrupt(**InterruptRequest.model_validate(body).model_dump())
            elif route == ("POST", "/_orca/containers/finish"):
                self.finish_containers(**FinishRequest.model_validate(body).model_dump())
            elif route == ("POST", "/_orca/volume-delays"):
                self.set_volume_delays(**VolumeDelaysRequest.model_validate(body).model_dump())
            elif route == ("POST", "/_orca/spot-price"):
                change = SpotPriceRequest.model_validate(body)
                at = self.set_spot_price(change.instance_type, change.zone, change.price)
                return _json({"ok": True, "at": at.isoformat()})
            elif route == ("POST", "/_orca/reset"):
                self.reset()
            else:
                return _json({"error": f"no route {request.method} {request.path}"}, 404)
        except ValidationError as error:
            return _json({"error": str(error)}, 400)
        except KeyError as error:
            return _json({"error": str(error.args[0] if error.args else error)}, 404)
        except Exception as error:
            return _json({"error": str(error)}, 400)
        return _json({"ok": True})


def _json(payload: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(payload), status, content_type="application/json")
