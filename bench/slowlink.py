#!/usr/bin/env python3
"""The passthru benchmark across a slow link: tests/guest/scenarios.py's
bench-passthru or bench-reference-passthru, with vscclient reaching the
card's host (vccid's or QEMU's ccid-card-passthru) through
bench/delay-proxy.py instead of directly.

    slowlink.py [--delay MS] [--quickack] SCENARIOS.PY-ARGUMENTS...

Everything but --delay (milliseconds each way, default 5) and --quickack
(the proxy acknowledges every read at once: see delay-proxy.py) goes to
scenarios.py as it is. The BENCH line gains the link's own figures:
link_delay_ms; link_rtt_p50_ms and _p99_ms, the round trip of a small
message through the same proxy to an echo on this host, measured just
before the guest boots (what the link costs under the machine's load of
the moment); and how long the proxy really held the chunks of each
direction while the guest ran (up: vscclient to the card's host), p50 and
max.
"""
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests', 'guest'))
import scenarios  # noqa: E402

PROXY = os.path.join(HERE, 'delay-proxy.py')


def take_options(argv):
    """--delay MS and --quickack out of @argv: (delay, quickack, the rest)."""
    delay, quickack = 5.0, '--quickack' in argv
    argv = [a for a in argv if a != '--quickack']
    if '--delay' in argv:
        i = argv.index('--delay')
        delay, argv = float(argv[i + 1]), argv[:i] + argv[i + 2:]
    return delay, quickack, argv


class ProxiedVscclient(scenarios.Vscclient):
    """vscclient whose connection to @port crosses a delay-proxy.py."""
    delay = 5.0
    quickack = False
    reports = []             # the PROXY line of every proxy stopped

    def __init__(self, exe, wd, port, log_path, tls=False):
        self.proxy = subprocess.Popen(
            [sys.executable, PROXY, '--delay', '%g' % self.delay]
            + (['--quickack'] if self.quickack else []) + ['127.0.0.1', str(port)],
            stdout=subprocess.PIPE, text=True)
        proxy_port = int(self.proxy.stdout.readline().split()[1])
        super().__init__(exe, wd, proxy_port, log_path, tls)

    def stop(self):
        status = super().stop()
        if self.proxy.poll() is None:
            self.proxy.terminate()
            out, _ = self.proxy.communicate(timeout=10)
            self.reports += [line for line in out.splitlines() if line.startswith('PROXY ')]
        return status


def link_rtt(delay, rounds=200):
    """The link alone: p50 and p99 in ms of @rounds ping-pongs of 12 bytes
    (a VSCard header's size) through a delay-proxy.py to an echo."""
    echo = socket.socket()
    echo.bind(('127.0.0.1', 0))
    echo.listen(1)

    def serve():
        conn, _ = echo.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn:
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    proxy = subprocess.Popen([sys.executable, PROXY, '--delay', '%g' % delay, '127.0.0.1',
                              str(echo.getsockname()[1])], stdout=subprocess.PIPE, text=True)
    port = int(proxy.stdout.readline().split()[1])
    times = []
    with socket.create_connection(('127.0.0.1', port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(rounds):
            start = time.monotonic()
            s.sendall(b'x' * 12)
            got = 0
            while got < 12:
                got += len(s.recv(4096))
            times.append((time.monotonic() - start) * 1000)
    proxy.terminate()
    proxy.communicate(timeout=10)
    echo.close()
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def run_passthru_slow(wd, args, report, checks=scenarios.PASSTHRU_CHECKS):
    rtt_p50, rtt_p99 = link_rtt(ProxiedVscclient.delay)
    run = run_passthru(wd, args, report, checks)
    if run is not None:
        run.metrics['link_delay_ms'] = '%g' % ProxiedVscclient.delay
        run.metrics['proxy_quickack'] = '%d' % ProxiedVscclient.quickack
        run.metrics['link_rtt_p50_ms'] = '%.3f' % rtt_p50
        run.metrics['link_rtt_p99_ms'] = '%.3f' % rtt_p99
        for line in ProxiedVscclient.reports[-1:]:
            for kv in line.split()[1:]:
                key, value = kv.split('=', 1)
                if key.endswith(('hold_p50_ms', 'hold_max_ms')):
                    run.metrics[key] = value
    return run


if __name__ == '__main__':
    ProxiedVscclient.delay, ProxiedVscclient.quickack, rest = take_options(sys.argv[1:])
    sys.argv[1:] = rest
    # run_bench looks both up in the module when it runs.
    scenarios.Vscclient = ProxiedVscclient
    run_passthru = scenarios.run_passthru
    scenarios.run_passthru = run_passthru_slow
    sys.exit(scenarios.main())
