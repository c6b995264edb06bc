"""Run the app under uvicorn on a socket until SIGINT or SIGTERM, then stop cleanly.

Why FastAPI/Starlette + uvicorn: an ASGI stack that is widely used and maintained,
with request parsing (multipart), an OpenAPI document built from the routes, and a
server that shuts down gracefully: on a signal uvicorn stops accepting, answers the
requests in flight, then runs the app's shutdown (the pool's threads finish). uvicorn
re-raises the signal once it has stopped; :func:`run` turns that into a normal
return, so ``rtdet serve`` exits 0 after SIGINT or SIGTERM.
"""

from __future__ import annotations

import signal
import socket
from typing import Any

GRACE_S = 30  # seconds the requests in flight get to finish after a stop signal


class Stopped(Exception):
    """SIGINT or SIGTERM arrived."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: a free port, see ``getsockname()``).

    Raises:
        OSError: the address is taken or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say they
    # are TCP, and its connections inherit this socket's proto. With Nagle on, a reply written as headers then
    # body waited for the client's delayed ACK on every request after a connection's first: 56 ms instead of 12
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebinding right after a stop works
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections made from now on wait in the backlog until uvicorn accepts them
    except OSError:
        sock.close()
        raise
    return sock


def url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def uvicorn_server(app: Any) -> Any:
    """A ``uvicorn.Server`` for ``app``: warnings and errors logged (no line per request), graceful stop."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=GRACE_S,
                                         server_header=False))


def run(app: Any, sock: socket.socket) -> str:
    """Serve ``app`` on ``sock`` (main thread) until SIGINT or SIGTERM; returns the signal's name once the
    requests in flight are answered and the app has shut down."""
    def stop(signum: int, frame: Any) -> None:
        raise Stopped(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn_server(app).run(sockets=[sock])  # installs its own handlers; re-raises the signal when done
        return "stopped"
    except Stopped as e:
        return str(e)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
