"""The slow-client attack of issue 14, and health probes that measure what it does.

Each slow client opens a connection to 127.0.0.1, sends the headers of
`POST /api/predict` with `Content-Length: 1000000`, then one byte of body every
`trickle_s` seconds, and never finishes. Meanwhile a probe asks `/api/health`
every `interval_s` and counts the answers that came within `probe_timeout_s`.
Everything is bounded: a fixed number of connections, loopback only, a fixed
duration, every socket closed at the end.
"""
from __future__ import annotations

import socket
import time
import urllib.request

HEAD = (b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n")


class SlowClients:
    """`count` connections that each send a request body one byte at a time."""

    def __init__(self, port: int, count: int):
        self.sockets: list[socket.socket] = []
        self.sent = 0
        try:
            for _ in range(count):
                self.sockets.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                self.sockets[-1].sendall(HEAD)
        except BaseException:
            self.close()
            raise

    def trickle(self) -> int:
        """One more byte on every connection; returns how many took it (the rest were closed)."""
        alive = 0
        for s in self.sockets:
            try:
                s.sendall(b"x")
                alive += 1
            except OSError:
                pass
        self.sent += 1
        return alive

    def still_open(self) -> int:
        """Connections the server has neither closed nor answered (no bytes waiting to be read)."""
        open_ = 0
        for s in self.sockets:
            s.setblocking(False)
            try:
                s.recv(1, socket.MSG_PEEK)     # returns at once: an answer, or b"" when closed
            except BlockingIOError:            # nothing to read: still waiting for our body
                open_ += 1
            except OSError:
                pass
            finally:
                s.setblocking(True)
        return open_

    def close(self) -> None:
        for s in self.sockets:
            s.close()


def probe(base: str, timeout: float) -> float | None:
    """Seconds /api/health took to answer 200, or None (error, or no answer within `timeout`)."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(base + "/api/health", timeout=timeout) as r:
            r.read()
            ok = r.status == 200
    except OSError:
        return None
    took = time.monotonic() - started
    return took if ok and took <= timeout else None


def attack(port: int, clients: int = 30, seconds: float = 20.0, trickle_s: float = 5.0,
           interval_s: float = 1.0, probe_timeout_s: float = 3.0) -> dict:
    """Hold `clients` slow connections for `seconds` while probing /api/health; the figures."""
    base = f"http://127.0.0.1:{port}"
    slow = SlowClients(port, clients)
    times: list[float | None] = []
    alive = clients
    try:
        start = time.monotonic()
        next_byte = start + trickle_s
        while time.monotonic() - start < seconds:
            tick = time.monotonic()
            times.append(probe(base, probe_timeout_s))
            if time.monotonic() >= next_byte:
                alive = slow.trickle()
                next_byte += trickle_s
            time.sleep(max(0.0, interval_s - (time.monotonic() - tick)))
        still_open = slow.still_open()
    finally:
        slow.close()
    answered = sorted(t for t in times if t is not None)
    return {
        "slow_clients": clients, "seconds": seconds, "bytes_sent_per_client": slow.sent,
        "slow_connections_taking_bytes": alive, "slow_connections_open_at_end": still_open,
        "probes": len(times), "answered_within_s": probe_timeout_s, "answered": len(answered),
        "answered_share": round(len(answered) / len(times), 3) if times else 0.0,
        "median_ms": round(answered[len(answered) // 2] * 1e3, 1) if answered else None,
        "max_ms": round(answered[-1] * 1e3, 1) if answered else None,
    }
