"""Local receivers for tests: an HTTP server that records every POST (alert webhooks, WeCom and
DingTalk robots, OpenLineage events) and an SMTP server that records every message.

Both listen on 127.0.0.1 on a free port, in a daemon thread, and are context managers::

    with HttpReceiver() as hook:
        post_somewhere(hook.url)
        assert hook.requests[0].json["text"]

Real servers, not mocks: the code under test talks TCP to them exactly as to the real service.
"""

from __future__ import annotations

import json
import socketserver
import threading
import urllib.parse
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

_Server = TypeVar("_Server", bound=socketserver.TCPServer)


def _serve(server: _Server) -> _Server:
    """Serve in a daemon thread (each connection in its own daemon thread)."""
    server.daemon_threads = True  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _stop(server: socketserver.TCPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


@dataclass
class Received:
    """One POST: its path, query parameters, headers and body (``json`` when it parses)."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    """Records every POST; answers ``status`` with ``answer`` (JSON) to each."""

    status: int = 200
    answer: dict[str, Any] | None = None
    requests: list[Received] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    def __enter__(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                split = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
                receiver.requests.append(Received(split.path, query, dict(self.headers.items()), body))
                data = json.dumps(receiver.answer or {}).encode()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._server = _serve(ThreadingHTTPServer(("127.0.0.1", 0), Handler))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def __exit__(self, *exc: object) -> None:
        _stop(self._server)

    @property
    def bodies(self) -> list[Any]:
        return [r.json for r in self.requests]


@dataclass
class SmtpReceiver:
    """A minimal SMTP server (HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no TLS, no auth)
    recording each message with its envelope."""

    messages: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    _server: socketserver.ThreadingTCPServer | None = field(default=None, repr=False)

    def __enter__(self) -> SmtpReceiver:
        receiver = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self) -> None:
                sender, recipients = "", list[str]()
                self.reply("220 localhost test SMTP")
                while line := self.rfile.readline():
                    command = line.decode("utf-8", "replace").strip()
                    verb = command.split(" ", 1)[0].upper()
                    if verb == "EHLO":
                        self.reply("250-localhost")
                        self.reply("250 8BITMIME")
                    elif verb == "HELO" or verb in ("NOOP", "RSET"):
                        sender, recipients = ("", []) if verb == "RSET" else (sender, recipients)
                        self.reply("250 OK")
                    elif verb == "MAIL":
                        sender = command.split(":", 1)[1].strip().strip("<>").split(">")[0]
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(command.split(":", 1)[1].strip().strip("<>").split(">")[0])
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = bytearray()
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                            data += chunk[1:] if chunk.startswith(b"..") else chunk
                        message = message_from_bytes(bytes(data), policy=policy.default)
                        receiver.messages.append((sender, list(recipients), message))  # type: ignore[arg-type]
                        sender, recipients = "", []
                        self.reply("250 OK queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        self._server = _serve(socketserver.ThreadingTCPServer((self.host, 0), Handler))
        self.port = self._server.server_address[1]
        return self

    def __exit__(self, *exc: object) -> None:
        _stop(self._server)
