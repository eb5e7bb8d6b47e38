#!/usr/bin/env python3
"""Where the time goes inside vccid, from its own trace.

usage: trace-latency.py [--ins HEX] [--all] TRACE...

TRACE is what vccid wrote with (one line; see docs/ccid.txt, "Logs and
debugging", and bench/README.md)

    -trace chardev_socket_read,chardev_socket_write,usbredir_bulk_*,ccid_card_emulated_*,file=FILE

Each bulk transfer is followed from its arrival on the socket (the
chardev_socket_read that completed its usbredir packet) to the
chardev_socket_write of vccid's reply, and each APDU through the emulated
card's worker (queued on the main loop, taken by the worker, answered by
libcacard, back on the main loop). An exchange is one APDU: its bulk-out
(the last one parsed before the APDU was queued) and the first bulk-in reply
with data after the answer was back on the main loop. Only APDUs with
instruction byte --ins (default a4, the benchmark's SELECT) are counted,
every APDU with --all.

"outside" is the time between the bulk-out's reply and the bulk-in's
arrival: the peer (QEMU's usb-redir, the guest's controller and driver).
With --reads, a trace of the two chardev_socket_* points alone is read:
each read is paired with the next write. In the benchmark's SELECT loop
every read holds one usbredir packet and gets one reply (the bulk-out's 48
bytes, the bulk-in request's 26), so this measures the same intervals with
one trace line inside each instead of four, at the price of that guess.

For a bulk-in that arrived while the card was still working, the card's own
work (worker start to done) is not vccid's: "vccid's part" leaves out the
part of it that falls between the arrival and the reply.

Prints the count, p50 and p99 of each interval in microseconds. Python 3
standard library only.
"""
import argparse
import bisect
import math
import re
import signal
import sys

LINE_RE = re.compile(r'^(\d+)\.(\d{6}) (\d+) ([a-z0-9_]+) ?(.*)$')
BULK_PACKET_RE = re.compile(r'id (\d+) ep 0x([0-9a-f]+) length (\d+)')
BULK_REPLY_RE = re.compile(r'id (\d+) ep 0x([0-9a-f]+) status (\d+) length (\d+)')
WRITE_RE = re.compile(r'chardev \S+ (\d+) bytes')
APDU_RE = re.compile(r'APDU of (\d+) bytes, INS 0x([0-9a-f]+)')
MSG_RE = re.compile(r'message (\d+) of (\d+) bytes')

# usbredir: a header of type, length and a 64-bit id (32-bit without the
# 64bits_ids cap), then the bulk packet header of 10 bytes with
# 32bits_bulk_length (8 without), then the data.
REPLY_OVERHEADS = (16 + 10, 12 + 10, 16 + 8, 12 + 8)
# EmulMsgType: the messages that end an APDU.
EMUL_MSG_APDU_ANSWER, EMUL_MSG_APDU_FAILED = 2, 3


class Transfer:
    def __init__(self, tid, ep, arrival, parsed):
        self.id = tid
        self.ep = ep
        self.arrival = arrival    # the read that completed its packet
        self.parsed = parsed      # usbredir_bulk_packet
        self.reply = None         # usbredir_bulk_reply
        self.write = None         # chardev_socket_write of the reply
        self.length = 0

    @property
    def is_in(self):
        return self.ep & 0x80 != 0


class Apdu:
    def __init__(self, queued, length, ins):
        self.queued = queued
        self.length = length
        self.ins = ins
        self.start = self.done = self.main = None


def trace_events(path):
    """(time in µs, event name, its arguments) of each trace line in the file."""
    with open(path, errors='replace') as f:
        for line in f:
            m = LINE_RE.match(line.rstrip('\n'))
            if m:
                yield int(m.group(1)) * 1000000 + int(m.group(2)), m.group(4), m.group(5)


def parse_file(path):
    """Transfers (by arrival) and APDUs (by queueing) of one trace, in µs."""
    transfers, apdus = [], []
    last_read = None
    open_transfers = {}           # id -> Transfer not yet replied to
    unwritten = []                # replied, reply not yet on the socket
    for t, name, args in trace_events(path):
        if name == 'chardev_socket_read':
            last_read = t
        elif name == 'usbredir_bulk_packet':
            a = BULK_PACKET_RE.search(args)
            if a:
                tr = Transfer(int(a.group(1)), int(a.group(2), 16),
                              last_read if last_read is not None else t, t)
                open_transfers[tr.id] = tr
                transfers.append(tr)
        elif name == 'usbredir_bulk_reply':
            a = BULK_REPLY_RE.search(args)
            tr = a and open_transfers.pop(int(a.group(1)), None)
            if tr:
                tr.reply = t
                tr.length = int(a.group(4)) if tr.is_in else 0
                unwritten.append(tr)
        elif name == 'chardev_socket_write':
            a = WRITE_RE.search(args)
            size = int(a.group(1)) if a else -1
            # Replies leave in the order they were made; other messages
            # (control replies, interrupt data) have other sizes.
            for i, tr in enumerate(unwritten):
                if size - tr.length in REPLY_OVERHEADS:
                    tr.write = t
                    del unwritten[i]
                    break
        elif name == 'ccid_card_emulated_apdu':
            a = APDU_RE.search(args)
            if a:
                apdus.append(Apdu(t, int(a.group(1)), int(a.group(2), 16)))
        elif name == 'ccid_card_emulated_worker_start':
            pending = [a for a in apdus if a.start is None]
            if pending:
                pending[0].start = t
        elif name == 'ccid_card_emulated_worker_done':
            pending = [a for a in apdus if a.start is not None and a.done is None]
            if pending:
                pending[0].done = t
        elif name == 'ccid_card_emulated_msg':
            a = MSG_RE.search(args)
            if a and int(a.group(1)) in (EMUL_MSG_APDU_ANSWER, EMUL_MSG_APDU_FAILED):
                pending = [a for a in apdus if a.done is not None and a.main is None]
                if pending:
                    pending[0].main = t
    return [tr for tr in transfers if tr.write is not None], apdus


def read_to_write(path):
    """{read size: [µs from a read to the next write]}, for a trace of
    chardev_socket_read and chardev_socket_write alone."""
    by_size = {}
    read = None
    for t, name, args in trace_events(path):
        if name == 'chardev_socket_read':
            a = WRITE_RE.search(args)
            read = (t, int(a.group(1))) if a else None
        elif name == 'chardev_socket_write' and read:
            by_size.setdefault(read[1], []).append(t - read[0])
            read = None
    return by_size


def overlap(a0, a1, b0, b1):
    return max(0, min(a1, b1) - max(a0, b0))


def exchanges(transfers, apdus):
    """(APDU, its bulk-out, the bulk-in that carried its answer)."""
    outs = [tr for tr in transfers if not tr.is_in]
    ins = [tr for tr in transfers if tr.is_in and tr.length > 0]
    out_parsed = [tr.parsed for tr in outs]
    in_reply = [tr.reply for tr in ins]
    for apdu in apdus:
        if None in (apdu.start, apdu.done, apdu.main):
            continue
        i = bisect.bisect_right(out_parsed, apdu.queued) - 1
        j = bisect.bisect_left(in_reply, apdu.main)
        if i < 0 or j >= len(ins):
            continue
        yield apdu, outs[i], ins[j]


def percentile(values, p):
    """Nearest rank."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def report(rows):
    print('%-50s %6s %8s %8s' % ('interval (µs)', 'count', 'p50', 'p99'))
    for label, values in rows:
        if values:
            print('%-50s %6d %8d %8d' % (label, len(values), percentile(values, 50),
                                         percentile(values, 99)))
        else:
            print('%-50s %6d %8s %8s' % (label, 0, '-', '-'))


def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--ins', default='a4',
                    help='instruction byte of the APDUs to count (hex; default a4)')
    ap.add_argument('--all', action='store_true', help='count every APDU')
    ap.add_argument('--reads', action='store_true',
                    help='traces of chardev_socket_read and _write only (one trace '
                         'line inside each interval instead of four): from each read '
                         'to the next write, by the size of the read')
    ap.add_argument('traces', nargs='+', metavar='TRACE')
    args = ap.parse_args()
    ins = int(args.ins, 16)
    if args.reads:
        by_size = {}
        for path in args.traces:
            for size, values in read_to_write(path).items():
                by_size.setdefault(size, []).extend(values)
        print('from a read to the next write, by bytes read, in %d trace(s)' % len(args.traces))
        report([('read of %d bytes -> next write' % size, values)
                for size, values in sorted(by_size.items(), key=lambda kv: -len(kv[1]))[:6]])
        return 0 if by_size else 1

    keys = ('out', 'out_parse', 'out_queue', 'out_reply', 'out_write', 'out_first',
            'out_after', 'in', 'in_parse', 'in_reply', 'in_write', 'in_vccid', 'in_held',
            'to_worker', 'card', 'to_main', 'main_to_write', 'outside', 'exchange', 'all_out',
            'all_in', 'reply_to_write')
    rows = {k: [] for k in keys}
    for path in args.traces:
        transfers, apdus = parse_file(path)
        for tr in transfers:
            rows['all_in' if tr.is_in else 'all_out'].append(tr.write - tr.arrival)
            rows['reply_to_write'].append(tr.write - tr.reply)
        for apdu, out, bin_ in exchanges(transfers, apdus):
            if not args.all and apdu.ins != ins:
                continue
            total_in = bin_.write - bin_.arrival
            rows['out'].append(out.write - out.arrival)
            rows['out_parse'].append(out.parsed - out.arrival)
            rows['out_queue'].append(apdu.queued - out.parsed)
            rows['out_reply'].append(out.reply - apdu.queued)
            rows['out_write'].append(out.write - out.reply)
            # The worker woken by the APDU may run before the main loop has
            # sent the bulk-out's reply.
            rows['out_first' if apdu.start < out.reply else 'out_after'].append(
                out.reply - apdu.queued)
            rows['in'].append(total_in)
            rows['in_parse'].append(bin_.parsed - bin_.arrival)
            rows['in_reply'].append(bin_.reply - bin_.parsed)
            rows['in_write'].append(bin_.write - bin_.reply)
            rows['in_vccid'].append(
                total_in - overlap(bin_.arrival, bin_.write, apdu.start, apdu.done))
            if bin_.arrival < apdu.main:
                rows['in_held'].append(total_in)
                rows['main_to_write'].append(bin_.write - apdu.main)
            rows['to_worker'].append(apdu.start - apdu.queued)
            rows['card'].append(apdu.done - apdu.start)
            rows['to_main'].append(apdu.main - apdu.done)
            rows['outside'].append(bin_.arrival - out.write)
            rows['exchange'].append(bin_.write - out.arrival)

    what = 'every APDU' if args.all else 'APDUs with INS %02x' % ins
    print('%s in %d trace(s)' % (what, len(args.traces)))
    report([
        ('bulk-out: arrival -> reply write', rows['out']),
        ('  arrival -> usbredir packet parsed', rows['out_parse']),
        ('  parsed -> APDU queued for the card\'s worker', rows['out_queue']),
        ('  APDU queued -> reply made', rows['out_reply']),
        ('    when the worker ran first', rows['out_first']),
        ('    when the worker ran after', rows['out_after']),
        ('  reply made -> reply written', rows['out_write']),
        ('bulk-in (the answer): arrival -> reply write', rows['in']),
        ('  arrival -> usbredir packet parsed', rows['in_parse']),
        ('  parsed -> reply made', rows['in_reply']),
        ('  reply made -> reply written', rows['in_write']),
        ('  vccid\'s part (card\'s work left out)', rows['in_vccid']),
        ('  bulk-ins that waited for the card', rows['in_held']),
        ('card: APDU queued -> worker start', rows['to_worker']),
        ('card: worker start -> done (libcacard)', rows['card']),
        ('card: worker done -> answer on the main loop', rows['to_main']),
        ('card: answer on the main loop -> waiting bulk-in', rows['main_to_write']),
        ('outside: bulk-out reply write -> bulk-in arrival', rows['outside']),
        ('exchange: bulk-out arrival -> bulk-in reply write', rows['exchange']),
    ])
    print()
    print('every bulk transfer in the trace(s)')
    report([
        ('bulk-out: arrival -> reply write', rows['all_out']),
        ('bulk-in: arrival -> reply write', rows['all_in']),
        ('reply made -> reply written', rows['reply_to_write']),
    ])
    return 0 if rows['out'] else 1


if __name__ == '__main__':
    # Piped into head: stop quietly.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main())
