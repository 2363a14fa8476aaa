"""TLS relay floor: the CPU per GiB of the bare minimum a user-space relay of an HTTPS body does.

One process, three threads on loopback: a sender (plain, or a TLS 1.3 server), the relay, and a
sink. The relay thread does only what any relay must, with nothing else around it (no HTTP, no
event loop), and its own CPU time (``RUSAGE_THREAD``) per GiB is reported:

* ``plain`` — receive into a reused buffer, send it on (the kernel's share: two copies and
  loopback TCP);
* ``tls`` — the same plus decryption through ``ssl.SSLObject`` and a ``MemoryBIO`` (what
  asyncio does, and what the proxy's TLS relay does): ciphertext into the BIO, plaintext out;
* ``tls-socket`` — decryption through a blocking ``ssl.SSLSocket`` (OpenSSL reads the socket
  itself).

Compare with ``openssl speed -decrypt -evp aes-128-gcm`` (the decrypt alone). The cipher suite
is what Python's TLS server and client agree on (printed).

    .venv/bin/python bench/tlsfloor.py                 # every mode, 2 GiB each
    .venv/bin/python bench/tlsfloor.py --mode tls --gib 1 --buffer 262144
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import ssl
import sys
import tempfile
import threading
from pathlib import Path

from common import MiB

from tests.support.proxy import TLSFiles

MODES = ("plain", "tls", "tls-socket")


def _listener() -> socket.socket:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s


def measure(mode: str, total: int, buffer: int, tls: TLSFiles) -> dict[str, object]:
    up, down = _listener(), _listener()

    def sender() -> None:
        conn, _ = up.accept()
        if mode != "plain":
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls.cert, tls.key)
            conn = ctx.wrap_socket(conn, server_side=True)
        block = os.urandom(MiB)
        sent = 0
        while sent < total:
            conn.sendall(block)
            sent += len(block)
        conn.close()

    def sink() -> None:
        conn, _ = down.accept()
        buf = bytearray(MiB)
        while conn.recv_into(buf):
            pass

    for target in (sender, sink):
        threading.Thread(target=target, daemon=True).start()
    src = socket.create_connection(up.getsockname())
    dst = socket.create_connection(down.getsockname())
    result: dict[str, object] = {"mode": mode, "buffer": buffer}

    def relay() -> None:
        plain = memoryview(bytearray(buffer))
        cipher = memoryview(bytearray(buffer))
        ctx = ssl.create_default_context(cafile=str(tls.ca))
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
        sock: ssl.SSLSocket | None = None
        if mode == "tls":
            while True:
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if outgoing.pending:
                        src.sendall(outgoing.read())
                    incoming.write(src.recv(65536))
            if outgoing.pending:
                src.sendall(outgoing.read())
            result["cipher"] = obj.cipher()
        elif mode == "tls-socket":
            sock = ctx.wrap_socket(src, server_hostname="127.0.0.1")
            result["cipher"] = sock.cipher()
        before = resource.getrusage(resource.RUSAGE_THREAD)
        got = 0
        while got < total:
            if mode == "plain" or sock is not None:
                n = (sock or src).recv_into(plain)
                if not n:
                    break
                dst.sendall(plain[:n])
                got += n
                continue
            n = src.recv_into(cipher)
            if not n:
                break
            incoming.write(cipher[:n])
            filled = 0
            while True:
                try:
                    k = obj.read(buffer - filled, plain[filled:])
                except ssl.SSLWantReadError:
                    break
                if not k:
                    break
                filled += k
                if filled == buffer:
                    dst.sendall(plain)
                    got, filled = got + filled, 0
            if filled:
                dst.sendall(plain[:filled])
                got += filled
        after = resource.getrusage(resource.RUSAGE_THREAD)
        gib = got / 2**30
        user = (after.ru_utime - before.ru_utime) / gib
        system = (after.ru_stime - before.ru_stime) / gib
        result["user_s_per_gib"] = round(user, 3)
        result["sys_s_per_gib"] = round(system, 3)
        result["total_s_per_gib"] = round(user + system, 3)

    thread = threading.Thread(target=relay)
    thread.start()
    thread.join()
    for s in (src, dst, up, down):
        s.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=MODES, action="append", help="default: all")
    parser.add_argument("--gib", type=float, default=2.0, help="bytes relayed per mode (GiB)")
    parser.add_argument("--buffer", type=int, default=MiB, help="relay buffer (bytes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tlsfloor-") as workdir:
        tls = TLSFiles.create(Path(workdir))
        for mode in args.mode or MODES:
            print(measure(mode, int(args.gib * 2**30), args.buffer, tls), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
