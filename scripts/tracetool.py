#!/usr/bin/env python3
"""Turn a directory's trace-events file into C.

usage: tracetool.py [--usdt] DIR TRACE_EVENTS OUT_H OUT_C

DIR is the directory of the trace-events file within the tree ("hw/usb"); its
events form the group hw_usb.

A trace-events line declares one event, in QEMU's syntax:

    usb_desc_get_descriptor(uint8_t type, uint8_t index, uint16_t len) "type %u index %u len %u"

The name, a C parameter list (or "void"), then a printf format for those
arguments (a C string expression: "0x%" PRIx64 is fine). Blank lines and
lines starting with '#' are ignored. A leading "disable" keyword is accepted
and means nothing here: every event starts disabled.

OUT_H gets, per event, a static inline trace_NAME() that tests one bool and
calls trace_event_emit() only when the event is on, so the format is never
looked at while it is off; and a TRACE_NAME_ENABLED() test for call sites
that must compute an argument (a hex dump) only when someone listens. With
--usdt each function also carries a SystemTap/USDT probe (provider "vccid",
probe NAME) from <sys/sdt.h>. OUT_C holds the group's table of events and
registers it with the runtime (core/trace.c) before main() runs.
"""

import re
import sys

NAME_RE = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
LINE_RE = re.compile(r'^(?:disable\s+)?([A-Za-z_][A-Za-z0-9_]*)\((.*?)\)\s*(".*)$')
ARG_RE = re.compile(r'^(.*?[\s*])([A-Za-z_][A-Za-z0-9_]*)$')
# sys/sdt.h has probe macros for up to this many arguments.
USDT_MAX_ARGS = 12


class Event:
    def __init__(self, name, args, fmt):
        self.name = name
        self.args = args      # [(type, name)]
        self.fmt = fmt


def fail(path, lineno, msg):
    sys.exit('%s:%d: %s' % (path, lineno, msg))


def parse_args(path, lineno, text):
    text = text.strip()
    if text in ('', 'void'):
        return []
    args = []
    for a in text.split(','):
        m = ARG_RE.match(a.strip())
        if not m or not m.group(1).strip():
            fail(path, lineno, 'cannot read argument "%s" (want "TYPE NAME")' % a.strip())
        args.append((m.group(1).strip(), m.group(2)))
    return args


def parse(path):
    events = []
    seen = set()
    with open(path, encoding='utf-8') as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            m = LINE_RE.match(line)
            if not m:
                fail(path, lineno, 'expected NAME(ARGS) "FORMAT"')
            name, args, fmt = m.group(1), m.group(2), m.group(3).strip()
            if name in seen:
                fail(path, lineno, 'event %s declared twice' % name)
            if '\\n' in fmt:
                fail(path, lineno, 'the format must not end lines: the runtime does')
            seen.add(name)
            events.append(Event(name, parse_args(path, lineno, args), fmt))
    return events


def header(group, source, events, usdt):
    guard = 'TRACE_%s_H' % group.upper()
    table = 'trace_%s_events' % group
    out = ['/* Generated from %s by scripts/tracetool.py; do not edit. */' % source,
           '#ifndef ' + guard,
           '#define ' + guard,
           '',
           '#include "trace/control.h"',
           '']
    if usdt:
        out += ['#include <sys/sdt.h>', '']
    # Hidden: the program's own table, reached without a trip through the GOT.
    out += ['extern G_GNUC_INTERNAL TraceEvent %s[%d];' % (table, max(len(events), 1)), '']
    for i, e in enumerate(events):
        params = ', '.join(t + ('' if t.endswith('*') else ' ') + n
                           for t, n in e.args) or 'void'
        names = ''.join(', ' + a[1] for a in e.args)
        enabled = 'TRACE_%s_ENABLED' % e.name.upper()
        out.append('#define %s() G_UNLIKELY(%s[%d].enabled)' % (enabled, table, i))
        out.append('')
        out.append('static inline void trace_%s(%s)' % (e.name, params))
        out.append('{')
        if usdt and len(e.args) <= USDT_MAX_ARGS:
            # sys/sdt.h spells the probe without arguments DTRACE_PROBE.
            probe = 'DTRACE_PROBE%d' % len(e.args) if e.args else 'DTRACE_PROBE'
            out.append('    %s(vccid, %s%s);' % (probe, e.name, names))
        out.append('    if (%s()) {' % enabled)
        out.append('        trace_event_emit(&%s[%d], %s%s);' % (table, i, e.fmt, names))
        out.append('    }')
        out.append('}')
        out.append('')
    out.append('#endif')
    return '\n'.join(out) + '\n'


def source_file(group, source, events, header_name):
    table = 'trace_%s_events' % group
    out = ['/* Generated from %s by scripts/tracetool.py; do not edit. */' % source,
           '#include "%s"' % header_name,
           '',
           'TraceEvent %s[%d] = {' % (table, max(len(events), 1))]
    for e in events:
        out.append('    { .name = "%s" },' % e.name)
    out += ['};',
            '',
            'static void __attribute__((constructor)) trace_%s_register(void)' % group,
            '{',
            '    trace_register_events(%s, %d);' % (table, len(events)),
            '}']
    return '\n'.join(out) + '\n'


def main(argv):
    usdt = '--usdt' in argv
    argv = [a for a in argv if a != '--usdt']
    if len(argv) != 4:
        sys.exit(__doc__.split('\n\n')[1])
    directory, path, out_h, out_c = argv
    group = re.sub(r'[^A-Za-z0-9]', '_', directory)
    if not NAME_RE.match(group):
        sys.exit('tracetool.py: bad directory name "%s"' % directory)
    events = parse(path)
    # Name the input by its place in the tree, not by this machine's paths.
    source = directory + '/trace-events'
    with open(out_h, 'w', encoding='utf-8') as f:
        f.write(header(group, source, events, usdt))
    with open(out_c, 'w', encoding='utf-8') as f:
        f.write(source_file(group, source, events, out_h.split('/')[-1]))


if __name__ == '__main__':
    main(sys.argv[1:])
