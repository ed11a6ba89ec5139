"""A user-space TCP proxy that delays each direction by RTT/2: an emulated far-away link.

This kernel has no ``sch_netem``, so latency is added in user space. Every chunk read from one side is
forwarded to the other side ``delay`` seconds after it was read. Chunks are queued with their due time,
so the link keeps its bandwidth (a second chunk read right after the first one arrives right after it):
it adds latency, not serialisation, which is what a long-haul path does.

Run on its own: ``python bench/proxy.py --listen 127.0.0.1:2222 --target 172.17.0.2:22 --rtt-ms 150``;
or start it in a background thread with :class:`DelayProxy` (what bench/run.py does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

_CHUNK = 65536


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    hold_until: float = 0.0,
    on_data: Callable[[], None] | None = None,
) -> None:
    """Copy reader -> writer, each chunk delivered `delay` seconds after it was sent, order kept.

    Data read before `hold_until` (loop time) counts as sent at `hold_until`: the client could not have sent
    it before its SYN-ACK came back.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        # the other side closed: half-close ours after the same delay
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        with contextlib.suppress(OSError):
            if writer.can_write_eof():
                writer.write_eof()

    sender = asyncio.create_task(deliver())
    try:
        while True:
            data = await reader.read(_CHUNK)
            if data and on_data is not None:
                on_data()
            queue.put_nowait((max(loop.time(), hold_until) + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()


class DelayProxy:
    """Listen on host:port and forward every connection to target, delaying each direction by rtt/2."""

    def __init__(self, target_host: str, target_port: int, rtt_ms: float, listen_host: str = "127.0.0.1") -> None:
        if rtt_ms < 0:
            raise ValueError(f"rtt_ms must be >= 0, got {rtt_ms}")
        self.target = (target_host, target_port)
        self.delay = rtt_ms / 2000.0
        self.listen_host = listen_host
        self.port = 0
        self.connections = 0
        # exchanges that waited for the link: each time a client sends after the server last spoke (or first), one
        # round trip begins; a new connection adds its TCP handshake (one more)
        self.round_trips = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._tasks: set[asyncio.Task] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    async def _handle(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        me = asyncio.current_task()
        if me is not None:
            self._tasks.add(me)  # a strong reference: the loop only keeps weak ones
            me.add_done_callback(self._tasks.discard)
        loop = asyncio.get_running_loop()
        # TCP handshake over the far link: the SYN reaches the server after RTT/2, the client may send
        # only after the SYN-ACK is back (one RTT after it connected)
        client_may_send = loop.time() + 2 * self.delay
        try:
            await asyncio.sleep(self.delay)
            s_reader, s_writer = await asyncio.open_connection(*self.target)
        except (OSError, asyncio.CancelledError):
            c_writer.close()
            return
        self.round_trips += 1  # the handshake
        turn = {"last": "server"}

        def client_sends() -> None:
            if turn["last"] != "client":
                self.round_trips += 1
                turn["last"] = "client"

        def server_sends() -> None:
            turn["last"] = "server"

        try:
            await asyncio.gather(
                _pump(c_reader, s_writer, self.delay, client_may_send, client_sends),
                _pump(s_reader, c_writer, self.delay, 0.0, server_sends),
                return_exceptions=True,
            )
        except asyncio.CancelledError:
            pass  # stop(): end quietly (a cancelled connection task would be logged by asyncio)
        finally:
            for w in (c_writer, s_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, self.listen_host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await server.wait_closed()

    def start(self) -> DelayProxy:
        """Start in a daemon thread; returns once the port is bound (see .port)."""

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self._serve())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="delay-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("delay proxy did not start within 10 s")
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, then end the thread."""
        if self._loop and self._stop and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread:
            self._thread.join(10)


def measure_rtt(host: str, port: int, samples: int = 3) -> float:
    """Median seconds for a TCP connect + first banner byte through the proxy (sanity check of the delay)."""
    import socket  # noqa: PLC0415

    times = []
    for _ in range(samples):
        t0 = time.monotonic()
        with socket.create_connection((host, port), timeout=10) as s:
            s.recv(1)
        times.append(time.monotonic() - t0)
    times.sort()
    return times[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:0", help="host:port to listen on (port 0 = any)")
    ap.add_argument("--target", required=True, help="host:port to forward to (e.g. a container's sshd)")
    ap.add_argument("--rtt-ms", type=float, default=150.0, help="round-trip time to add (each direction RTT/2)")
    args = ap.parse_args()
    lhost, _, lport = args.listen.rpartition(":")
    thost, _, tport = args.target.rpartition(":")
    proxy = DelayProxy(thost, int(tport), args.rtt_ms, lhost or "127.0.0.1")
    proxy.port = int(lport or 0)
    proxy.start()
    print(f"listening on {proxy.listen_host}:{proxy.port} -> {thost}:{tport}, rtt {args.rtt_ms:g} ms", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        threading.Event().wait()
    proxy.stop()


if __name__ == "__main__":
    main()
