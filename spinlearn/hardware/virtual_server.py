"""The virtual instrument on the network: a TCP server on loopback, one thread per client.

A client speaks to it as to a SCPI instrument over a raw socket (PyVISA's
``TCPIP::127.0.0.1::PORT::SOCKET``): each line it sends goes to
:meth:`~.virtual.VirtualInstrument.handle_line`, each reply comes back with a line feed.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spinlearn.hardware.virtual import VirtualInstrument

HOST = "127.0.0.1"  # loopback only: the virtual instrument is a test double, never a network service
MAX_LINE_BYTES = 4 << 20  # longer messages are dropped with error -223 (too much data)
POLL_S = 0.1  # how often a connection checks for shutdown while waiting for input
SEND_TIMEOUT_S = 10.0


class _Connection(socketserver.BaseRequestHandler):
    """One client: lines in, replies out; gives up on shutdown, on an idle client and on send stalls."""

    server: InstrumentServer

    def setup(self) -> None:
        with self.server.count_lock:
            self.server.active += 1

    def finish(self) -> None:
        with self.server.count_lock:
            self.server.active -= 1

    def handle(self) -> None:
        sock: socket.socket = self.request
        instrument = self.server.instrument
        buffer = bytearray()
        last = time.monotonic()
        while not self.server.stopping.is_set():
            sock.settimeout(POLL_S)
            try:
                chunk = sock.recv(1 << 16)
            except TimeoutError:
                if time.monotonic() - last > self.server.idle_timeout_s:
                    return
                continue
            except OSError:
                return
            if not chunk:
                return
            last = time.monotonic()
            buffer += chunk
            while (end := buffer.find(b"\n")) >= 0:
                line = buffer[:end].decode("ascii", "replace").rstrip("\r")
                del buffer[: end + 1]
                reply = instrument.handle_line(line)
                if reply is not None:
                    sock.settimeout(SEND_TIMEOUT_S)
                    try:
                        sock.sendall(reply.encode("ascii", "replace") + b"\n")
                    except OSError:
                        return
            if len(buffer) > MAX_LINE_BYTES:
                instrument.overflow()
                buffer.clear()


class InstrumentServer(socketserver.ThreadingTCPServer):
    """Serves a :class:`VirtualInstrument` on ``127.0.0.1:port`` (0: a free port) from a thread.

    Use as a context manager (or :meth:`start`/:meth:`stop`): stopping closes the listening socket
    and every connection within ``POLL_S`` and joins their threads, so nothing is left running.
    """

    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True

    def __init__(self, instrument: VirtualInstrument, port: int = 0, idle_timeout_s: float = 3600.0) -> None:
        self.instrument = instrument
        self.stopping = threading.Event()
        self.idle_timeout_s = idle_timeout_s
        self.active = 0  # open connections
        self.count_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__((HOST, port), _Connection)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def resource(self) -> str:
        """The VISA resource name of this server (pyvisa-py's raw TCP socket)."""
        return f"TCPIP::{HOST}::{self.port}::SOCKET"

    def start(self) -> InstrumentServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
        )
        self._thread.start()
        return self

    def wait_idle(self, timeout_s: float = 5.0) -> bool:
        """Wait until every client has hung up and its last messages are handled; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.active and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self.active

    def stop(self, grace_s: float = 2.0) -> None:
        """Stop serving: clients get ``grace_s`` to finish (their last messages are handled), then
        every connection is closed."""
        self.wait_idle(grace_s)
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.server_close()  # joins the connection threads
        self.instrument.close()

    def __enter__(self) -> InstrumentServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
