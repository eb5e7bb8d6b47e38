#!/usr/bin/env python3
"""Guest scenarios for the passthru card, on the harness of scenarios.py.

    qemu-passthru   our vscclient -> Debian QEMU's own ccid-card-passthru
                    (usb-ccid inside QEMU); QEMU's end nobody here wrote.
    vccid-passthru  our vscclient -> vccid's ccid-card-passthru, exported to
                    QEMU over usbredir.

With --card-events, instead of the usual checks the guest watches while
the client's card is removed and inserted again (vscclient's "remove" and
"insert" commands, sent when the guest asks on its console): pcscd must
report both, the card must be gone in between, and answer again after.

The client lends a libcacard certificate card made from the harness's NSS
database; the guest runs the usual checks (pcscd sees the reader and the
card's ATR, every response length, OpenSC reads and signs). Afterwards the
client is told "exit" when its host is still there (vccid), or must have
noticed its host go away (QEMU powers off with the guest).

    guest-passthru.py --vccid B/system/vccid --vscclient B/contrib/vscclient/vscclient \
                      vccid-passthru --usb xhci [--checks 'enumerate pcscd bench']
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

SRCROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The harness's modules, beside this file, are imported from the source tree: keep it clean.
sys.dont_write_bytecode = True
import guestrun  # noqa: E402
import scenarios  # noqa: E402


# The guest side of --card-events.
CARD_EVENTS_SCRIPT = scenarios.GUEST_SCRIPT_HEAD + rb"""LOG=/tmp/pcscd.log
card_gone() { ! apdu-bench atr > /dev/null 2>&1; }
# No udevd here: pcscd only finds readers present when it starts.
reader_on_bus() { grep -qs "$EXPECT_VID" /sys/bus/usb/devices/*/idVendor; }
wait_for 30 reader_on_bus || result reader_on_bus fail "the reader never appeared"
sleep 1
pcscd --foreground --debug > $LOG 2>&1 &
wait_for 10 test -S /run/pcscd/pcscd.comm
apdu-bench list -w 20 > /dev/null 2>&1
if wait_for 20 card_answers; then result card_present pass "atr=$EXPECT_ATR"
else result card_present fail "$(cat /tmp/atr.txt | tr '\n' ' ')"; fi
echo "CARD-EVENTS remove-now"
if wait_for 20 grep -qi 'card removed' $LOG && card_gone; then
    result card_removed pass "pcscd: $(grep -i 'card removed' $LOG | head -n1 | sed 's/.*() //')"
else result card_removed fail "pcscd saw no removal"; fi
echo "CARD-EVENTS insert-now"
if wait_for 20 grep -qi 'card inserted' $LOG && wait_for 20 card_answers &&
   apdu-bench sweep > /tmp/sweep.txt 2>&1; then
    result card_inserted pass "pcscd: $(grep -i 'card inserted' $LOG | head -n1 | sed 's/.*() //'); all lengths answer"
else result card_inserted fail "$(grep -E '^(sweep_ok|error)' /tmp/sweep.txt 2>/dev/null | tr '\n' ' ')"; fi
[ $fails -gt 0 ] && tail -n 60 $LOG | sed 's/^/PCSCD /'
exit $fails
"""


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(('127.0.0.1', port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def start_client(args, wd, port, log):
    emul = ('db="sql:%s" use_hw=no soft=(,Test,CAC,,id-cert,signing-cert,'
            'encryption-cert)' % wd.certdb)
    return subprocess.Popen([args.vscclient, '-d', '1', '-e', emul, '127.0.0.1', str(port)],
                            stdin=subprocess.PIPE, stdout=open(log, 'w'),
                            stderr=subprocess.STDOUT)


def stop_client(client, host_alive, report):
    """vccid still serves: "exit" must end the client with 0. QEMU is gone: it must have left."""
    if host_alive:
        try:
            client.stdin.write(b'exit\n')
            client.stdin.flush()
            rc = client.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            client.kill()
            rc = 'killed'
        report.add('vscclient_exit', rc == 0, 'rc=%s after "exit"' % rc)
    else:
        try:
            rc = client.wait(10)
        except subprocess.TimeoutExpired:
            client.kill()
            rc = 'still running'
        report.add('vscclient_host_gone', rc == 1, 'rc=%s after QEMU went away' % rc)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('scenario', choices=['qemu-passthru', 'vccid-passthru'])
    ap.add_argument('--usb', default='xhci', choices=sorted(guestrun.CONTROLLERS))
    ap.add_argument('--vccid', help='vccid binary (vccid-passthru)')
    ap.add_argument('--vscclient', required=True)
    ap.add_argument('--workdir', default=os.path.join(SRCROOT, 'build-guest', 'tests', 'guest'))
    ap.add_argument('--checks', default=scenarios.FULL_CHECKS)
    ap.add_argument('--timeout', type=float, default=400)
    ap.add_argument('--card-events', action='store_true',
                    help='remove and insert the card while the guest watches')
    args = ap.parse_args()

    wd = scenarios.Workdir(args.workdir)
    wd.prepare()
    _, bus = guestrun.usb_controller_args(args.usb)
    on_qemu = args.scenario == 'qemu-passthru'
    # QEMU's own reader on xHCI has its known failures (the reference baselines).
    known = scenarios.QEMU_XHCI_KNOWN.split(',') if on_qemu and args.usb == 'xhci' else ()
    report = scenarios.Report(known)
    tag = '%s-%s' % (args.scenario, args.usb)
    port = free_port()
    chardev = 'socket,id=vsc,host=127.0.0.1,port=%d,server=on,wait=off' % port

    vccid = None
    if on_qemu:
        qemu_args = ['-chardev', chardev, '-device', 'usb-ccid,id=ccid,bus=' + bus,
                     '-device', 'ccid-card-passthru,chardev=vsc']
    else:
        sock = os.path.join(tempfile.mkdtemp(prefix='vccid-sock-'), 'redir.sock')
        vccid = scenarios.Vccid(args.vccid, [
            '-chardev', 'socket,id=redir,path=%s,server=on,wait=off' % sock,
            '-chardev', chardev, '-device', 'usb-ccid,id=ccid',
            '-device', 'ccid-card-passthru,chardev=vsc,debug=2',
            '-export', 'usbredir,chardev=redir'], wd.log(tag + '.vccid.log')).start()
        report.add('vccid_listening', vccid.wait_for_socket(sock), sock)
        qemu_args = scenarios.redir_args(bus, 'socket,id=r,path=' + sock)

    if args.card_events:
        tag += '-card-events'
        holder = {}

        def on_line(line):
            # The guest asks on its console; the client's stdin does it.
            for word, cmd in (('remove-now', b'remove\n'), ('insert-now', b'insert\n')):
                if 'CARD-EVENTS ' + word in line and 'client' in holder:
                    holder['client'].stdin.write(cmd)
                    holder['client'].stdin.flush()
        guest = guestrun.Guest(wd.image, CARD_EVENTS_SCRIPT, {}, scenarios.guest_env(''),
                               args.usb, qemu_args, args.timeout,
                               wd.log(tag + '.console.log'), on_line=on_line).start()
    else:
        holder = None
        guest = scenarios.make_guest(wd, args, args.checks, qemu_args,
                                     tag + '.console.log').start()
    report.add('passthru_listening', wait_port(port), 'port %d' % port)
    client = start_client(args, wd, port, wd.log(tag + '.vscclient.log'))
    if holder is not None:
        holder['client'] = client
    run = guest.wait()
    report.add_guest(run)
    stop_client(client, not on_qemu, report)
    if vccid:
        scenarios.finish_vccid(vccid, report)
    return report.print(tag)


if __name__ == '__main__':
    sys.exit(main())
