"""A minimal S3-ish upstream in its own process: ``python -m tests.support.sinkserver PORT``.

GET/HEAD answer a fixed 4 KiB object; PUT reads and discards the body (reporting its length and
any ``x-amz-checksum-*`` header back in ``x-sink-*`` headers). It does no S3 work of its own, so
the latency a client sees through the proxy is the proxy's (and the machine's), not a storage
server's. Signatures are not checked.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OBJECT = b"s" * 4096


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle and delayed ACKs add 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
        self.send_header("x-amz-request-id", "SINK")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer(OBJECT)

    def do_HEAD(self) -> None:
        self._answer(OBJECT)

    def do_PUT(self) -> None:
        remaining = int(self.headers.get("Content-Length", "0"))
        received = 0
        while remaining > 0:
            data = self.rfile.read(min(remaining, 1 << 20))
            if not data:
                break
            received += len(data)
            remaining -= len(data)
        extra = {"x-sink-received": str(received)}
        for k, v in self.headers.items():
            if k.lower().startswith("x-amz-checksum-"):
                extra["x-sink-" + k.lower()[len("x-amz-") :]] = v
        self._answer(b"", extra)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
