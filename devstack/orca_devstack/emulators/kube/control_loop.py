"""The background loop every emulated controller runs: woken by writes to the resources it
watches (and on a slow timer), it makes one reconciling pass at a time.

A pass that loses a race with a client write (a 409 or 404) is simply run again, as a real
controller requeues the key.
"""

from __future__ import annotations

import threading

from orca_devstack.emulators.kube import errors
from orca_devstack.emulators.kube.registry import Registry
from orca_devstack.emulators.kube.store import ResourceType, WatchEvent


class ControlLoop:
    """Subclasses set `name` and `watched` and implement `reconcile`."""

    name = "controller"
    watched: tuple[ResourceType, ...] = ()

    def __init__(self, registry: Registry, resync_seconds: float = 5.0) -> None:
        self.registry = registry
        self._resync_seconds = resync_seconds
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"kube-emulator-{self.name}", daemon=True
        )
        keys = {resource.key for resource in self.watched}
        registry.store.add_listener(
            lambda event: self._on_write(event) if event.resource.key in keys else None
        )

    def _on_write(self, event: WatchEvent) -> None:
        self._wake.set()

    def start(self) -> None:
        self._wake.set()
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self._resync_seconds)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self.reconcile()
            except errors.ApiError:
                self._wake.set()  # lost a race with a client write; look again
            except ConnectionAbortedError:
                return

    def reconcile(self) -> None:
        raise NotImplementedError
