"""`rtdet serve` as a real process: it prints its address, answers, and stops cleanly on SIGINT and SIGTERM,
finishing the request in flight; bad flags are one error line."""

import base64
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from rtdet.cli import main
from rtdet.serve.pool import threads_per_worker
from tests.serve.conftest import httpx

pytestmark = pytest.mark.slow  # whole rtdet processes: seconds per test
ROOT = Path(__file__).resolve().parents[2]


class Served:
    """``python -m rtdet serve ... --port 0`` in its own process; ``url`` once it has printed its address."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "rtdet", "serve", *args, "--port", "0"], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(x) for x in self.proc.stdout], daemon=True).start()
        while True:  # its address line (a tuning note may come first); a process that exits fails at once
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                assert self.proc.poll() is None, f"rtdet serve exited ({self.proc.returncode}): {self.proc.stderr.read()}"
                continue
            if " on http://127.0.0.1:" in line:
                break
        self.url = line.split(" on ")[-1].strip()

    def stop(self, signum: int) -> tuple[int, str, str]:
        self.proc.send_signal(signum)
        rc = self.proc.wait(timeout=120)
        out = []
        while not self.lines.empty():
            out.append(self.lines.get())
        return rc, "".join(out), self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def served(weights):
    started = []

    def start(*args):
        started.append(Served("--weights", str(weights["detect-onnx"]), *args))
        return started[-1]

    yield start
    for s in started:
        s.close()


def test_serves_then_stops_cleanly_on_sigint(served, photos):
    server = served("--workers", "1")
    assert httpx.get(f"{server.url}/health", timeout=60).json()["status"] == "ok"
    files = {"file": (photos[0].name, photos[0].read_bytes())}
    assert httpx.post(f"{server.url}/v1/predict", files=files, timeout=60).status_code == 200
    assert httpx.get(f"{server.url}/", timeout=60).text.startswith("<!doctype html>")
    rc, out, err = server.stop(signal.SIGINT)
    assert rc == 0, err
    assert "rtdet serve: stopped (SIGINT): 1 predictions, 0 refused as busy" in out
    threads = threads_per_worker(1)  # one worker: every core
    assert f"1 workers of {threads} inference thread{'s' * (threads > 1)} each" in out
    assert "Traceback" not in err
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/health", timeout=5)


def test_sigterm_finishes_the_request_in_flight_then_stops(served, photos):
    server = served()
    host, port = server.url.removeprefix("http://").split(":")
    body = json.dumps({"image": base64.b64encode(photos[0].read_bytes()).decode()}).encode()
    with socket.create_connection((host, int(port)), timeout=60) as conn:
        conn.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body[:1000])
        time.sleep(1.0)  # the server holds a request it has not finished reading
        server.proc.send_signal(signal.SIGTERM)
        time.sleep(1.0)
        assert server.proc.poll() is None, "stopped with a request in flight"
        conn.sendall(body[1000:])
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < 10:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    rc, out, err = server.stop(signal.SIGTERM)  # already stopping: waits for the exit
    assert rc == 0 and "stopped (SIGTERM): 1 predictions" in out, err
    assert "Traceback" not in err


def test_bad_flags_and_a_taken_port_are_one_error_line(weights, capsys):
    assert main(["serve", "--weights", str(weights["detect-onnx"]), "--workers", "0"]) == 2
    assert capsys.readouterr().err.strip() == "rtdet: error: rtdet serve: --workers must be >= 1, got 0"
    assert main(["serve", "--weights", str(weights["detect-onnx"]), "--imgsz", "320"]) == 2
    assert "is a static graph for 160 px input, not --imgsz 320" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", "--weights", str(weights["detect-onnx"]), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rtdet: error: rtdet serve: cannot listen on 127.0.0.1:{port}: ") and "\n" not in err


def test_connections_send_without_nagles_delay():
    """The listening socket says it is TCP, so asyncio turns Nagle's algorithm off on every connection it accepts
    (with it on, a reply written as headers then body waited ~40 ms for the client's delayed ACK on every
    request after a connection's first)."""
    import asyncio

    from rtdet.serve.server import listen

    sock = listen("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP
    nodelay: list[int] = []

    async def probe() -> None:
        accepted = asyncio.Event()

        def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nodelay.append(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()
            accepted.set()

        server = await asyncio.start_server(on_connect, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        await asyncio.wait_for(accepted.wait(), 30)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(probe())
    assert nodelay and nodelay[0] != 0
