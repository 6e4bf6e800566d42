"""Serve the emulator with uvicorn on 127.0.0.1, in a background thread (tests, ``make run``) or as a process."""

from __future__ import annotations

import argparse
import logging
import socket
import threading
import time
from typing import Any

import uvicorn

from resources.linkedin_emulator.app import EmulatedConnectionReset, create_app
from resources.linkedin_emulator.state import EmulatorConfig, EmulatorState


class _DropEmulatedResets(logging.Filter):
    """The reset fault is an exception on purpose; keep it out of the error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, EmulatedConnectionReset)


class EmulatorServer:
    """A running emulator. ``base_url`` serves both the OAuth host and the API host (only base URLs differ)."""

    def __init__(self, config: EmulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.state = EmulatorState(config or EmulatorConfig())
        self.config = self.state.config
        self.app = create_app(state=self.state)
        self._host, self._port = host, port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        assert self._socket is not None, "the emulator is not started"
        host, port = self._socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def _uvicorn(self) -> uvicorn.Server:
        logging.getLogger("uvicorn.error").addFilter(_DropEmulatedResets())
        config = uvicorn.Config(self.app, host=self._host, port=self._port, log_level="warning", access_log=False,
                                http="h11", lifespan="off", timeout_graceful_shutdown=1)
        return uvicorn.Server(config)

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((self._host, self._port))
        self._server = self._uvicorn()
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name="linkedin-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the LinkedIn emulator did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Kiln's local LinkedIn emulator (not LinkedIn).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--refresh-tokens", action="store_true", help="issue refresh tokens (partner apps)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every API answer")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--fault-seed", type=int, default=0)
    args = parser.parse_args(argv)
    config = EmulatorConfig(issue_refresh_tokens=args.refresh_tokens, latency_s=args.latency,
                            fault_rate=args.fault_rate, fault_seed=args.fault_seed)
    server = EmulatorServer(config, host=args.host, port=args.port)
    print(f"LinkedIn emulator (not LinkedIn) on http://{args.host}:{args.port}", flush=True)
    server._uvicorn().run()  # foreground: Ctrl-C stops it
