"""Object storage with one global resourceVersion counter and a bounded watch event log.

Every write (create, update, delete) takes the next resourceVersion and appends exactly one event to
the log, so the event with resourceVersion N sits at a computable position and a watch resuming from
N costs no search. The log keeps at least `retained_events` events; a watch or continue token older
than that gets 410 Expired, like an etcd compaction on a real cluster.

Stored objects are never mutated after they are stored: writers build a new dict. That lets lists
and watches hand references out of the lock and serialize them without copying.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from orca_devstack.emulators.kube import errors

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class ResourceType:
    """One served resource (its plural name is its identity within the group)."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    singular: str = ""
    categories: tuple[
        str, ...
    ] = ()  # discovery's `categories`: "all" is what `kubectl get all` gets

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        return f"{self.group}/{self.plural}"

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


CORE_RESOURCES = (
    ResourceType(
        "",
        "v1",
        "Pod",
        "pods",
        True,
        ("po",),
        ("status", "binding", "eviction", "log", "exec", "attach", "portforward"),
        "pod",
        ("all",),
    ),
    ResourceType("", "v1", "Node", "nodes", False, ("no",), ("status",), "node"),
    ResourceType("", "v1", "Namespace", "namespaces", False, ("ns",), ("status",), "namespace"),
    ResourceType("", "v1", "Event", "events", True, ("ev",), (), "event"),
    ResourceType("", "v1", "Secret", "secrets", True, (), (), "secret"),
    ResourceType("", "v1", "ConfigMap", "configmaps", True, ("cm",), (), "configmap"),
    ResourceType("", "v1", "Service", "services", True, ("svc",), ("status",), "service", ("all",)),
    ResourceType(
        "", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), (), "serviceaccount"
    ),
    ResourceType(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        False,
        ("pv",),
        ("status",),
        "persistentvolume",
    ),
    ResourceType(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        True,
        ("pvc",),
        ("status",),
        "persistentvolumeclaim",
    ),
)
GROUP_RESOURCES = (
    ResourceType("coordination.k8s.io", "v1", "Lease", "leases", True, (), (), "lease"),
    ResourceType("events.k8s.io", "v1", "Event", "events", True, ("ev",), (), "event"),
    ResourceType(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        True,
        ("pdb",),
        ("status",),
        "poddisruptionbudget",
    ),
    ResourceType(
        "storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",), (), "storageclass"
    ),
    ResourceType(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        True,
        ("sts",),
        ("status", "scale"),
        "statefulset",
        ("all",),
    ),
)
ALL_RESOURCES = CORE_RESOURCES + GROUP_RESOURCES


@dataclass
class WatchEvent:
    """One entry of the event log; `previous` is the object before a MODIFIED write."""

    type: str
    resource: ResourceType
    object: JsonObject
    resource_version: int
    previous: JsonObject | None = None
    encoded: bytes | None = field(default=None, repr=False)


class ObjectStore:
    """Objects by resource, namespace and name, plus the event log watches read."""

    def __init__(self, retained_events: int = 10_000) -> None:
        if retained_events < 1:
            raise ValueError("retained_events must be at least 1")
        self.retained_events = retained_events
        self._changed = threading.Condition(threading.RLock())
        self._resource_version = 0
        self._objects: dict[str, dict[tuple[str, str], JsonObject]] = {
            resource.key: {} for resource in ALL_RESOURCES
        }
        self._log: list[WatchEvent] = []
        self._log_first_rv = 1
        self._closed = False
        self._listeners: list[Callable[[WatchEvent], None]] = []

    # -- reading -------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self._changed:
            return self._resource_version

    @property
    def lock(self) -> threading.Condition:
        """Held by the registry around read-modify-write sequences."""
        return self._changed

    def get(self, resource: ResourceType, namespace: str, name: str) -> JsonObject | None:
        with self._changed:
            return self._objects[resource.key].get((namespace, name))

    def snapshot(
        self, resource: ResourceType, namespace: str | None = None
    ) -> tuple[list[JsonObject], int]:
        """All objects of a resource (optionally one namespace) in key order, and the list rv."""
        with self._changed:
            objects = self._objects[resource.key]
            if namespace is None:
                keys = sorted(objects)
            else:
                keys = sorted(key for key in objects if key[0] == namespace)
            return [objects[key] for key in keys], self._resource_version

    def count(self, resource: ResourceType) -> int:
        with self._changed:
            return len(self._objects[resource.key])

    def iter_objects(self, resource: ResourceType) -> Iterator[JsonObject]:
        """A point-in-time iteration over one resource's objects (no ordering promised)."""
        with self._changed:
            items = list(self._objects[resource.key].values())
        return iter(items)

    # -- writing -------------------------------------------------------------------------------

    def add_listener(self, listener: Callable[[WatchEvent], None]) -> None:
        """Called after each write with the store lock held: keep it quick and non-blocking."""
        self._listeners.append(listener)

    def write(self, resource: ResourceType, obj: JsonObject, *, event_type: str) -> JsonObject:
        """Store `obj` (created or replaced) with the next resourceVersion; returns it."""
        name = obj["metadata"]["name"]
        namespace = obj["metadata"].get("namespace", "") if resource.namespaced else ""
        with self._changed:
            previous = self._objects[resource.key].get((namespace, name))
            self._resource_version += 1
            obj["metadata"]["resourceVersion"] = str(self._resource_version)
            self._objects[resource.key][(namespace, name)] = obj
            event = WatchEvent(event_type, resource, obj, self._resource_version, previous)
            self._append(event)
        return obj

    def remove(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        final_state: JsonObject | None = None,
    ) -> JsonObject:
        """Delete an object; the DELETED event carries the object at the deletion's resourceVersion.

        `final_state` is the object as last seen (e.g. with its last finalizer removed).
        """
        with self._changed:
            current = self._objects[resource.key].pop((namespace, name), None)
            if current is None:
                raise errors.not_found(resource.plural, name, resource.group)
            self._resource_version += 1
            last = final_state if final_state is not None else current
            final = {**last, "metadata": {**last["metadata"]}}
            final["metadata"]["resourceVersion"] = str(self._resource_version)
            self._append(WatchEvent("DELETED", resource, final, self._resource_version, current))
        return final

    def _append(self, event: WatchEvent) -> None:
        self._log.append(event)
        # Trim in batches so that appends stay amortised O(1); at least `retained_events` remain.
        excess = len(self._log) - self.retained_events
        if excess > max(self.retained_events // 4, 1):
            del self._log[:excess]
            self._log_first_rv += excess
        self._changed.notify_all()
        for listener in self._listeners:
            listener(event)

    # -- watching ------------------------------------------------------------------------------

    def check_retained(self, resource_version: int) -> None:
        """Raise 410 Expired when events after `resource_version` are no longer all in the log."""
        with self._changed:
            if (
                resource_version < self._resource_version
                and resource_version + 1 < self._log_first_rv
            ):
                raise errors.expired(
                    f"too old resource version: {resource_version} ({self._log_first_rv - 1})"
                )

    def events_after(
        self, resource_version: int, timeout: float | None
    ) -> tuple[list[WatchEvent], int]:
        """Events newer than `resource_version`, waiting up to `timeout` for the first one.

        Returns the events and the resourceVersion they bring the reader up to. Raises 410 Expired
        if the reader fell behind the retained window and `ConnectionAbortedError` once closed.
        """
        with self._changed:
            if resource_version >= self._resource_version and not self._closed:
                self._changed.wait(timeout)
            if self._closed:
                raise ConnectionAbortedError("the emulator is shutting down")
            self.check_retained(resource_version)
            start = max(resource_version + 1 - self._log_first_rv, 0)
            events = self._log[start:]
            return events, max(self._resource_version, resource_version)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
