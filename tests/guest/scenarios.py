#!/usr/bin/env python3
"""Guest scenarios: a Linux guest with pcscd, libccid and OpenSC uses a
virtual CCID reader, either QEMU's own (the reference) or vccid's, exported
over usbredir.

    scenarios.py [--workdir DIR] [--vccid PATH] SCENARIO [--usb xhci|ehci|uhci]

SCENARIO:
  reference       QEMU's usb-ccid + ccid-card-emulated (a baseline; checks
                  listed with --known-failures may fail without failing the
                  test: they are QEMU's bugs, reported as XFAIL)
  vccid-listen    vccid listens on a UNIX socket, QEMU's usb-redir connects
  vccid-connect   QEMU listens (server=on,wait=off), vccid connects
                  (reconnect=1)
  reconnect       one vccid serves two guests one after the other; the
                  second must see a working reader (--direction)
  system-reset    the guest machine is reset (QMP) with vccid's reader
                  attached; all checks again on the next boot
  replug          one guest, two vccids in turn: the guest sees the reader
                  go away and come back, working (--direction)
  piv             vccid-listen with vccid's ccid-card-piv (the same three
                  certificates as a PIV card; PIN from a pin-file): OpenSC's
                  PIV driver and yubico-piv-tool use it
  piv-ec          the same card with ECC P-256 keys (ECDSA, ECDH)
  passthru        vccid's ccid-card-passthru, the card lent by vscclient
                  over loopback TCP (--vscclient), exported over usbredir
  reference-passthru
                  the same card in QEMU's own ccid-card-passthru
  --tls (vccid-listen, vccid-connect, passthru, reference-passthru): the
                  socket is TCP with TLS and client certificates on both
                  sides, with an authz-simple on the server, credentials
                  from tests/tls/make-certs.sh; QEMU is the TLS peer
  token           a PKCS#11 token (SoftHSM2, tests/softhsm/make-token.sh) as
                  vccid's ccid-card-emulated,backend=nss-emulated: OpenSC
                  reads its certificate, signs after its PIN, a wrong PIN
                  is refused
  token-passthru  the same token lent by vscclient (--slots removable
                  --token) to vccid's ccid-card-passthru (--vscclient)
  reference-token-passthru
                  the same token lent to QEMU's own ccid-card-passthru
  usbip           vccid exports the reader over USB/IP on loopback; the guest
                  attaches it with usbip over QEMU user networking, uses the
                  card, is refused a second import, detaches and attaches again
  usbip-piv       the same with ccid-card-piv (OpenSC's PIV driver, yubico-piv-tool)
  usbip-passthru  the same with the passthru card, lent by vscclient (--vscclient)
  usbip-two       two readers on one USB/IP listener, both attached and used at once
  bench-reference, bench-vccid, bench-reference-passthru, bench-passthru,
  bench-usbip
                  the APDU benchmark (no pass/fail checks beyond running);
                  prints "BENCH key=value ..." (used by bench/run-bench.sh)

Every check prints a line "name: pass|fail|XFAIL|XPASS detail"; the last line
is "N passed, N failed". Logs (guest console, vccid output) go to
WORKDIR/logs. The guest image is built on first use (build-guest.sh,
cached in WORKDIR/image).
"""
import argparse
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'qmp'))
import guestrun  # noqa: E402
from qmpsock import connect_unix  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SRCROOT = os.path.dirname(os.path.dirname(HERE))

# libcacard's emulated CAC card answers with the ATR of an older real CAC
# card (cac_atr[] in libcacard's src/cac.c): TS=3B, T0=7A (TA1, TB1 follow,
# 10 historical bytes), TA1=18, TB1=00, historical 00 "sfte cd144".
CARD_ATR = '3B7A180000' + b'sfte cd144'.hex().upper()
READER_VID, READER_PID = '08e6', '4433'
CARD_OPTS = ('backend=certificates,db=sql:{db},cert1=id-cert,'
             'cert2=signing-cert,cert3=encryption-cert')
# libcacard accepts any PIN when the NSS database has no password (see
# README.md); an arbitrary one shows that.
PIN = '77777777'

# ccid-card-piv (docs/ccid.txt, "PIV"): its own ATR (TS 3B, T=1, historical
# bytes 80 73 C0 00 C0 58 "vccidPIV") and a real PIN, read from a file.
PIV_ATR = '3B8E8131FE458073C000C058' + b'vccidPIV'.hex().upper() + '1A'
PIV_PIN = '123456'
PIV_CARD_OPTS = ('db=sql:{db},cert1=id-cert,cert2=signing-cert,'
                 'cert3=encryption-cert,pin-file={pin_file}')
# The PIN checks block the PIN for the rest of vccid's life: last.
PIV_CHECKS = ('enumerate pcscd atr piv_opensc piv_sign piv_decipher piv_yubico '
              'pcscd_log kernel_log piv_pin_block')
# The same card with ECC P-256 keys (made by make_ec_cert_db below).
PIV_EC_CARD_OPTS = ('db=sql:{db},cert1=ec-auth,cert2=ec-sign,cert3=ec-kex,'
                    'pin-file={pin_file}')
PIV_EC_CHECKS = 'enumerate pcscd atr piv_opensc piv_ec pcscd_log kernel_log'

FULL_CHECKS = ('enumerate lsusb chapter9 pcscd atr sweep opensc sign pcscd_log '
               'kernel_log')
BENCH_CHECKS = 'enumerate pcscd bench'
# The passthru card can also leave and come back (vscclient's commands),
# and so can its owner (vscclient stops, a new one connects).
PASSTHRU_CHECKS = FULL_CHECKS.replace('pcscd_log',
                                      'card_events client_events pcscd_log')

# QEMU 7.2's reader on xHCI falls one answer behind after an answer of
# exactly 64 bytes (the reference baselines): everything that reads more than a few
# bytes from the card fails there. These are recorded, not held against it.
QEMU_XHCI_KNOWN = ('opensc_objects,sign_verify,response_lengths,pcscd_log,'
                   'card_events,client_events')


class Workdir:
    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.image = os.path.join(self.path, 'image')
        self.certdb = os.path.join(self.path, 'certdb')
        self.logs = os.path.join(self.path, 'logs')
        os.makedirs(self.logs, exist_ok=True)

    def prepare(self):
        """Build the guest and the certificate database (once; locked)."""
        subprocess.run([os.path.join(HERE, 'build-guest.sh'), self.image],
                       check=True)
        with open(os.path.join(self.path, '.certdb.lock'), 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            subprocess.run([os.path.join(SRCROOT, 'scripts', 'make-cert-db.sh'),
                            self.certdb], check=True,
                           stdout=subprocess.DEVNULL)
        with open(os.path.join(self.certdb, 'fake-smartcard-ca.cer'), 'rb') as f:
            self.ca_der = f.read()

    def tls_dir(self, role):
        """TLS credentials in QEMU's layout (made once; locked)."""
        tls = os.path.join(self.path, 'tls')
        with open(os.path.join(self.path, '.tls.lock'), 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not os.path.exists(os.path.join(tls, 'client', 'client-cert.pem')):
                subprocess.run(['sh', os.path.join(SRCROOT, 'tests', 'tls',
                                                   'make-certs.sh'), tls], check=True)
        return os.path.join(tls, role)

    def log(self, name):
        return os.path.join(self.logs, name)

    def make_ec_cert_db(self):
        """Three self-signed ECC P-256 certificates for a PIV card (once; locked)."""
        db = os.path.join(self.path, 'certdb-ec')
        with open(os.path.join(self.path, '.certdb.lock'), 'w') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            done = os.path.join(db, '.complete')
            if not os.path.exists(done):
                subprocess.run(['rm', '-rf', db], check=True)
                os.makedirs(db)
                noise = os.path.join(db, '.noise')
                with open(noise, 'wb') as f:
                    f.write(os.urandom(2048))
                quiet = {'stdout': subprocess.DEVNULL, 'stderr': subprocess.DEVNULL,
                         'check': True}
                subprocess.run(['certutil', '-N', '-d', 'sql:' + db, '--empty-password'],
                               **quiet)
                for serial, name in enumerate(('ec-auth', 'ec-sign', 'ec-kex'), 20):
                    subprocess.run(['certutil', '-S', '-d', 'sql:' + db, '-x', '-k', 'ec',
                                    '-q', 'nistp256', '-s', 'CN=John Doe (%s)' % name,
                                    '-n', name, '-t', ',,', '-m', str(serial),
                                    '-v', '120', '-z', noise], **quiet)
                os.unlink(noise)
                open(done, 'w').close()
        return db


class Vccid:
    """The daemon under test, started with QEMU-style options."""

    def __init__(self, exe, args, log_path):
        self.cmd = [exe] + args
        self.log_path = log_path
        self.proc = None

    stdin = subprocess.DEVNULL

    def start(self):
        self.log = open(self.log_path, 'w')
        self.log.write('# ' + ' '.join(self.cmd) + '\n')
        self.log.flush()
        self.proc = subprocess.Popen(self.cmd, stdin=self.stdin,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_for_socket(self, path, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(path):
                return True
            if not self.alive():
                return False
            time.sleep(0.05)
        return False

    def stop(self):
        """SIGTERM; returns the exit status (or 'killed' after 5 s)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                return 'killed'
        self.log.close()
        return self.proc.returncode

    def tail(self, lines=40):
        with open(self.log_path, errors='replace') as f:
            return ''.join(f.readlines()[-lines:])


def wait_for_path(path, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        time.sleep(0.05)
    return False


class Report:
    """Collects check outcomes, host-side ones and the guest's."""

    def __init__(self, known_failures=()):
        self.known = set(known_failures)
        self.rows = []       # (name, outcome, detail)
        self.logs = []       # (title, text) shown when something failed

    def add(self, name, passed, detail=''):
        if name in self.known:
            outcome = 'XPASS' if passed else 'XFAIL'
        else:
            outcome = 'pass' if passed else 'fail'
        self.rows.append((name, outcome, detail))

    def add_guest(self, run, prefix=''):
        for name, status, detail in run.results:
            self.add(prefix + name, status == 'pass', detail)
        self.add(prefix + 'guest_finished', not run.timed_out and run.rc is not None,
                 'in %.0f s' % run.elapsed if not run.timed_out
                 else 'timed out after %.0f s' % run.elapsed)
        self.logs.append(('guest console (%s)' % (prefix or 'guest'),
                          run.console_tail(250)))

    def failed(self):
        return [r for r in self.rows if r[1] == 'fail']

    def print(self, title):
        for name, outcome, detail in self.rows:
            print('%-24s %-5s %s' % (name + ':', outcome, detail))
        failed = self.failed()
        if failed:
            for t, text in self.logs:
                print('\n----- %s -----\n%s' % (t, text))
        known = [r[0] for r in self.rows if r[1] == 'XFAIL']
        if known:
            print('%s: known QEMU failures (not counted): %s'
                  % (title, ', '.join(known)))
        passed = sum(1 for r in self.rows if r[1] in ('pass', 'XPASS'))
        print('%d passed, %d failed' % (passed, len(failed)))
        return 1 if failed else 0


def guest_env(checks, slow_card=0, card='emulated'):
    piv = card.startswith('piv')
    return {'CHECKS': checks, 'EXPECT_VID': READER_VID,
            'EXPECT_PID': READER_PID, 'EXPECT_ATR': PIV_ATR if piv else CARD_ATR,
            'PIN': PIV_PIN if piv else PIN,
            'PCSCD_DEBUG': '0' if 'bench' in checks else '1',
            'BENCH_N': os.environ.get('VCCID_BENCH_N', '500'),
            'SLOW_CARD': '%d' % slow_card}


def make_guest(wd, args, checks, qemu_args, log_name, on_line=None, extra_env=None,
               network=False):
    checks = getattr(args, 'checks', None) or checks
    with open(os.path.join(HERE, 'checks.sh'), 'rb') as f:
        script = f.read()
    env = guest_env(checks, getattr(args, 'slow_card', 0), getattr(args, 'card', 'emulated'))
    env.update(extra_env or {})
    return guestrun.Guest(wd.image, script, {'ca.cer': wd.ca_der}, env,
                          args.usb, qemu_args,
                          args.timeout, wd.log(log_name), on_line=on_line,
                          network=network)


def card_args(wd, card='emulated'):
    """The card device: libcacard's (QEMU's too) or vccid's ccid-card-piv
    (piv: RSA keys, piv-ec: ECC P-256 keys)."""
    if card.startswith('piv'):
        pin_file = os.path.join(wd.path, 'piv-pin')
        fd = os.open(pin_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(PIV_PIN + '\n')
        if card == 'piv-ec':
            return 'ccid-card-piv,' + PIV_EC_CARD_OPTS.format(db=wd.make_ec_cert_db(),
                                                              pin_file=pin_file)
        return 'ccid-card-piv,' + PIV_CARD_OPTS.format(db=wd.certdb, pin_file=pin_file)
    return 'ccid-card-emulated,' + CARD_OPTS.format(db=wd.certdb)


def qemu_reader_args(wd, bus):
    return ['-device', 'usb-ccid,id=ccid,bus=' + bus,
            '-device', card_args(wd)]


def vccid_args(wd, args, chardev):
    """vccid's reader and emulated card exported on chardev, with
    --reader-opts (e.g. speed=high for EHCI alone) and any --vccid-arg."""
    opts = ',' + args.reader_opts if args.reader_opts else ''
    return (['-chardev', chardev, '-device', 'usb-ccid,id=ccid' + opts,
             '-device', card_args(wd, getattr(args, 'card', 'emulated')),
             '-export', 'usbredir,chardev=redir']
            + args.vccid_arg)


def redir_args(bus, chardev):
    return ['-chardev', chardev, '-device', 'usb-redir,chardev=r,bus=' + bus]


# The identity of make-certs.sh's client certificate, as GnuTLS prints it.
TLS_CLIENT_DN = 'C=GB,,O=vccid test,,CN=client'


def tls_server_objects(wd):
    """-object options (vccid's and QEMU's alike) for a TLS server chardev
    that takes only the client certificate: ',tls-creds=tls0,tls-authz=auth0'."""
    return ['-object', 'tls-creds-x509,id=tls0,dir=%s,endpoint=server,verify-peer=on'
            % wd.tls_dir('server'),
            '-object', 'authz-simple,id=auth0,identity=' + TLS_CLIENT_DN]


def tls_client_objects(wd):
    """-object options for a TLS client chardev: ',tls-creds=tlsc'."""
    return ['-object', 'tls-creds-x509,id=tlsc,dir=%s,endpoint=client,verify-peer=on'
            % wd.tls_dir('client')]


TLS_SERVER_OPTS = ',tls-creds=tls0,tls-authz=auth0'
TLS_CLIENT_OPTS = ',tls-creds=tlsc'


def run_reference(wd, args, report, checks=FULL_CHECKS):
    _, bus = guestrun.usb_controller_args(args.usb)
    guest = make_guest(wd, args, checks, qemu_reader_args(wd, bus),
                       '%s-%s.console.log' % (args.scenario, args.usb))
    run = guest.boot()
    report.add_guest(run)
    return run


def finish_vccid(vccid, report, name='vccid'):
    report.add(name + '_alive', vccid.alive(),
               'still running after the guest' if vccid.alive()
               else 'exited with %s' % vccid.proc.returncode)
    status = vccid.stop()
    report.logs.append(('vccid output (%s)' % vccid.log_path, vccid.tail()))
    return status


def run_vccid_listen(wd, args, report, checks=FULL_CHECKS):
    """vccid listens (a UNIX socket, or loopback TCP with --tcp), QEMU's
    usb-redir connects."""
    _, bus = guestrun.usb_controller_args(args.usb)
    tag = '%s-%s%s' % (args.scenario, args.usb,
                       '-tls' if args.tls else '-tcp' if args.tcp else '')
    qemu_objects = []
    if args.tcp or args.tls:
        port = free_port()
        where = 'host=127.0.0.1,port=%d' % port
        tls = TLS_SERVER_OPTS if args.tls else ''
        vccid = Vccid(args.vccid, (tls_server_objects(wd) if args.tls else []) + vccid_args(
            wd, args, 'socket,id=redir,%s,server=on,wait=off%s' % (where, tls)),
            wd.log(tag + '.vccid.log')).start()
        up = wait_for_port(port) and vccid.alive()
        if args.tls:
            qemu_objects = tls_client_objects(wd)
            where += TLS_CLIENT_OPTS
    else:
        tmp = tempfile.mkdtemp(prefix='vccid-sock-')
        sock = os.path.join(tmp, 'redir.sock')
        where = 'path=' + sock
        vccid = Vccid(args.vccid, vccid_args(
            wd, args, 'socket,id=redir,%s,server=on,wait=off' % where),
            wd.log(tag + '.vccid.log')).start()
        up = vccid.wait_for_socket(sock)
    report.add('vccid_listening', up, where if up else 'not listening; vccid %s'
               % ('running' if vccid.alive() else 'exited'))
    run = None
    if up:
        guest = make_guest(wd, args, checks,
                           qemu_objects + redir_args(bus, 'socket,id=r,' + where),
                           tag + '.console.log')
        run = guest.boot()
        report.add_guest(run)
    if args.tls:
        report.add('vccid_tls_peer', 'TLS peer \'%s\'' % TLS_CLIENT_DN.replace(',,', ',')
                   in open(vccid.log_path, errors='replace').read(),
                   'vccid logged QEMU\'s client identity')
    finish_vccid(vccid, report)
    return run


def run_vccid_connect(wd, args, report, checks=FULL_CHECKS):
    """QEMU listens, vccid connects with reconnect=1.

    By default QEMU is up first, so vccid's very first connect succeeds
    (during its start-up); with --vccid-first vccid starts first, fails to
    connect and gets in through its reconnect timer.
    """
    _, bus = guestrun.usb_controller_args(args.usb)
    tmp = tempfile.mkdtemp(prefix='vccid-sock-')
    sock = os.path.join(tmp, 'redir.sock')
    tag = '%s-%s%s%s' % (args.scenario, args.usb, '-tls' if args.tls else '',
                         '-vccid-first' if args.vccid_first else '')
    if args.tls:
        port = free_port()
        where = 'host=127.0.0.1,port=%d' % port
        vccid_extra, vccid_opts = tls_client_objects(wd), TLS_CLIENT_OPTS
        qemu_extra, qemu_opts = tls_server_objects(wd), TLS_SERVER_OPTS
    else:
        where = 'path=' + sock
        vccid_extra, vccid_opts, qemu_extra, qemu_opts = [], '', [], ''
    vccid = Vccid(args.vccid, vccid_extra +
                  vccid_args(wd, args, 'socket,id=redir,%s,reconnect=1%s'
                             % (where, vccid_opts)),
                  wd.log(tag + '.vccid.log'))
    if args.vccid_first:
        vccid.start()
        time.sleep(1.5)
    guest = make_guest(wd, args, checks,
                       qemu_extra + redir_args(bus, 'socket,id=r,%s,server=on,wait=off%s'
                                               % (where, qemu_opts)),
                       tag + '.console.log').start()
    if not args.vccid_first:
        if not (wait_for_port(port) if args.tls else wait_for_path(sock)):
            report.add('qemu_listening', False, 'QEMU is not listening on ' + where)
        vccid.start()
    run = guest.wait()
    report.add_guest(run)
    if args.tls:
        report.add('vccid_tls_peer', 'TLS peer \'CN=localhost\''
                   in open(vccid.log_path, errors='replace').read(),
                   'vccid checked and logged QEMU\'s server certificate')
    finish_vccid(vccid, report)
    return run


def direction_chardevs(args, qemu_reconnects):
    """For --direction: the socket, the logs' tag, whether vccid listens, and
    vccid's and QEMU's chardevs. listen: vccid listens, QEMU connects (and
    reconnects if qemu_reconnects); connect: QEMU listens, vccid connects
    (reconnect=1)."""
    tmp = tempfile.mkdtemp(prefix='vccid-sock-')
    sock = os.path.join(tmp, 'redir.sock')
    tag = '%s-%s-%s' % (args.scenario, args.direction, args.usb)
    listen = args.direction == 'listen'
    if listen:
        vccid_chr = 'socket,id=redir,path=%s,server=on,wait=off' % sock
        qemu_chr = 'socket,id=r,path=' + sock + (',reconnect=1' if qemu_reconnects else '')
    else:
        vccid_chr = 'socket,id=redir,path=%s,reconnect=1' % sock
        qemu_chr = 'socket,id=r,path=%s,server=on,wait=off' % sock
    return sock, tag, listen, vccid_chr, qemu_chr


def run_reconnect(wd, args, report):
    """Two guests in turn against one vccid process.

    --direction listen: vccid listens, each QEMU connects to it.
    --direction connect: each QEMU listens on the same path in turn, vccid
    (reconnect=1) finds the second one by itself.
    """
    _, bus = guestrun.usb_controller_args(args.usb)
    sock, tag, listen, vccid_chr, qemu_chr = direction_chardevs(args, False)
    vccid = Vccid(args.vccid, vccid_args(wd, args, vccid_chr),
                  wd.log(tag + '.vccid.log')).start()
    if listen:
        up = vccid.wait_for_socket(sock)
        report.add('vccid_listening', up, sock)
        if not up:
            finish_vccid(vccid, report)
            return
    else:
        time.sleep(1.5)   # vccid is retrying: both guests come in by reconnect
    first = make_guest(wd, args, 'enumerate pcscd atr sweep',
                       redir_args(bus, qemu_chr),
                       tag + '.first.console.log').boot()
    report.add_guest(first, 'first.')
    report.add('vccid_survives_disconnect', vccid.alive(),
               'running after the first guest left' if vccid.alive()
               else 'exited with %s' % vccid.proc.returncode)
    if vccid.alive():
        second = make_guest(wd, args, FULL_CHECKS, redir_args(bus, qemu_chr),
                            tag + '.second.console.log').boot()
        report.add_guest(second, 'second.')
    finish_vccid(vccid, report)


REPLUG_CHECKS = ('enumerate pcscd atr sweep unplug pcscd_log kernel_log')


def run_replug(wd, args, report):
    """The guest keeps running while vccid stops and a new one starts.

    The guest asks for it on its console (HOST-ACTION unplug / plug). With
    --direction listen, vccid listens and QEMU's chardev reconnects
    (reconnect=1) to the new vccid; with connect, QEMU listens and the new
    vccid connects.
    """
    _, bus = guestrun.usb_controller_args(args.usb)
    sock, tag, listen, vccid_chr, qemu_chr = direction_chardevs(args, True)
    daemons = []

    def start_vccid():
        n = len(daemons) + 1
        v = Vccid(args.vccid, vccid_args(wd, args, vccid_chr),
                  wd.log('%s.vccid%d.log' % (tag, n))).start()
        daemons.append(v)
        if listen:
            report.add('vccid%d_listening' % n, v.wait_for_socket(sock), sock)

    def host_action(line):
        if 'HOST-ACTION unplug' in line:
            status = daemons[-1].stop()
            report.add('vccid1_stops', status == 0,
                       'SIGTERM: exit status %s' % status)
        elif 'HOST-ACTION plug' in line:
            start_vccid()

    if listen:
        start_vccid()
    guest = make_guest(wd, args, REPLUG_CHECKS, redir_args(bus, qemu_chr),
                       tag + '.console.log', on_line=host_action).start()
    if not listen:
        wait_for_path(sock)
        start_vccid()
    run = guest.wait()
    report.add_guest(run)
    for v in daemons:
        report.logs.append(('vccid output (%s)' % v.log_path, v.tail()))
    finish_vccid(daemons[-1], report)


def tcp_listening(port):
    """Whether something listens on 127.0.0.1:@port (without connecting:
    a probe connection would be taken for the one client a chardev takes)."""
    want = ':%04X' % port
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            with open(table) as f:
                for row in f.readlines()[1:]:
                    local, state = row.split()[1], row.split()[3]
                    if local.endswith(want) and state == '0A':
                        return True
        except OSError:
            pass
    return False


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Vscclient(Vccid):
    """vscclient lending the database's three certificates as a CAC card."""

    def __init__(self, exe, wd, port, log_path, tls=False):
        super().__init__(exe, ['-e', 'db="sql:%s"' % wd.certdb,
                               '-c', 'id-cert', '-c', 'signing-cert',
                               '-c', 'encryption-cert']
                         + (['--tls-creds', wd.tls_dir('client')] if tls else [])
                         + ['127.0.0.1', str(port)],
                         log_path)

    # It reads commands on stdin and may take end-of-file for "exit":
    # keep a pipe open for its whole life.
    stdin = subprocess.PIPE

    def stop(self):
        """Its own "exit" command first; SIGTERM if that does not do."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write(b'exit\n')
                self.proc.stdin.flush()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        return super().stop()


def wait_for_port(port, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if tcp_listening(port):
            return True
        time.sleep(0.05)
    return False


class SlowCardProxy:
    """A TCP proxy between vscclient and the passthru card's chardev that,
    once armed, holds the card's next answer (a VSCard APDU message from the
    client) for @delay seconds: a card that thinks for a long time, as a real
    one does for an RSA key generation. The reader must keep the host
    waiting (CCID time extension requests) instead of letting it time out.
    """
    VSC_APDU = 7

    def __init__(self, upstream_port, delay):
        self.upstream_port = upstream_port
        self.delay = delay
        self.armed = threading.Event()
        self.delayed = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        client, _ = self.listener.accept()
        host = socket.create_connection(('127.0.0.1', self.upstream_port))
        for s in (client, host):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=self._pump, args=(host, client, False),
                         daemon=True).start()
        self._pump(client, host, True)

    @staticmethod
    def _read_exact(sock, n):
        buf = b''
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _pump(self, src, dst, from_card):
        try:
            while True:
                header = self._read_exact(src, 12)
                msg_type, _, length = struct.unpack('>III', header)
                body = self._read_exact(src, length)
                if from_card and msg_type == self.VSC_APDU and self.armed.is_set():
                    self.armed.clear()
                    time.sleep(self.delay)
                    self.delayed += 1
                dst.sendall(header + body)
        except (EOFError, OSError):
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def run_passthru(wd, args, report, checks=PASSTHRU_CHECKS):
    """ccid-card-passthru with vscclient over loopback TCP: in vccid
    (exported over usbredir) or, for reference-passthru, in QEMU."""
    _, bus = guestrun.usb_controller_args(args.usb)
    in_qemu = 'reference' in args.scenario
    if not (args.vscclient and os.access(args.vscclient, os.X_OK)):
        report.add('vscclient_found', False, 'no vscclient: %s' % args.vscclient)
        return None
    port = free_port()
    vsc_chr = 'socket,id=vsc,host=127.0.0.1,port=%d,server=on,wait=off' % port
    tls_objects = []
    if args.tls:
        if args.slow_card:
            report.add('tls_slow_card', False, '--slow-card and --tls do not go together')
            return None
        vsc_chr += TLS_SERVER_OPTS
        tls_objects = tls_server_objects(wd)
    tag = '%s-%s%s' % (args.scenario, args.usb, '-tls' if args.tls else '')
    vccid = None
    if in_qemu:
        qemu_args = tls_objects + [
            '-chardev', vsc_chr, '-device', 'usb-ccid,id=ccid,bus=' + bus,
            '-device', 'ccid-card-passthru,chardev=vsc']
    else:
        tmp = tempfile.mkdtemp(prefix='vccid-sock-')
        sock = os.path.join(tmp, 'redir.sock')
        vccid = Vccid(args.vccid, tls_objects + [
            '-chardev', 'socket,id=redir,path=%s,server=on,wait=off' % sock,
            '-chardev', vsc_chr, '-device', 'usb-ccid,id=ccid',
            '-device', 'ccid-card-passthru,chardev=vsc',
            '-export', 'usbredir,chardev=redir'] + args.vccid_arg,
            wd.log(tag + '.vccid.log')).start()
        report.add('vccid_listening', vccid.wait_for_socket(sock), sock)
        qemu_args = redir_args(bus, 'socket,id=r,path=' + sock)
    guest = make_guest(wd, args, checks, qemu_args, tag + '.console.log').start()
    up = wait_for_port(port)
    report.add('card_port_listening', up, '127.0.0.1:%d' % port)
    proxy = SlowCardProxy(port, args.slow_card) if args.slow_card else None
    client = Vscclient(args.vscclient, wd, proxy.port if proxy else port,
                       wd.log(tag + '.vscclient.log'), args.tls)

    clients = [client]

    def host_action(line):
        if proxy and 'HOST-ACTION slow' in line:
            proxy.armed.set()
        if 'HOST-ACTION client-stop' in line:
            status = clients[-1].stop()
            report.add('vscclient1_stops', status == 0,
                       '"exit": exit status %s' % status)
        elif 'HOST-ACTION client-start' in line:
            clients.append(Vscclient(args.vscclient, wd, port, wd.log(
                '%s.vscclient%d.log' % (tag, len(clients) + 1)), args.tls).start())
        # vscclient's own commands take the card out and put it back.
        for action in ('remove', 'insert'):
            client = clients[-1]
            if 'HOST-ACTION ' + action in line and client.alive():
                client.proc.stdin.write(action.encode() + b'\n')
                client.proc.stdin.flush()
                client.log.write('# %s: sent "%s" on the guest\'s request\n'
                                 % (time.strftime('%H:%M:%S')
                                    + '.%03d' % (time.time() % 1 * 1000), action))
                client.log.flush()

    guest.on_line = host_action
    client.start()
    run = guest.wait()
    report.add_guest(run)
    if proxy:
        report.add('card_answer_delayed', proxy.delayed == 1,
                   '%d answer(s) held for %g s' % (proxy.delayed, proxy.delay))
    client = clients[-1]
    if not in_qemu:
        # (QEMU, the card's host, is gone by now: vscclient may leave too.)
        report.add('vscclient_alive', client.alive(),
                   'still connected after the guest' if client.alive()
                   else 'exited with %s' % client.proc.returncode)
    for c in clients:
        c.stop()
        report.logs.append(('vscclient output (%s)' % c.log_path, c.tail()))
    if vccid:
        finish_vccid(vccid, report)
    return run


class VccidQMP:
    """A small QMP client for vccid's monitor (standard library only)."""

    def __init__(self, path, timeout=15):
        self.sock = connect_unix(path, timeout, 0.1)
        self.sock.settimeout(timeout)
        self.file = self.sock.makefile('rb')
        self.events = []
        self._read()                 # the greeting
        self.command('qmp_capabilities')

    def _read(self):
        import json
        line = self.file.readline()
        if not line:
            raise OSError('vccid closed its monitor')
        return json.loads(line)

    def command(self, name, **arguments):
        import json
        self.sock.sendall(json.dumps({'execute': name, 'arguments': arguments})
                          .encode() + b'\n')
        while True:
            msg = self._read()
            if 'event' in msg:
                self.events.append(msg)
                continue
            return msg

    def close(self):
        self.file.close()
        self.sock.close()


QMP_CARD_CHECKS = 'enumerate pcscd atr card_events opensc sign pcscd_log kernel_log'


def run_qmp_card_events(wd, args, report, checks=QMP_CARD_CHECKS):
    """vccid-listen with a QMP monitor: when the guest asks (HOST-ACTION
    remove / insert), the emulated card is taken out with device_del and put
    back with device_add of the same options; pcscd must see it go within a
    second, see it come back, and OpenSC must sign with it again."""
    _, bus = guestrun.usb_controller_args(args.usb)
    tag = '%s-%s' % (args.scenario, args.usb)
    tmp = tempfile.mkdtemp(prefix='vccid-sock-')
    sock = os.path.join(tmp, 'redir.sock')
    qmp_sock = os.path.join(tmp, 'qmp.sock')
    card = card_args(wd) + ',id=card'
    vccid = Vccid(args.vccid, [
        '-qmp', 'unix:%s,server=on,wait=off' % qmp_sock,
        '-chardev', 'socket,id=redir,path=%s,server=on,wait=off' % sock,
        '-device', 'usb-ccid,id=ccid', '-device', card,
        '-export', 'usbredir,chardev=redir'] + args.vccid_arg,
        wd.log(tag + '.vccid.log')).start()
    up = vccid.wait_for_socket(sock)
    report.add('vccid_listening', up, sock)
    if not up:
        finish_vccid(vccid, report)
        return None
    qmp = VccidQMP(qmp_sock)
    card_props = dict(kv.split('=', 1) for kv in card.split(',')[1:])
    replies = {}

    def host_action(line):
        if 'HOST-ACTION remove' in line:
            replies['device_del'] = qmp.command('device_del', id='card')
        elif 'HOST-ACTION insert' in line:
            replies['device_add'] = qmp.command('device_add', driver='ccid-card-emulated',
                                                **card_props)

    guest = make_guest(wd, args, checks, redir_args(bus, 'socket,id=r,path=' + sock),
                       tag + '.console.log', on_line=host_action)
    run = guest.boot()
    report.add_guest(run)
    for cmd in ('device_del', 'device_add'):
        reply = replies.get(cmd)
        report.add('qmp_' + cmd, reply is not None and 'return' in reply,
                   'no request from the guest' if reply is None else str(reply))
    # pcscd sees the card go within a second of device_del.
    _, detail = run.result('card_events')
    absent_ms = None
    for word in (detail or '').split():
        if word.startswith('after_ms='):
            absent_ms = float(word.split('=', 1)[1])
            break
    report.add('removal_within_1s', absent_ms is not None and absent_ms <= 1000,
               'absent after %s ms' % absent_ms)
    qmp.close()
    finish_vccid(vccid, report)
    return run


QMP_HOTPLUG_CHECKS = 'enumerate pcscd atr sweep opensc sign pcscd_log kernel_log'


def run_qmp_reader_hotplug(wd, args, report, checks=QMP_HOTPLUG_CHECKS):
    """Nothing on vccid's command line but a monitor: the reader, its card,
    a chardev and the export are added over vccid's QMP; once the guest has
    booted, QEMU hot-plugs usb-redir over its own QMP (chardev-add,
    device_add), and the guest uses the reader as if it had always been
    there."""
    _, bus = guestrun.usb_controller_args(args.usb)
    tag = '%s-%s' % (args.scenario, args.usb)
    tmp = tempfile.mkdtemp(prefix='vccid-sock-')
    sock = os.path.join(tmp, 'redir.sock')
    qmp_sock = os.path.join(tmp, 'qmp.sock')
    qemu_qmp = os.path.join(tmp, 'qemu-qmp.sock')
    vccid = Vccid(args.vccid, ['-qmp', 'unix:%s,server=on,wait=off' % qmp_sock]
                  + args.vccid_arg, wd.log(tag + '.vccid.log')).start()
    report.add('vccid_monitor', vccid.wait_for_socket(qmp_sock), qmp_sock)
    qmp = VccidQMP(qmp_sock)
    card_props = dict(kv.split('=', 1) for kv in card_args(wd).split(',')[1:])
    steps = [
        ('device_add', dict(driver='usb-ccid', id='ccid')),
        ('device_add', dict(driver='ccid-card-emulated', id='card', **card_props)),
        ('chardev-add', {'id': 'redir', 'backend': {'type': 'socket', 'data': {
            'addr': {'type': 'unix', 'data': {'path': sock}},
            'server': True, 'wait': False}}}),
        ('vccid-export-add', dict(type='usbredir', id='e0', chardev='redir', device='ccid')),
    ]
    for name, arguments in steps:
        reply = qmp.command(name, **arguments)
        report.add('vccid_' + name.replace('-', '_') + '_' + arguments.get('id', ''),
                   'return' in reply, str(reply))
    hotplug = {}

    def host_action(line):
        if 'GUEST-BOOTED' not in line or hotplug:
            return
        q = VccidQMP(qemu_qmp)
        hotplug['chardev-add'] = q.command('chardev-add', id='r', backend={
            'type': 'socket', 'data': {'addr': {'type': 'unix', 'data': {'path': sock}},
                                       'server': False}})
        hotplug['device_add'] = q.command('device_add', driver='usb-redir', chardev='r',
                                          id='redir0', bus=bus)
        q.close()

    guest = make_guest(wd, args, checks, [], tag + '.console.log', on_line=host_action)
    guest.qmp_path = qemu_qmp
    run = guest.boot()
    report.add_guest(run)
    for name in ('chardev-add', 'device_add'):
        reply = hotplug.get(name)
        report.add('qemu_' + name.replace('-', '_'), reply is not None and 'return' in reply,
                   str(reply))
    exports = qmp.command('query-vccid-exports')
    report.add('export_listed', 'return' in exports and len(exports['return']) == 1,
               str(exports))
    qmp.close()
    finish_vccid(vccid, report)
    return run


# How the guest scripts of single scenarios begin (busybox sh, the image's
# tools): the scenario's env, result NAME pass|fail DETAIL (counting $fails
# for the exit status), wait_for, and card_answers.
GUEST_SCRIPT_HEAD = rb"""#!/bin/sh
. /scenario/env
fails=0
result() { [ "$2" = pass ] || fails=$((fails + 1)); echo "RESULT $1=$2 $3"; }
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds
wait_for() {
    n=$(($1 * 5)); shift
    while [ $n -gt 0 ]; do "$@" > /dev/null 2>&1 && return 0; sleep 0.2; n=$((n - 1)); done
    return 1
}
card_answers() { apdu-bench atr > /tmp/atr.txt 2>&1 && grep -q "^ATR $EXPECT_ATR" /tmp/atr.txt; }
"""

# The guest side of qmp-reader-del.
READER_DEL_SCRIPT = GUEST_SCRIPT_HEAD + rb"""readers_on_bus() { grep -ls "$EXPECT_VID" /sys/bus/usb/devices/*/idVendor | wc -l; }
two_readers() { [ "$(readers_on_bus)" -eq 2 ]; }
one_reader() { [ "$(readers_on_bus)" -eq 1 ]; }
pcscd_up() {
    pcscd --foreground > /tmp/pcscd.log 2>&1 &
    PCSCD=$!
    wait_for 10 test -S /run/pcscd/pcscd.comm
}
if wait_for 30 two_readers; then result two_readers pass "both on the bus"
else result two_readers fail "$(readers_on_bus) reader(s)"; fi
sleep 1
pcscd_up
apdu-bench list -w 20 > /tmp/list1.txt 2>&1
if wait_for 20 card_answers; then result in_use pass "the card answers: $(grep "^ATR" /tmp/atr.txt)"
else result in_use fail "$(tr '\n' ' ' < /tmp/atr.txt)"; fi
# The card's reader is deleted while pcscd holds it.
echo "HOST-ACTION reader-del"
if wait_for 10 one_reader; then result reader_left pass "the kernel saw it disconnect"
else result reader_left fail "$(readers_on_bus) reader(s) still on the bus"; fi
dmesg | grep -i 'USB disconnect' | tail -n 2 | sed 's/^/DMESG /'
# Without udevd, pcscd only sees readers at start: a new one lists what is left.
kill $PCSCD; wait $PCSCD 2>/dev/null
pcscd_up
apdu-bench list -w 20 > /tmp/list2.txt 2>&1
n=$(grep -c '^READER' /tmp/list2.txt)
if [ "$n" -eq 1 ]; then result other_reader_serves pass "$(grep '^READER' /tmp/list2.txt)"
else result other_reader_serves fail "$n readers: $(tr '\n' ' ' < /tmp/list2.txt)"; fi
exit $fails
"""


def run_qmp_reader_del(wd, args, report):
    """Two readers exported to one guest; the one with the card is deleted
    over QMP (device_del) while pcscd uses it: the guest sees it disconnect,
    vccid keeps serving the other, which a new pcscd still lists."""
    _, bus = guestrun.usb_controller_args(args.usb)
    tag = '%s-%s' % (args.scenario, args.usb)
    tmp = tempfile.mkdtemp(prefix='vccid-sock-')
    socks = [os.path.join(tmp, 'redir%d.sock' % i) for i in (1, 2)]
    qmp_sock = os.path.join(tmp, 'qmp.sock')
    vccid = Vccid(args.vccid, [
        '-qmp', 'unix:%s,server=on,wait=off' % qmp_sock,
        '-chardev', 'socket,id=redir1,path=%s,server=on,wait=off' % socks[0],
        '-chardev', 'socket,id=redir2,path=%s,server=on,wait=off' % socks[1],
        '-device', 'usb-ccid,id=ccid', '-device', card_args(wd) + ',id=card',
        '-device', 'usb-ccid,id=ccid2',
        '-export', 'usbredir,id=e1,chardev=redir1,device=ccid',
        '-export', 'usbredir,id=e2,chardev=redir2,device=ccid2'] + args.vccid_arg,
        wd.log(tag + '.vccid.log')).start()
    up = all(vccid.wait_for_socket(s) for s in socks)
    report.add('vccid_listening', up, ' '.join(socks))
    if not up:
        finish_vccid(vccid, report)
        return None
    qmp = VccidQMP(qmp_sock)
    replies = {}

    def host_action(line):
        if 'HOST-ACTION reader-del' in line:
            replies['device_del'] = qmp.command('device_del', id='ccid')

    qemu_args = ['-chardev', 'socket,id=r1,path=' + socks[0],
                 '-device', 'usb-redir,chardev=r1,bus=' + bus,
                 '-chardev', 'socket,id=r2,path=' + socks[1],
                 '-device', 'usb-redir,chardev=r2,bus=' + bus]
    guest = guestrun.Guest(wd.image, READER_DEL_SCRIPT, {}, guest_env(''), args.usb,
                           qemu_args, args.timeout, wd.log(tag + '.console.log'),
                           on_line=host_action)
    run = guest.boot()
    report.add_guest(run)
    reply = replies.get('device_del')
    report.add('qmp_device_del', reply is not None and 'return' in reply, str(reply))
    readers = qmp.command('query-vccid-readers')
    ids = [r['id'] for r in readers.get('return', [])]
    report.add('vccid_serves_ccid2', ids == ['ccid2'], 'readers %s' % ids)
    qmp.close()
    finish_vccid(vccid, report)
    return run


RESET_CHECKS = ('enumerate pcscd atr sweep system_reset lsusb opensc sign '
                'pcscd_log kernel_log')


def run_system_reset(wd, args, report):
    """vccid-listen, and the guest machine is reset (QMP system_reset) in the
    middle: usb-redir resets the device, SeaBIOS's USB stack enumerates it,
    then Linux does; every check runs again on the second boot."""
    _, bus = guestrun.usb_controller_args(args.usb)
    tmp = tempfile.mkdtemp(prefix='vccid-sock-')
    sock = os.path.join(tmp, 'redir.sock')
    tag = '%s-%s' % (args.scenario, args.usb)
    vccid = Vccid(args.vccid,
                  vccid_args(wd, args,
                             'socket,id=redir,path=%s,server=on,wait=off' % sock),
                  wd.log(tag + '.vccid.log')).start()
    report.add('vccid_listening', vccid.wait_for_socket(sock), sock)
    guest = make_guest(wd, args, RESET_CHECKS,
                       redir_args(bus, 'socket,id=r,path=' + sock),
                       tag + '.console.log')
    guest.no_reboot = False
    guest.qmp_path = os.path.join(tmp, 'qmp.sock')
    boundary = []

    def host_action(line):
        if 'HOST-ACTION system-reset' not in line:
            return
        if not boundary:
            boundary.append(len(guest.run.results))
            reply = guest.qmp('system_reset')
            report.add('qmp_system_reset', 'return' in reply, str(reply))
        else:
            guest.send('continue')

    guest.on_line = host_action
    run = guest.start().wait()
    first = boundary[0] if boundary else len(run.results)
    for i, (name, status, detail) in enumerate(run.results):
        report.add(('before_reset.' if i < first else '') + name,
                   status == 'pass', detail)
    report.add('guest_finished', not run.timed_out and run.rc is not None,
               'in %.0f s' % run.elapsed)
    report.logs.append(('guest console', run.console_tail(250)))
    finish_vccid(vccid, report)


TOKEN_CHECKS = 'enumerate pcscd atr token token_sign pcscd_log kernel_log'
TOKEN_LABEL = 'vccid-token'
# make-token.sh's default user PIN, and one the token must refuse.
TOKEN_PIN = '648219'
TOKEN_WRONG_PIN = '111111'


def prepare_token(wd):
    """The SoftHSM2 token and its NSS database (made once; locked). Every
    process started after this finds SoftHSM2's configuration through
    SOFTHSM2_CONF. Returns (NSS database directory, the token's DER
    certificate)."""
    tokdir = os.path.join(wd.path, 'softhsm')
    with open(os.path.join(wd.path, '.softhsm.lock'), 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([os.path.join(SRCROOT, 'tests', 'softhsm', 'make-token.sh'),
                        tokdir], check=True, stdout=subprocess.DEVNULL)
    os.environ['SOFTHSM2_CONF'] = os.path.join(tokdir, 'softhsm2.conf')
    with open(os.path.join(tokdir, 'cert.der'), 'rb') as f:
        return tokdir, f.read()


class TokenVscclient(Vscclient):
    """vscclient lending the SoftHSM2 token (no -c)."""

    def __init__(self, exe, tokdir, port, log_path):
        Vccid.__init__(self, exe, ['--db', 'sql:' + tokdir, '--slots', 'removable',
                                   '--token', TOKEN_LABEL, '127.0.0.1', str(port)],
                       log_path)


def run_token(wd, args, report):
    """The token as the card: in vccid's emulated card (token), lent by
    vscclient to vccid's passthru (token-passthru) or to QEMU's
    (reference-token-passthru)."""
    _, bus = guestrun.usb_controller_args(args.usb)
    tokdir, cert = prepare_token(wd)
    tag = '%s-%s' % (args.scenario, args.usb)
    passthru = args.scenario.endswith('passthru')
    in_qemu = args.scenario.startswith('reference')
    if passthru and not (args.vscclient and os.access(args.vscclient, os.X_OK)):
        report.add('vscclient_found', False, 'no vscclient: %s' % args.vscclient)
        return
    port = free_port()
    vsc_chr = 'socket,id=vsc,host=127.0.0.1,port=%d,server=on,wait=off' % port
    card = ['-chardev', vsc_chr, '-device', 'ccid-card-passthru,chardev=vsc'] \
        if passthru else \
        ['-device', 'ccid-card-emulated,backend=nss-emulated,db=sql:%s,'
         'slots=removable,token=%s' % (tokdir, TOKEN_LABEL)]
    vccid = None
    if in_qemu:
        qemu_args = ['-device', 'usb-ccid,id=ccid,bus=' + bus] + card
    else:
        tmp = tempfile.mkdtemp(prefix='vccid-sock-')
        sock = os.path.join(tmp, 'redir.sock')
        vccid = Vccid(args.vccid, [
            '-chardev', 'socket,id=redir,path=%s,server=on,wait=off' % sock,
            '-device', 'usb-ccid,id=ccid'] + card +
            ['-export', 'usbredir,chardev=redir'] + args.vccid_arg,
            wd.log(tag + '.vccid.log')).start()
        up = vccid.wait_for_socket(sock)
        report.add('vccid_listening', up, sock)
        if not up:
            finish_vccid(vccid, report)
            return
        qemu_args = redir_args(bus, 'socket,id=r,path=' + sock)
    with open(os.path.join(HERE, 'checks.sh'), 'rb') as f:
        script = f.read()
    env = guest_env(args.checks or TOKEN_CHECKS)
    env.update({'TOKEN_PIN': TOKEN_PIN, 'WRONG_PIN': TOKEN_WRONG_PIN})
    guest = guestrun.Guest(wd.image, script, {'token.cer': cert}, env, args.usb,
                           qemu_args, args.timeout, wd.log(tag + '.console.log'))
    guest.start()
    client = None
    if passthru:
        up = wait_for_port(port)
        report.add('card_port_listening', up, '127.0.0.1:%d' % port)
        client = TokenVscclient(args.vscclient, tokdir, port,
                                wd.log(tag + '.vscclient.log')).start()
    run = guest.wait()
    report.add_guest(run)
    if client:
        if not in_qemu:
            report.add('vscclient_alive', client.alive(),
                       'still connected after the guest' if client.alive()
                       else 'exited with %s' % client.proc.returncode)
        client.stop()
        report.logs.append(('vscclient output (%s)' % client.log_path, client.tail()))
    if vccid:
        finish_vccid(vccid, report)


def run_bench(wd, args, report):
    runner = {
        'bench-reference': run_reference,
        'bench-vccid': run_vccid_listen,
        'bench-reference-passthru': run_passthru,
        'bench-passthru': run_passthru,
        'bench-usbip': lambda wd, args, report, checks: run_usbip(
            wd, args, report, 'usbip_attach ' + checks),
    }[args.scenario]
    run = runner(wd, args, report, BENCH_CHECKS)
    if run is not None and run.metrics:
        print('BENCH setup=%s usb=%s %s' % (
            args.scenario[len('bench-'):] + ('-tcp' if args.tcp else '')
            + ('-tls' if args.tls else ''), args.usb,
            ' '.join('%s=%s' % kv for kv in sorted(run.metrics.items()))))


def run_piv(wd, args, report):
    """vccid-listen with a ccid-card-piv instead of ccid-card-emulated."""
    args.card = 'piv'
    return run_vccid_listen(wd, args, report, PIV_CHECKS)


def run_piv_ec(wd, args, report):
    """The same with ECC P-256 keys: ECDSA with 9A and 9C, ECDH with 9D."""
    args.card = 'piv-ec'
    return run_vccid_listen(wd, args, report, PIV_EC_CHECKS)


# USB/IP: the guest lists and attaches vccid's export with its own usbip
# tool, uses the card, checks that a second import is refused, detaches and
# attaches again.
USBIP_CHECKS = ('usbip_list usbip_attach enumerate lsusb pcscd atr sweep opensc sign '
                'usbip_second usbip_reattach usbip_restart pcscd_log kernel_log '
                'usbip_kernel_log')


def run_usbip(wd, args, report, checks=USBIP_CHECKS, passthru=False, two=False):
    """vccid exports the reader over USB/IP on the host's loopback; the guest
    reaches it over QEMU user networking (the host's loopback is 10.0.2.2
    there) and attaches it with usbip, as any Linux host would. passthru: the
    card is ccid-card-passthru, lent by vscclient over loopback TCP; two: a
    second reader with that passthru card beside the emulated one. On the
    guest's HOST-ACTION vccid-restart, vccid is stopped and started again."""
    port = free_port()
    tag = '%s-%s' % (args.scenario, args.usb)
    opts = ',' + args.reader_opts if args.reader_opts else ''
    card = ['-device', card_args(wd, getattr(args, 'card', 'emulated'))]
    client = None
    if passthru or two:
        if not (args.vscclient and os.access(args.vscclient, os.X_OK)):
            report.add('vscclient_found', False, 'no vscclient: %s' % args.vscclient)
            return None
        card_port = free_port()
        passthru_card = ['-chardev', 'socket,id=vsc,host=127.0.0.1,port=%d,server=on,'
                         'wait=off' % card_port, '-device', 'ccid-card-passthru,chardev=vsc']
        card = passthru_card if passthru else card + [
            '-device', 'usb-ccid,id=ccid2'] + passthru_card[:3] + [
            'ccid-card-passthru,chardev=vsc,bus=ccid2.0']
    exports = ['-export', 'usbip,device=ccid,host=127.0.0.1,port=%d' % port]
    if two:
        exports += ['-export', 'usbip,device=ccid2,host=127.0.0.1,port=%d' % port]
    vccid_argv = (['-device', 'usb-ccid,id=ccid' + opts] + card + exports + args.vccid_arg)
    vccids = [Vccid(args.vccid, vccid_argv, wd.log(tag + '.vccid.log')).start()]
    vccid = vccids[0]
    up = wait_for_port(port) and vccid.alive()
    report.add('vccid_listening', up, 'USB/IP on 127.0.0.1:%d' % port if up
               else 'not listening; vccid %s' % ('running' if vccid.alive() else 'exited'))
    if up and (passthru or two):
        up = wait_for_port(card_port)
        report.add('card_port_listening', up, '127.0.0.1:%d' % card_port)
        client = Vscclient(args.vscclient, wd, card_port,
                           wd.log(tag + '.vscclient.log')).start()
    run = None

    def host_action(line):
        if 'HOST-ACTION vccid-restart' in line:
            vccids[-1].stop()
            vccids.append(Vccid(args.vccid, vccid_argv, wd.log(
                '%s.vccid%d.log' % (tag, len(vccids) + 1))).start())

    if up:
        guest = make_guest(wd, args, checks, [], tag + '.console.log', on_line=host_action,
                           extra_env={'USBIP_HOST': '10.0.2.2', 'USBIP_PORT': str(port)},
                           network=True)
        run = guest.boot()
        report.add_guest(run)
    vccid = vccids[-1]
    if client:
        report.add('vscclient_alive', client.alive(),
                   'still connected after the guest' if client.alive()
                   else 'exited with %s' % client.proc.returncode)
        client.stop()
        report.logs.append(('vscclient output (%s)' % client.log_path, client.tail()))
    finish_vccid(vccid, report)
    return run


def run_usbip_passthru(wd, args, report):
    """The passthru card over USB/IP. (No vccid restart: the card's client
    leaves with the vccid it lent the card to.)"""
    return run_usbip(wd, args, report, USBIP_CHECKS.replace(' usbip_restart', ''),
                     passthru=True)


def run_usbip_two(wd, args, report):
    """Two readers on one USB/IP listener (1-1 with the emulated card, 1-2
    with the passthru card), attached and used at once."""
    return run_usbip(wd, args, report, 'usbip_two pcscd_log kernel_log usbip_kernel_log',
                     two=True)


def run_usbip_piv(wd, args, report):
    """The PIV card over USB/IP: OpenSC's PIV driver and yubico-piv-tool."""
    args.card = 'piv'
    return run_usbip(wd, args, report,
                     'usbip_list usbip_attach enumerate pcscd atr piv_opensc piv_sign '
                     'piv_yubico pcscd_log kernel_log usbip_kernel_log')


SCENARIOS = {
    'usbip': run_usbip,
    'usbip-piv': run_usbip_piv,
    'usbip-passthru': run_usbip_passthru,
    'usbip-two': run_usbip_two,
    'reference': run_reference,
    'vccid-listen': run_vccid_listen,
    'piv': run_piv,
    'piv-ec': run_piv_ec,
    'vccid-connect': run_vccid_connect,
    'reconnect': run_reconnect,
    'replug': run_replug,
    'system-reset': run_system_reset,
    'passthru': run_passthru,
    'qmp-card-events': run_qmp_card_events,
    'qmp-reader-hotplug': run_qmp_reader_hotplug,
    'qmp-reader-del': run_qmp_reader_del,
    'reference-passthru': run_passthru,
    'token': run_token,
    'token-passthru': run_token,
    'reference-token-passthru': run_token,
    'bench-reference': run_bench,
    'bench-vccid': run_bench,
    'bench-reference-passthru': run_bench,
    'bench-passthru': run_bench,
    'bench-usbip': run_bench,
}


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--workdir', default=os.path.join(SRCROOT, 'build-guest',
                                                      'tests', 'guest'))
    ap.add_argument('--vccid', help='path of the vccid binary')
    ap.add_argument('--vscclient', help='path of vscclient (passthru scenarios)')
    ap.add_argument('--timeout', type=float, default=300,
                    help='seconds one guest may take')
    ap.add_argument('--known-failures', default='',
                    help='comma-separated checks allowed to fail (XFAIL)')
    ap.add_argument('scenario', choices=sorted(SCENARIOS))
    ap.add_argument('--usb', default='xhci',
                    choices=sorted(guestrun.CONTROLLERS))
    ap.add_argument('--direction', default='listen',
                    choices=['listen', 'connect'],
                    help='reconnect: which side vccid plays')
    ap.add_argument('--vccid-arg', action='append', default=[],
                    help='an extra argument for vccid (e.g. -v)')
    ap.add_argument('--checks', default=None,
                    help='guest checks to run instead of the scenario\'s '
                         '(e.g. "enumerate pcscd usbmon")')
    ap.add_argument('--slow-card', type=float, default=0, metavar='SECONDS',
                    help='passthru: hold the card\'s answer to the APDU after '
                         'the guest\'s HOST-ACTION slow for SECONDS')
    ap.add_argument('--tcp', action='store_true',
                    help='vccid-listen, bench-vccid: usbredir over loopback '
                         'TCP instead of a UNIX socket')
    ap.add_argument('--reader-opts', default='',
                    help='extra usb-ccid properties for vccid, e.g. speed=high')
    ap.add_argument('--vccid-first', action='store_true',
                    help='vccid-connect: start vccid before QEMU listens')
    ap.add_argument('--tls', action='store_true',
                    help='vccid-listen, vccid-connect, passthru, reference-passthru: '
                         'TLS with client certificates and authz on a TCP socket')
    args = ap.parse_args()
    needs_vccid = 'reference' not in args.scenario
    if needs_vccid and not (args.vccid and os.access(args.vccid, os.X_OK)):
        print('vccid binary not found: %s' % args.vccid, file=sys.stderr)
        return 1
    wd = Workdir(args.workdir)
    wd.prepare()
    known = [k for k in args.known_failures.split(',') if k]
    if args.scenario.startswith('reference') and args.usb == 'xhci' \
            and not args.known_failures:
        known = QEMU_XHCI_KNOWN.split(',')
    report = Report(known)
    SCENARIOS[args.scenario](wd, args, report)
    return report.print('%s (%s)' % (args.scenario, args.usb))


if __name__ == '__main__':
    sys.exit(main())
