#!/usr/bin/env python3
"""A slow link for the benchmark: a TCP proxy that holds every chunk it
reads, in each direction, for a fixed time before writing it on.

    delay-proxy.py [--delay MS] [--listen HOST:PORT] [--quickack]
                   UPSTREAM_HOST UPSTREAM_PORT

Each accepted connection gets its own connection to UPSTREAM. A chunk read
at time t leaves at t + delay, in the order it came, and on its own: nothing
is gathered into larger writes, nothing waits for a later chunk. Both sockets
have TCP_NODELAY, so the proxy adds no Nagle wait of its own; what remains is
the hold itself and the proxy's wake-up (its figures are printed at exit).
The TCP handshakes and the end of the stream (a half-close) are delayed too.

What a proxy cannot carry across is TCP's own acknowledgements: each side
gets its ACKs from the proxy, at once or after Linux's delayed-ACK timer
(up to 40 ms), never after the link's delay. A sender that waits for an ACK
(Nagle's algorithm, when it has a second small write for a first that is
not yet acknowledged) waits for that timer here, and would wait one round
trip on a real link. --quickack sets TCP_QUICKACK after every read, as
vscclient does on its own socket, so that the proxy acknowledges at once:
to tell such a wait from the rest.

On start it prints "LISTENING PORT" on stdout; on SIGTERM or SIGINT, per
direction, the chunks forwarded and how long they were held (p50, p99, max),
on stdout as one line "PROXY key=value ...", and exits.
"""
import argparse
import asyncio
import collections
import signal
import socket
import statistics
import sys


class Direction:
    """One direction of one connection: chunks wait here until due."""

    def __init__(self, loop, writer, delay, held):
        self.loop = loop
        self.writer = writer
        self.delay = delay
        self.held = held               # seconds each chunk really waited
        self.queue = collections.deque()
        self.timer = None

    def push(self, chunk):
        """@chunk was just read (b'' for end of stream)."""
        now = self.loop.time()
        self.queue.append((now, now + self.delay, chunk))
        if self.timer is None:
            self.timer = self.loop.call_at(now + self.delay, self.release)

    def release(self):
        self.timer = None
        now = self.loop.time()
        while self.queue and self.queue[0][1] <= now:
            read_at, _, chunk = self.queue.popleft()
            if self.writer.is_closing():
                continue
            if chunk:
                self.writer.write(chunk)
                self.held.append(now - read_at)
            elif self.writer.can_write_eof():
                self.writer.write_eof()
        if self.queue:
            self.timer = self.loop.call_at(self.queue[0][1], self.release)

    def drained(self):
        return not self.queue


def nodelay(writer):
    sock = writer.get_extra_info('socket')
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def quickack(writer):
    sock = writer.get_extra_info('socket')
    if sock is not None and hasattr(socket, 'TCP_QUICKACK'):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)


class Proxy:
    def __init__(self, upstream, delay, ack_at_once=False):
        self.upstream = upstream
        self.delay = delay
        self.ack_at_once = ack_at_once
        self.held = {'up': [], 'down': []}   # up: client to upstream

    async def pump(self, reader, writer, direction):
        """Read from @reader (whose socket is @writer's) into @direction."""
        while True:
            try:
                chunk = await reader.read(65536)
            except OSError:
                chunk = b''
            if self.ack_at_once:
                quickack(writer)     # Linux clears it as it goes
            direction.push(chunk)
            if not chunk:
                return

    async def serve(self, c_reader, c_writer):
        loop = asyncio.get_running_loop()
        # The connection itself crosses the link: one way to open it.
        await asyncio.sleep(self.delay)
        try:
            u_reader, u_writer = await asyncio.open_connection(*self.upstream)
        except OSError as e:
            print('delay-proxy: cannot reach %s:%d: %s' % (*self.upstream, e),
                  file=sys.stderr)
            c_writer.close()
            return
        await asyncio.sleep(self.delay)
        for w in (c_writer, u_writer):
            nodelay(w)
        up = Direction(loop, u_writer, self.delay, self.held['up'])
        down = Direction(loop, c_writer, self.delay, self.held['down'])
        try:
            await asyncio.gather(self.pump(c_reader, c_writer, up),
                                 self.pump(u_reader, u_writer, down))
            while not (up.drained() and down.drained()):
                await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            pass                     # the proxy stops: the connections go with it
        finally:
            for w in (c_writer, u_writer):
                w.close()

    def summary(self):
        parts = []
        for name, held in self.held.items():
            parts.append('%s_chunks=%d' % (name, len(held)))
            if held:
                ms = sorted(h * 1000 for h in held)
                parts.append('%s_hold_p50_ms=%.3f' % (name, statistics.median(ms)))
                parts.append('%s_hold_p99_ms=%.3f' % (name, ms[int(0.99 * (len(ms) - 1))]))
                parts.append('%s_hold_max_ms=%.3f' % (name, ms[-1]))
        return 'PROXY ' + ' '.join(parts)


async def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--delay', type=float, default=5.0, metavar='MS',
                    help='hold in each direction, in milliseconds (default 5)')
    ap.add_argument('--listen', default='127.0.0.1:0', metavar='HOST:PORT',
                    help='where to listen (default 127.0.0.1, any free port)')
    ap.add_argument('--quickack', action='store_true',
                    help='acknowledge every read at once (TCP_QUICKACK)')
    ap.add_argument('upstream_host')
    ap.add_argument('upstream_port', type=int)
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(':')
    proxy = Proxy((args.upstream_host, args.upstream_port), args.delay / 1000, args.quickack)
    server = await asyncio.start_server(proxy.serve, host, int(port))
    print('LISTENING %d' % server.sockets[0].getsockname()[1], flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    print(proxy.summary(), flush=True)


if __name__ == '__main__':
    asyncio.run(main())
