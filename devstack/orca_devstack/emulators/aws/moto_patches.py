"""Twelve patches to moto, applied once per process by `install()`; nothing else in moto changes.

1. **SendCommand ran on every instance.** moto adds the instances matched by the command's
   `Targets` to its `InstanceIds`, and with no targets its EC2 filter is empty, which matches
   *every* instance: a command sent to one instance listed (and, in this emulator, ran on) all
   of them. AWS runs it on exactly the instances named. Patched: no targets, no extra instances.
2. **Instance tags scanned every tag.** `TaggedEC2Resource.get_tags` called `describe_tags` with
   a resource-id filter, which compiles a regular expression and walks every tag of the backend:
   listing N instances cost O(N²) (seconds per DescribeInstances at 1000 instances). Patched to
   read the resource's own tags, returning the same items in the same order.
3. **Commands were found by a linear scan.** `get_command_by_id` walked the list of every command
   ever sent, on each SendCommand and each status change. Patched to use an index (moto only
   ever appends to that list).
4. **SecureString values were readable without decryption.** moto answered GetParameter(s) and
   GetParametersByPath without `WithDecryption` with `kms:<key>:<plaintext>`; AWS answers the
   ciphertext, which reveals nothing. Patched: an opaque base64 blob (an HMAC of the value under
   a key drawn per process), so a listing ORCA logs at DEBUG holds no secret, as against AWS.
5. **Every request listed moto's package directory.** The server's dispatcher resolves a
   request's backend through `backends.list_of_moto_modules()`, an `os.listdir` plus one
   `isdir` per entry (about 150), on every call. Patched to list once (the installed package
   does not change while the server runs).
6. **Every request inspected its response class.** `BaseResponse.call_action` looks the action up
   in `method_names_from_class(type(self))`, an `inspect.getmembers` over the class each time.
   Patched to remember the names per class.
7. **GetMetricData scanned every datapoint for every query and period.** The watcher asks for
   11 metrics of every running pod per interval (thousands of queries at a few hundred pods),
   and moto filtered the whole period's datapoints for each one: O(queries x datapoints).
   Patched, for requests of MetricStat queries only: the datapoints are indexed by namespace,
   name and dimensions, and each query bins its own group. The index is kept across calls and
   grows with the data put since the last one (moto only appends to `metric_data`): grouping
   every datapoint once per call still made a burst quadratic, a third of the emulator's CPU at
   1700 pods. Same answers, in the same shape (and the namespace is now checked with dimensions
   too, as CloudWatch does).

8. **Volumes were never `creating`.** moto's `Volume.status` is `in-use` with an attachment,
   `available` otherwise. Patched: a state the emulator sets (`_orca_status`: `creating` while
   a new volume is being created, as EC2 reports it) wins; the attachment's own state
   (`attaching`, `detaching`) is set on moto's attachment object by the emulator.
9. **Terminating an instance detached its volumes at once.** moto's `teardown_defaults` detaches
   every volume when TerminateInstances is called; EC2 detaches the volumes that outlive the
   instance once it is terminated. Patched: volumes the emulator attached (`_orca_attached`)
   and not deleted on termination are left attached; the emulator detaches them when the
   instance reaches `terminated` (``EmulatorMiddleware._became_terminated``).

10. **Every serialized attribute asked six alias providers again.** moto's response serializer
   finds each member of a response shape on the Python object by trying the keys its alias
   providers offer (explicit `Meta` aliases, shape names, prefixes), rebuilt for every member of
   every object: in a 150-pod burst that was a sixth of the emulator's CPU (py-spy,
   `--gil`). The keys depend only on the object's class (and its class-level `Meta`), the shape
   and the member name: patched to remember them per (class, shape, member); same keys, same
   order, so the same answers. An object with a `Meta` of its own is asked afresh.
11. **SQS checked each message's retention through every queue attribute.** ReceiveMessage built
   the whole attribute map (message counts included: a pass over the queue) per message to read
   `MessageRetentionPeriod`: O(messages²) per receive of the interruption queue. Patched to read
   the queue's own retention period, the value that map holds.
12. **Instances were found by a scan of copies.** `InstanceBackend.get_instance` walked
   `all_instances()`, which copies every reservation first, and RunInstances calls it for each
   volume it attaches: a 1700-instance burst spent a fifth of the emulator's CPU there. Patched
   to look the ID up in an index kept as reservations are added (moto only ever adds them);
   an ID the index does not hold goes through moto's own scan (and its error), and is indexed
   when found.

Without 2 and 3 a 1000-pod burst benchmark measured moto, not ORCA; 5 and 6 were about a tenth of
the emulator's CPU in a 200-pod burst (py-spy), CPU the emulator takes from what it measures.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import moto.core.responses
from moto import backends
from moto.cloudwatch.exceptions import ValidationError
from moto.cloudwatch.models import CloudWatchBackend, Statistics
from moto.core.serialize import AttributePickerContext, XFormedAttributePicker
from moto.core.utils import unix_time
from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.elastic_block_store import Volume
from moto.ec2.models.instances import Instance, InstanceBackend
from moto.ec2.utils import EC2_PREFIX_TO_RESOURCE, get_prefix
from moto.sqs.models import SQSBackend
from moto.ssm.exceptions import SSMException
from moto.ssm.models import Command, Parameter, SimpleSystemManagerBackend

_installed = False

_possible_keys = XFormedAttributePicker.get_possible_keys
_possible_keys_of: dict[tuple[type, Any, str], tuple[str, ...]] = {}
"""(object class, shape, member) -> the keys moto's alias providers offer. Shapes compare by
identity and live as long as their service model, which moto loads once per process."""
_MOST_REMEMBERED = 50_000


def _possible_keys_remembered(self: Any, context: AttributePickerContext) -> Iterable[str]:
    obj = context.obj
    if "Meta" in getattr(obj, "__dict__", ()):  # an alias of this object's own
        return _possible_keys(self, context)
    key = (type(obj), context.shape, context.key)
    keys = _possible_keys_of.get(key)
    if keys is None:
        if len(_possible_keys_of) >= _MOST_REMEMBERED:  # shapes made afresh: never grow unbounded
            _possible_keys_of.clear()
        keys = _possible_keys_of[key] = tuple(_possible_keys(self, context))
    return keys


def _retained(self: Any, queue_name: str, message: Any) -> bool:
    retention = self.get_queue(queue_name).message_retention_period
    return bool(int(retention) + message.sent_timestamp / 1000 > unix_time())


def _instance_ids_from_targets(self: Any) -> list[str]:
    if not self.targets:
        return []
    return _moto_instance_ids_from_targets(self)


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


def _command_by_id(self: Any, command_id: str) -> Any:
    commands: list[Any] = self._commands
    index: dict[str, Any] = self.__dict__.setdefault("_orca_command_index", {})
    indexed: list[int] = self.__dict__.setdefault("_orca_commands_indexed", [0])
    if indexed[0] > len(commands):  # the list was replaced or shrank: start over
        index.clear()
        indexed[0] = 0
    for command in commands[indexed[0] :]:
        index[command.command_id] = command
    indexed[0] = len(commands)
    command = index.get(command_id)
    if command is None:
        raise SSMException("InvalidCommandId", "Invalid command id.")
    return command


_CIPHERTEXT_KEY = secrets.token_bytes(32)
_CIPHERTEXT_PREFIX = b"\x01\x02\x02\x00x"
"""What an AWS KMS ciphertext blob starts with (base64 `AQICAH…`)."""


def _response_object(self: Any, decrypt: bool = False, region: str | None = None) -> Any:
    answer = _moto_response_object(self, decrypt, region)
    if self.parameter_type == "SecureString" and not decrypt:
        digest = hmac.new(_CIPHERTEXT_KEY, str(self.value).encode(), hashlib.sha256).digest()
        answer["Value"] = base64.b64encode(_CIPHERTEXT_PREFIX + digest).decode("ascii")
    return answer


_moto_instance_ids_from_targets = Command._get_instance_ids_from_targets
_moto_response_object = Parameter.response_object


def _metric_key(namespace: str, name: str, dimensions: Any) -> tuple[Any, ...]:
    return (namespace, name, tuple(sorted((d.name, d.value) for d in dimensions)))


@dataclass
class _MetricIndex:
    """Datapoints by (namespace, name, dimensions) and by (namespace, name)."""

    by_dimensions: dict[tuple[Any, ...], list[Any]] = field(default_factory=dict)
    by_name: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    indexed: int = 0
    """How many of the backend's `metric_data` are in the index (moto only appends to it)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, datum: Any) -> None:
        key = _metric_key(datum.namespace, datum.name, datum.dimensions)
        self.by_dimensions.setdefault(key, []).append(datum)
        self.by_name.setdefault((datum.namespace, datum.name), []).append(datum)

    source: list[Any] | None = None

    def catch_up(self, data: list[Any]) -> None:
        with self.lock:
            if data is not self.source or len(data) < self.indexed:  # replaced or cleared
                self.by_dimensions, self.by_name, self.indexed = {}, {}, 0
                self.source = data
            for datum in data[self.indexed :]:
                self.add(datum)
            self.indexed = len(data)


def _metric_index(backend: Any) -> _MetricIndex:
    index = backend.__dict__.get("_orca_metric_index")
    if index is None:
        index = backend.__dict__.setdefault("_orca_metric_index", _MetricIndex())
    index.catch_up(backend.metric_data)
    return index


def _get_metric_data(
    self: Any,
    queries: list[dict[str, Any]],
    start_time: datetime,
    end_time: datetime,
    scan_by: str = "TimestampAscending",
) -> list[dict[str, Any]]:
    if not queries or any("MetricStat" not in q for q in queries):
        return _moto_get_metric_data(self, queries, start_time, end_time, scan_by)
    start_time = start_time.replace(microsecond=0)
    end_time = end_time.replace(microsecond=0)
    if start_time >= end_time:
        raise ValidationError(
            "The parameter EndTime must be greater than StartTime."
            if start_time > end_time
            else "The parameter StartTime must not equal parameter EndTime."
        )
    stored = _metric_index(self)
    provided = _MetricIndex()  # moto's metrics of other services, computed on the fly
    for datum in self.aws_metric_data:
        provided.add(datum)
    results = []
    for query in queries:
        stat_query = query["MetricStat"]
        metric = stat_query["Metric"]
        namespace, name = metric["Namespace"], metric["MetricName"]
        dimensions = metric.get("Dimensions") or []
        if dimensions:
            key = (namespace, name, tuple(sorted((d["Name"], d["Value"]) for d in dimensions)))
            candidates = stored.by_dimensions.get(key, []) + provided.by_dimensions.get(key, [])
        else:
            candidates = stored.by_name.get((namespace, name), []) + provided.by_name.get(
                (namespace, name), []
            )
        data = [d for d in candidates if start_time <= d.timestamp < end_time]
        if stat_query.get("Unit"):
            data = [d for d in data if d.unit == stat_query["Unit"]]
        period = timedelta(seconds=int(stat_query["Period"]))
        stat = stat_query["Stat"]
        bins: dict[int, list[Any]] = {}
        for datum in data:
            bins.setdefault((datum.timestamp - start_time) // period, []).append(datum)
        values, timestamps = [], []
        for index in sorted(bins):
            at = start_time + index * period
            statistics = Statistics([stat], at)
            statistics.metric_data = bins[index]
            values.append(statistics.get_statistics_for_type(stat))
            timestamps.append(at)
        if scan_by == "TimestampDescending":
            values.reverse()
            timestamps.reverse()
        if query.get("ReturnData", True):
            results.append(
                {
                    "id": query["Id"],
                    "label": query.get("Label") or f"{name} {stat}",
                    "values": values,
                    "timestamps": timestamps,
                    "status_code": "Complete",
                }
            )
    return results


_moto_get_metric_data = CloudWatchBackend.get_metric_data


def _volume_status(self: Any) -> str:
    status = self.__dict__.get("_orca_status")
    if status:
        return str(status)
    return "in-use" if self.attachment else "available"


def _teardown_defaults(self: Any) -> None:
    for device_path in list(self.block_device_mapping.keys()):
        mapping = self.block_device_mapping[device_path]
        volume = self.ec2_backend.volumes.get(mapping.volume_id)
        if (
            volume is not None
            and volume.__dict__.get("_orca_attached")
            and not mapping.delete_on_termination
        ):
            continue  # detached by the emulator once the instance is terminated
        self.ec2_backend.detach_volume(mapping.volume_id, self.id, device_path)
        if mapping.delete_on_termination:
            self.ec2_backend.delete_volume(mapping.volume_id)


@dataclass
class _InstanceIndex:
    by_id: dict[str, Any] = field(default_factory=dict)
    reservations: int = 0
    """How many of the backend's reservations are indexed (moto only adds reservations)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def _get_instance(self: Any, instance_id: str) -> Any:
    index = self.__dict__.get("_orca_instance_index")
    if index is None:
        index = self.__dict__.setdefault("_orca_instance_index", _InstanceIndex())
    with index.lock:
        if len(self.reservations) < index.reservations:  # replaced: start afresh
            index.by_id, index.reservations = {}, 0
        if len(self.reservations) > index.reservations:
            added = itertools.islice(self.reservations.values(), index.reservations, None)
            for reservation in added:
                for instance in reservation.instances:
                    index.by_id[instance.id] = instance
            index.reservations = len(self.reservations)
        instance = index.by_id.get(instance_id)
    if instance is None:
        # Not indexed: absent (moto raises), or appended to a reservation indexed before it
        # (RunInstances adds the reservation first, then its instances one by one).
        instance = _moto_get_instance(self, instance_id)
        with index.lock:
            index.by_id[instance_id] = instance
    return instance


_moto_get_instance = InstanceBackend.get_instance
_moto_modules = backends.list_of_moto_modules


@functools.cache
def _listed_moto_modules() -> tuple[str, ...]:
    return tuple(_moto_modules())


def _moto_modules_listed_once() -> Iterable[str]:
    return _listed_moto_modules()


_method_names_per_class = functools.cache(moto.core.responses.method_names_from_class)


def install() -> None:
    """Patch moto once per process (idempotent)."""
    global _installed
    if _installed:
        return
    Command._get_instance_ids_from_targets = _instance_ids_from_targets  # type: ignore[method-assign]
    TaggedEC2Resource.get_tags = _own_tags  # type: ignore[method-assign]
    SimpleSystemManagerBackend.get_command_by_id = _command_by_id  # type: ignore[method-assign]
    Parameter.response_object = _response_object  # type: ignore[method-assign]
    backends.list_of_moto_modules = _moto_modules_listed_once
    moto.core.responses.method_names_from_class = _method_names_per_class
    CloudWatchBackend.get_metric_data = _get_metric_data  # type: ignore[method-assign]
    Volume.status = property(_volume_status)  # type: ignore[assignment,method-assign]
    Instance.teardown_defaults = _teardown_defaults  # type: ignore[method-assign]
    XFormedAttributePicker.get_possible_keys = _possible_keys_remembered  # type: ignore[method-assign,assignment]
    SQSBackend.is_message_valid_based_on_retention_period = _retained  # type: ignore[method-assign]
    InstanceBackend.get_instance = _get_instance  # type: ignore[method-assign]
    _installed = True
