"""A real OpenAI-compatible HTTP server for tests, benchmarks and demos (stdlib only).

It speaks enough of the protocol for `openai.AsyncOpenAI`: `POST /v1/chat/completions` with the
usual response JSON (id, choices[0].message.content, usage) and `GET /v1/models`. Behaviour is
scripted: a default reply (text, or a callable of the request JSON), a queue of one-shot
behaviours (`Reply`, `Error` such as 429 + Retry-After or 500, `Delay`, `Raw` malformed bodies)
and a fixed latency. Every request is recorded (headers, body) and the peak number of requests
in flight is tracked, so tests can assert what the client really sent and how many at once
(`GET /_stats` reports the counts to other processes; `POST /_stats` also resets them).

    with FakeOpenAIServer(default_reply="[[A]]", latency=0.2) as server:
        ...  # point a judge at server.base_url

CLI demo: `python -m longwriter.testing.fake_openai_server --port 8765 --latency 0.2`.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Union

logger = logging.getLogger(__name__)


@dataclass
class Reply:
    """Answer with this text (after `delay` seconds on top of the server latency)."""

    text: str
    delay: float = 0.0


@dataclass
class Error:
    """Answer with an HTTP error status, e.g. 429 with a Retry-After header, or 500."""

    status: int
    retry_after: float | None = None
    delay: float = 0.0
    message: str = "scripted error"


@dataclass
class Delay:
    """Wait `seconds`, then behave as `then` (default: the default reply)."""

    seconds: float
    then: "Reply | Error | Raw | None" = None


@dataclass
class Raw:
    """Send this body verbatim (e.g. malformed JSON) with the given status."""

    body: str
    status: int = 200
    delay: float = 0.0


Behaviour = Union[Reply, Error, Delay, Raw]
DefaultReply = Union[str, Callable[[dict], str]]


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    raw_body: bytes
    started: float
    finished: float | None = None
    status: int | None = None
    usage: dict | None = field(default=None)


def _count_tokens(text: str) -> int:
    """A stand-in tokenizer: whitespace words (good enough to test accounting end to end)."""
    return len(text.split())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like a real server
    # Headers and body are separate small writes: with Nagle's algorithm on, the body waits for
    # the client's delayed ACK (~40 ms a request on Linux), which is not latency we mean to simulate.
    disable_nagle_algorithm = True
    server: "_Server"

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.owner._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        logger.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self.server.owner._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.owner._handle(self, "POST")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops bursts of concurrent connects
    owner: "FakeOpenAIServer"


class FakeOpenAIServer:
    """Background-thread server on 127.0.0.1 (ephemeral port unless `port` is given)."""

    def __init__(
        self,
        default_reply: DefaultReply = "[[C]]",
        latency: float = 0.0,
        model: str = "fake-judge",
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.default_reply = default_reply
        self.latency = latency
        self.model = model
        self.api_key = api_key  # when set, requests without this Bearer token get 401
        self._address = (host, port)
        self._queue: collections.deque[Behaviour] = collections.deque()
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._requests: list[RecordedRequest] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.in_flight = 0
        self.max_in_flight = 0

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> "FakeOpenAIServer":
        self._httpd = _Server(self._address, _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        logger.info("fake OpenAI server on %s", self.base_url)
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        with self._lock:
            open_connections = list(self._connections)
        for conn in open_connections:  # unblock keep-alive handler threads waiting for a request
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._httpd.server_close()
        self._httpd = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    # -- scripting and inspection ------------------------------------------------------------
    def script(self, *behaviours: Behaviour) -> None:
        """Queue one-shot behaviours, consumed in order by the next chat requests."""
        with self._lock:
            self._queue.extend(behaviours)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def reset_stats(self) -> None:
        with self._lock:
            self._requests.clear()
            self.max_in_flight = self.in_flight

    # -- request handling (runs in handler threads) --------------------------------------------
    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._connections.add if add else self._connections.discard)(conn)

    def _handle(self, handler: _Handler, method: str) -> None:
        arrived = time.monotonic()
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = RecordedRequest(method, handler.path, dict(handler.headers.items()), body, raw, time.monotonic())
        with self._lock:
            self._requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            status, payload, headers = self._respond(handler, method, body, raw, record, arrived)
            record.status = status
            self._send(handler, status, payload, headers)
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("client went away before the response (e.g. its timeout)")
            handler.close_connection = True
        finally:
            record.finished = time.monotonic()
            with self._lock:
                self.in_flight -= 1

    def _respond(self, handler: _Handler, method: str, body: dict | None, raw: bytes,
                 record: RecordedRequest, arrived: float) -> tuple[int, bytes, dict[str, str]]:
        if self.api_key is not None and handler.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "invalid api key")
        path = handler.path.split("?")[0].rstrip("/")
        if method == "GET" and path == "/v1/models":
            data = {"object": "list", "data": [{"id": self.model, "object": "model", "created": 0,
                                                "owned_by": "fake"}]}
            return 200, json.dumps(data).encode(), {}
        if path == "/_stats":  # for out-of-process use (benchmarks, demos); POST also resets
            with self._lock:
                stats = {"requests": len(self._requests) - 1, "max_in_flight": self.max_in_flight}
            if method == "POST":
                self.reset_stats()
            return 200, json.dumps(stats).encode(), {}
        if method != "POST" or path != "/v1/chat/completions":
            return _error(404, f"no route {method} {path}")
        if body is None or not isinstance(body.get("messages"), list):
            return _error(400, "body must be JSON with a messages list")
        with self._lock:
            behaviour = self._queue.popleft() if self._queue else None
        # The latency counts from the request's arrival, so this server's own reading and parsing
        # (Python, under one GIL for all handler threads) is not added on top of what is simulated.
        time.sleep(max(0.0, self.latency - (time.monotonic() - arrived)))
        while isinstance(behaviour, Delay):
            time.sleep(behaviour.seconds)
            behaviour = behaviour.then
        if behaviour is not None and behaviour.delay:
            time.sleep(behaviour.delay)
        if isinstance(behaviour, Error):
            headers = {} if behaviour.retry_after is None else {"Retry-After": f"{behaviour.retry_after:g}"}
            status, payload, _ = _error(behaviour.status, behaviour.message)
            return status, payload, headers
        if isinstance(behaviour, Raw):
            return behaviour.status, behaviour.body.encode(), {}
        if isinstance(behaviour, Reply):
            text = behaviour.text
        else:
            text = self.default_reply(body) if callable(self.default_reply) else self.default_reply
        record.usage = usage = _usage(body["messages"], text)
        return 200, json.dumps(_completion(body.get("model") or self.model, text, usage)).encode(), {}

    @staticmethod
    def _send(handler: _Handler, status: int, payload: bytes, headers: dict[str, str]) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)
        handler.wfile.flush()


def _error(status: int, message: str) -> tuple[int, bytes, dict[str, str]]:
    payload = {"error": {"message": message, "type": "fake_error", "code": status}}
    return status, json.dumps(payload).encode(), {}


def _usage(messages: list, text: str) -> dict:
    prompt = sum(_count_tokens(str(m.get("content", ""))) for m in messages if isinstance(m, dict))
    completion = _count_tokens(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _completion(model: str, text: str, usage: dict) -> dict:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible judge server (demo/testing).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every chat request")
    parser.add_argument("--reply", default="The first response is better.\nVerdict: [[A]]")
    parser.add_argument("--model", default="fake-judge")
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(args.reply, latency=args.latency, model=args.model, host=args.host, port=args.port)
    serve_until_interrupted(server.start(), f"serving {server.base_url} (model {args.model!r})")


def serve_until_interrupted(server: "FakeOpenAIServer", banner: str) -> None:
    """The command-line lifecycle of a started server: log, announce, serve until Ctrl-C, stop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(f"{banner}; Ctrl-C to stop", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
