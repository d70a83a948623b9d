"""A TCP proxy in front of the Kubernetes API emulator that can drop every connection.

A real API server's watch connections break: load balancers time them out, API servers restart
or roll. The emulator never drops a connection on its own, so the chaos run puts this proxy
between ORCA (worker and watcher) and the emulator and, at chosen moments, closes every open
connection (`drop()`); with `hold=True` new connections are accepted but not forwarded until
`release()`, so the clients' reconnects wait (rather than back off further and further) while
the runner moves the emulator's event window on. The watcher must resume from its last
resourceVersion, or relist when the server answers `410 Gone`; the worker's pod status writes
must retry. It runs as threads in the chaos runner's process, on a free port.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class DroppingProxy:
    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.2)
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._released.set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="kube-proxy", daemon=True)
        self.drops = 0
        self.connections_cut = 0

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._released.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self._cut_all()

    def drop(self, hold: bool = False) -> int:
        """Close every proxied connection now; with `hold`, keep new ones waiting until
        `release()`. Returns how many connections were cut."""
        if hold:
            with self._lock:  # ordered with _accept's check: no connection outlives the hold
                self._released.clear()
        cut = self._cut_all()
        self.drops += 1
        self.connections_cut += cut
        return cut

    def release(self) -> None:
        self._released.set()

    def _cut_all(self) -> int:
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        return len(sockets) // 2

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                downstream, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            while not self._released.wait(0.2):  # held: the client waits for an answer
                if self._stopping.is_set():
                    downstream.close()
                    return
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                downstream.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if not self._released.is_set():  # a hold began while this one connected
                    for sock in (downstream, upstream):
                        sock.close()
                    continue
                self._sockets.update((downstream, upstream))
            finished = [0]
            for source, target in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(
                    target=self._pipe,
                    args=(source, target, finished),
                    name="kube-proxy-pipe",
                    daemon=True,
                ).start()

    def _pipe(self, source: socket.socket, target: socket.socket, finished: list[int]) -> None:
        """Copy one direction; the second direction to end closes the pair."""
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
        with self._lock:
            finished[0] += 1
            last = finished[0] == 2
            if last:
                self._sockets.discard(source)
                self._sockets.discard(target)
        if last:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.close()
