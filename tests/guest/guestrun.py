#!/usr/bin/env python3
"""Boot the test guest under QEMU, run a script in it, collect its results.

The guest (built by build-guest.sh) is a kernel and a base initramfs. The
script and its data files are packed into a second, small cpio archive that
is appended to the base one (the kernel unpacks concatenated archives), so no
disk, 9p or network is needed. The guest reports on the serial console:

    RESULT <name>=pass|fail <detail>     one per check
    METRIC <key>=<value> ...             benchmark figures
    GUEST-DONE rc=<n>                    the script finished; /init powers off

Used as a module by scenarios.py, and standalone:

    guestrun.py --image DIR --script checks.sh [--file NAME=PATH]...
                [--env KEY=VALUE]... [--usb xhci|ehci|uhci] [--qemu-arg ARG]...
                [--timeout SECONDS] [--log FILE]

Python standard library only.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

RESULT_RE = re.compile(r'RESULT (\S+?)=(pass|fail)\b ?(.*)')
METRIC_RE = re.compile(r'METRIC (.*)')
DONE_RE = re.compile(r'GUEST-DONE rc=(-?\d+)')

# USB host controllers, each with the bus name devices are plugged into.
# EHCI alone cannot take a full-speed device, so it comes with its UHCI
# companions as on a real ICH9 board: the guest's ehci-hcd sees the port and
# hands the device over to a companion.
CONTROLLERS = {
    'xhci': (['-device', 'qemu-xhci,id=usbc'], 'usbc.0'),
    'uhci': (['-device', 'piix3-usb-uhci,id=usbc'], 'usbc.0'),
    'ohci': (['-device', 'pci-ohci,id=usbc'], 'usbc.0'),
    # EHCI with no companions: only a high-speed device (usb-ccid,speed=high).
    'ehci-alone': (['-device', 'usb-ehci,id=usbc'], 'usbc.0'),
    'ehci': (['-device', 'ich9-usb-ehci1,id=usbc,addr=1d.7,multifunction=on',
              '-device', 'ich9-usb-uhci1,masterbus=usbc.0,firstport=0,'
                         'addr=1d.0,multifunction=on',
              '-device', 'ich9-usb-uhci2,masterbus=usbc.0,firstport=2,'
                         'addr=1d.1,multifunction=on',
              '-device', 'ich9-usb-uhci3,masterbus=usbc.0,firstport=4,'
                         'addr=1d.2,multifunction=on'], 'usbc.0'),
}


def usb_controller_args(usb):
    """QEMU options for controller @usb and the bus= its devices go on."""
    if usb not in CONTROLLERS:
        raise ValueError('unknown USB controller %r (one of %s)'
                         % (usb, ', '.join(CONTROLLERS)))
    args, bus = CONTROLLERS[usb]
    return list(args), bus


def _cpio_entry(name, data, mode):
    header = '070701' + ''.join('%08X' % v for v in (
        0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0))
    out = header.encode() + name.encode() + b'\0'
    out += b'\0' * (-len(out) % 4)
    out += data + b'\0' * (-len(data) % 4)
    return out


def make_overlay(files):
    """A newc cpio archive with @files ({path-in-guest: bytes})."""
    out = b''
    dirs = sorted({os.path.dirname(p) for p in files if os.path.dirname(p)})
    for d in dirs:
        out += _cpio_entry(d, b'', 0o040755)
    for path, data in sorted(files.items()):
        out += _cpio_entry(path, data, 0o100755)
    out += _cpio_entry('TRAILER!!!', b'', 0)
    return out + b'\0' * (-len(out) % 512)


def write_initrd(path, image_dir, script, files, env):
    """The base initramfs of @image_dir with the scenario appended: @script
    as /scenario/run.sh, @env as /scenario/env, @files ({name: bytes}) in
    /scenario."""
    overlay = {'scenario/run.sh': script}
    overlay['scenario/env'] = ''.join(
        "%s='%s'\n" % (k, str(v).replace("'", "'\\''"))
        for k, v in env.items()).encode()
    for name, data in files.items():
        overlay['scenario/' + name] = data
    with open(path, 'wb') as out:
        with open(os.path.join(image_dir, 'initramfs.cpio'), 'rb') as base:
            shutil.copyfileobj(base, out)
        out.write(make_overlay(overlay))


def probe_accel(image_dir, qemu='qemu-system-x86_64'):
    """'kvm' if a guest really runs under KVM here, else 'tcg'.

    /dev/kvm may exist and still hang nested guests, so boot the kernel
    without an initramfs (it panics at once and, with -no-reboot, QEMU
    exits) and give it a few seconds. The answer is cached in @image_dir.
    VCCID_GUEST_ACCEL=kvm|tcg overrides the probe.
    """
    forced = os.environ.get('VCCID_GUEST_ACCEL')
    if forced in ('kvm', 'tcg'):
        return forced
    cache = os.path.join(image_dir, 'accel')
    if os.path.exists(cache):
        with open(cache) as f:
            return f.read().strip()
    accel = 'tcg'
    if os.access('/dev/kvm', os.R_OK | os.W_OK):
        cmd = [qemu, '-accel', 'kvm', '-m', '256', '-nographic', '-no-reboot',
               '-kernel', os.path.join(image_dir, 'vmlinuz'),
               '-append', 'console=ttyS0 panic=-1']
        try:
            out = subprocess.run(cmd, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, timeout=8).stdout
            if b'Kernel panic' in out:
                accel = 'kvm'
        except subprocess.TimeoutExpired:
            pass
    with open(cache, 'w') as f:
        f.write(accel + '\n')
    return accel


class GuestRun:
    """What one boot produced."""

    def __init__(self):
        self.results = []      # [(name, 'pass'|'fail', detail)]
        self.metrics = {}      # key -> value (strings)
        self.rc = None         # the guest script's exit status
        self.timed_out = False
        self.console = []      # every console line
        self.elapsed = 0.0
        self.qemu_rc = None

    def take(self, line):
        """Record one console line and what it reports."""
        self.console.append(line)
        m = RESULT_RE.search(line)
        if m:
            self.results.append(m.groups())
        m = METRIC_RE.search(line)
        if m:
            for kv in m.group(1).split():
                if '=' in kv:
                    k, v = kv.split('=', 1)
                    self.metrics[k] = v
        m = DONE_RE.search(line)
        if m:
            self.rc = int(m.group(1))

    def result(self, name):
        for n, status, detail in self.results:
            if n == name:
                return status, detail
        return None, None

    def console_tail(self, lines=200):
        return '\n'.join(self.console[-lines:])


class Guest:
    """Boots the guest with a script and extra QEMU options.

    start() returns at once (the caller may then start its side, e.g. a
    vccid that connects to a QEMU socket); wait() collects the run.
    """

    def __init__(self, image_dir, script, files=None, env=None, usb='xhci',
                 qemu_args=(), timeout=300, log_path=None,
                 qemu='qemu-system-x86_64', memory=512, on_line=None,
                 no_reboot=True, qmp_path=None, network=False):
        self.image_dir = image_dir
        # network: QEMU user networking (an e1000, no option ROM). The guest
        # is 10.0.2.15 and reaches the host's loopback as 10.0.2.2.
        self.network = network
        self.script = script
        self.files = dict(files or {})
        self.env = dict(env or {})
        self.usb = usb
        self.qemu_args = list(qemu_args)
        self.timeout = timeout
        self.log_path = log_path
        self.qemu = qemu
        self.memory = memory
        self.on_line = on_line   # called with each console line (reader thread)
        # -no-reboot turns every reset, a QMP system_reset too, into an exit
        self.no_reboot = no_reboot
        self.qmp_path = qmp_path
        self.proc = None
        self.run = GuestRun()
        self._tmp = None
        self._reader = None
        self._done = threading.Event()
        self._log = None

    def _initrd(self):
        path = os.path.join(self._tmp, 'initrd.cpio')
        write_initrd(path, self.image_dir, self.script, self.files, self.env)
        return path

    def command(self, initrd):
        accel = probe_accel(self.image_dir, self.qemu)
        usb_args, _ = usb_controller_args(self.usb)
        return ([self.qemu, '-accel', accel, '-m', str(self.memory),
                 '-nographic']
                + (['-netdev', 'user,id=net0', '-device', 'e1000,netdev=net0,romfile=']
                   if self.network else ['-nic', 'none'])   # no iPXE ROM either way
                + (['-no-reboot'] if self.no_reboot else [])
                + (['-qmp', 'unix:%s,server=on,wait=off' % self.qmp_path]
                   if self.qmp_path else [])
                + ['-kernel', os.path.join(self.image_dir, 'vmlinuz'),
                 '-initrd', initrd,
                 '-append', 'console=ttyS0 quiet loglevel=4 panic=-1'
                            ' usbcore.autosuspend=-1']
                + usb_args + self.qemu_args)

    def _pump(self):
        for raw in self.proc.stdout:
            line = raw.decode('utf-8', 'replace').rstrip('\r\n')
            if self._log:
                self._log.write(line + '\n')
                self._log.flush()
            self.run.take(line)
            if self.on_line:
                self.on_line(line)
        self._done.set()

    def start(self):
        self._tmp = tempfile.mkdtemp(prefix='vccid-guest-')
        cmd = self.command(self._initrd())
        if self.log_path:
            self._log = open(self.log_path, 'w')
            self._log.write('# ' + ' '.join(cmd) + '\n')
        self._t0 = time.monotonic()
        # The guest's console input: see send().
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        return self

    def send(self, line):
        """Type a line on the guest's serial console (the script reads it)."""
        try:
            self.proc.stdin.write(line.encode() + b'\r')
            self.proc.stdin.flush()
        except OSError:
            pass

    def qmp(self, command):
        """Run one QMP command (the guest must have been given qmp_path)."""
        import json
        import socket
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.qmp_path)
            f = s.makefile('rw')
            f.readline()   # greeting
            for cmd in ('qmp_capabilities', command):
                f.write(json.dumps({'execute': cmd}) + '\n')
                f.flush()
                while True:
                    reply = json.loads(f.readline())
                    if 'return' in reply or 'error' in reply:
                        break
            return reply

    def wait(self):
        remaining = self.timeout - (time.monotonic() - self._t0)
        if not self._done.wait(max(remaining, 0)):
            self.run.timed_out = True
            self.proc.kill()
            self._done.wait(10)
        try:
            self.run.qemu_rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.run.qemu_rc = self.proc.wait()
        self.run.elapsed = time.monotonic() - self._t0
        if self._log:
            self._log.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
        return self.run

    def boot(self):
        return self.start().wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--image', required=True, help='build-guest.sh OUTDIR')
    ap.add_argument('--script', required=True)
    ap.add_argument('--file', action='append', default=[],
                    help='NAME=PATH: put PATH at /scenario/NAME in the guest')
    ap.add_argument('--env', action='append', default=[],
                    help='KEY=VALUE for /scenario/env')
    ap.add_argument('--usb', default='xhci', choices=sorted(CONTROLLERS))
    ap.add_argument('--qemu-arg', action='append', default=[])
    ap.add_argument('--timeout', type=float, default=300)
    ap.add_argument('--log')
    a = ap.parse_args()
    with open(a.script, 'rb') as f:
        script = f.read()
    files = {}
    for spec in a.file:
        name, path = spec.split('=', 1)
        with open(path, 'rb') as f:
            files[name] = f.read()
    env = dict(kv.split('=', 1) for kv in a.env)
    run = Guest(a.image, script, files, env, a.usb, a.qemu_arg, a.timeout,
                a.log).boot()
    for name, status, detail in run.results:
        print('%-18s %-4s %s' % (name, status, detail))
    for k, v in sorted(run.metrics.items()):
        print('METRIC %s=%s' % (k, v))
    ok = (not run.timed_out and run.rc == 0 and run.results
          and all(s == 'pass' for _, s, _ in run.results))
    if not ok:
        print('guest %s; console:\n%s' % (
            'timed out' if run.timed_out else 'rc=%s' % run.rc,
            run.console_tail()), file=sys.stderr)
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
