#!/usr/bin/env python3
"""libvirt attaches vccid's reader to a guest (docs/ccid.txt, section 7).

    libvirt.py [--workdir DIR] [--vccid PATH] VARIANT

VARIANT:
  unix       vccid listens on /run/vccid/vm1/redir.sock with group=libvirt-qemu,
             mode=0660; the domain's <redirdev type='unix'> connects, QEMU
             running as libvirt's user libvirt-qemu, not root
  tcp        vccid listens on loopback TCP, <redirdev type='tcp'>
  tls        the same with TLS: vccid demands QEMU's client certificate and
             admits its name (authz-simple); libvirt's chardev_tls in qemu.conf
             and tls='yes' on the source
  reconnect  the domain starts before vccid, its source has <reconnect>:
             QEMU gets in when vccid comes up
  hotplug    the domain starts with no redirdev; virsh attach-device --live
             plugs the reader in, detach-device takes it away and
             attach-device brings it back, while the guest watches

Each variant starts its own libvirtd and virtlogd as root, with a private
configuration: the script moves into its own mount namespace, where a
tmpfs covers /run and private directories cover /etc/libvirt,
/var/lib/libvirt, /var/cache/libvirt and /var/log/libvirt, so the host's
libvirt (if any) is neither seen nor touched. A system libvirtd reads
/etc/libvirt/qemu.conf and no other, which is why the namespace is needed.
The domain (TCG, direct kernel boot of the test guest, serial console to a
file) runs checks.sh as scenarios.py does. The domain is destroyed and
undefined and the daemons stopped by pid, however the test ends; their logs
are kept in WORKDIR/logs/libvirt-VARIANT/.

Needs root and libvirt-daemon, libvirt-daemon-driver-qemu, libvirt-clients
(scripts/install-deps.sh --test, which also makes the user libvirt-qemu).
Prints one line per check and "N passed, N failed"; exit status 77 (skip)
when not root.
"""
import argparse
import ctypes
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestrun  # noqa: E402
import scenarios  # noqa: E402

CLONE_NEWNS = 0x00020000
QEMU_USER = 'libvirt-qemu'
QEMU_GROUP = 'libvirt-qemu'
# Where a packaged libvirt keeps things; each is replaced by a private
# directory inside the test's mount namespace.
LIBVIRT_DIRS = {'etc': '/etc/libvirt', 'lib': '/var/lib/libvirt',
                'cache': '/var/cache/libvirt', 'log': '/var/log/libvirt'}
# docs/ccid.txt's socket: vccid@vm1.service's runtime directory.
SOCK_DIR = '/run/vccid/vm1'
SOCK = SOCK_DIR + '/redir.sock'
DOMAIN_TIMEOUT = 300
HOTPLUG_CHECKS = ('enumerate lsusb pcscd atr opensc sign unplug pcscd_log '
                  'kernel_log')

QEMU_CONF = '''\
user = "{user}"
group = "{group}"
# No SELinux or AppArmor here; the DAC driver (QEMU's user, relabelled
# kernel, initrd and console file) stays on.
security_driver = "none"
remember_owner = 0
# Without systemd there is no machined, and a container may not delegate
# cgroup controllers or allow a private /dev.
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "logd"
'''
QEMU_CONF_TLS = '''\
chardev_tls = 1
chardev_tls_x509_cert_dir = "{dir}"
chardev_tls_x509_verify = 1
'''
LIBVIRTD_CONF = '''\
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_ro_perms = "0700"
unix_sock_rw_perms = "0700"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
'''
VIRTLOGD_CONF = '''\
log_outputs = "3:file:/var/log/libvirt/virtlogd.log"
max_size = 0
'''

DOMAIN_XML = '''\
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet loglevel=4 panic=-1 usbcore.autosuspend=-1</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' model='qemu-xhci'/>
    <serial type='file'>
      <source path='{console}'/>
    </serial>
{redirdev}    <memballoon model='none'/>
  </devices>
</domain>
'''

REDIRDEV_UNIX = '''\
    <redirdev bus='usb' type='unix'>
      <source mode='connect' path='{path}'/>
    </redirdev>
'''
REDIRDEV_UNIX_RECONNECT = '''\
    <redirdev bus='usb' type='unix'>
      <source mode='connect' path='{path}'>
        <reconnect enabled='yes' timeout='1'/>
      </source>
    </redirdev>
'''
REDIRDEV_TCP = '''\
    <redirdev bus='usb' type='tcp'>
      <source mode='connect' host='127.0.0.1' service='{port}'{tls}/>
    </redirdev>
'''


def run_quiet(cmd, **kw):
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, **kw)


def enter_private_namespace():
    """Move this process into a new mount namespace and cover libvirt's
    directories there with private ones under a new temporary directory,
    which is returned. Nothing mounted here may reach the host's namespace:
    the mounts are made private, and where that cannot be done (in a chroot,
    / is no mount point) none of them may be shared."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), 'unshare(CLONE_NEWNS)')
    if run_quiet(['mount', '--make-rprivate', '/']).returncode != 0:
        with open('/proc/self/mountinfo') as f:
            shared = [line.split()[4] for line in f if ' shared:' in line]
        if shared:
            raise RuntimeError('cannot make the mounts private, and these are shared '
                               'with the host: ' + ' '.join(shared))
    root = tempfile.mkdtemp(prefix='vccid-libvirt-')
    # QEMU (libvirt-qemu) opens the kernel, initrd and console file below it.
    os.chmod(root, 0o755)
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'tmpfs', '/run'], check=True)
    for sub, target in LIBVIRT_DIRS.items():
        os.makedirs(os.path.join(root, sub))
        os.makedirs(target, exist_ok=True)
        subprocess.run(['mount', '--bind', os.path.join(root, sub), target], check=True)
    os.makedirs('/run/libvirt')
    return root


class Libvirt:
    """libvirtd and virtlogd in the foreground, children of this process."""

    def __init__(self, root, tls_dir=None):
        self.root = root
        self.procs = []
        conf = QEMU_CONF.format(user=QEMU_USER, group=QEMU_GROUP)
        if tls_dir:
            conf += QEMU_CONF_TLS.format(dir=tls_dir)
        self._write('/etc/libvirt/qemu.conf', conf)
        self._write('/etc/libvirt/libvirtd.conf', LIBVIRTD_CONF)
        self._write('/etc/libvirt/virtlogd.conf', VIRTLOGD_CONF)

    @staticmethod
    def _write(path, text):
        with open(path, 'w') as f:
            f.write(text)

    def start(self):
        for daemon, sock in (('virtlogd', 'virtlogd-sock'), ('libvirtd', 'libvirt-sock')):
            cmd = [daemon, '--config', '/etc/libvirt/%s.conf' % daemon,
                   '--pid-file', '/run/libvirt/%s.pid' % daemon]
            log = open('/var/log/libvirt/%s.out' % daemon, 'w')
            self.procs.append(subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                               stdout=log, stderr=subprocess.STDOUT))
            log.close()
            sock = '/run/libvirt/' + sock
            if not scenarios.wait_for_path(sock, 30):
                return '%s: no %s after 30 s' % (daemon, sock)
        # The QEMU driver probes QEMU's capabilities on the first request.
        r = self.virsh('version', timeout=120)
        return None if r.returncode == 0 else 'virsh version: ' + r.stdout.strip()

    def virsh(self, *args, timeout=60):
        return run_quiet(['virsh', '-q', '-c', 'qemu:///system'] + list(args),
                         timeout=timeout)

    def domstate(self, name):
        r = self.virsh('domstate', name)
        return r.stdout.strip() if r.returncode == 0 else 'unknown'

    def qemu_pid(self, name):
        try:
            with open('/run/libvirt/qemu/%s.pid' % name) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


class Console:
    """Follows the domain's serial console file, line by line."""

    def __init__(self, path, on_line=None):
        self.path = path
        self.on_line = on_line
        self.run = guestrun.GuestRun()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._follow, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _follow(self):
        while not os.path.exists(self.path):
            if self.stop.wait(0.1):
                return
        with open(self.path, 'rb') as f:
            partial = b''
            while True:
                chunk = f.readline()
                if not chunk:
                    if self.stop.wait(0.1):
                        break
                    continue
                partial += chunk
                if not partial.endswith(b'\n'):
                    continue
                line = partial.decode('utf-8', 'replace').rstrip('\r\n')
                partial = b''
                self.run.take(line)
                if self.on_line:
                    self.on_line(line)

    def wait_for(self, text, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in list(self.run.console)):
                return True
            time.sleep(0.1)
        return False

    def close(self):
        self.stop.set()
        self.thread.join(5)


def vccid_options(wd, chardev):
    args = argparse.Namespace(reader_opts='', vccid_arg=[], card='emulated')
    return scenarios.vccid_args(wd, args, chardev)


def unix_listener():
    """docs/ccid.txt's unix socket: a directory QEMU's user may traverse,
    the socket in QEMU's group."""
    os.makedirs(SOCK_DIR, mode=0o711)
    os.chmod('/run/vccid', 0o711)
    os.chmod(SOCK_DIR, 0o711)
    return ('socket,id=redir,path=%s,server=on,wait=off,group=%s,mode=0660'
            % (SOCK, QEMU_GROUP))


def check_socket(report):
    st = os.stat(SOCK)
    group = grp.getgrgid(st.st_gid).gr_name
    mode = st.st_mode & 0o777
    report.add('socket_group_mode', group == QEMU_GROUP and mode == 0o660,
               '%s group %s mode %04o' % (SOCK, group, mode))


def check_qemu_user(lv, name, report):
    pid = lv.qemu_pid(name)
    uid = None
    if pid:
        try:
            with open('/proc/%d/status' % pid) as f:
                for line in f:
                    if line.startswith('Uid:'):
                        uid = int(line.split()[1])
        except OSError:
            pass
    want = pwd.getpwnam(QEMU_USER).pw_uid
    report.add('qemu_user', uid == want,
               'QEMU pid %s runs as uid %s (%s is %d)' % (pid, uid, QEMU_USER, want))


def tls_creds(wd, root):
    """QEMU's client credentials where libvirt-qemu can read them."""
    src = wd.tls_dir('client')
    dst = os.path.join(root, 'pki-chardev')
    os.makedirs(dst)
    gid = grp.getgrnam(QEMU_GROUP).gr_gid
    os.chown(dst, 0, gid)
    os.chmod(dst, 0o750)
    for name in ('ca-cert.pem', 'client-cert.pem', 'client-key.pem'):
        shutil.copy(os.path.join(src, name), dst)
        os.chown(os.path.join(dst, name), 0, gid)
        os.chmod(os.path.join(dst, name), 0o640)
    return dst


def run_variant(wd, args, root, report):
    variant = args.variant
    name = 'vccid-test-' + variant
    logs = wd.log('libvirt-' + variant)
    shutil.rmtree(logs, ignore_errors=True)
    os.makedirs(logs)
    tls_dir = tls_creds(wd, root) if variant == 'tls' else None

    # The guest: the harness's kernel and initramfs, with checks.sh.
    boot = os.path.join(root, 'boot')
    os.makedirs(boot)
    os.chmod(boot, 0o755)
    kernel = os.path.join(boot, 'vmlinuz')
    initrd = os.path.join(boot, 'initrd.cpio')
    shutil.copy(os.path.join(wd.image, 'vmlinuz'), kernel)
    with open(os.path.join(scenarios.HERE, 'checks.sh'), 'rb') as f:
        script = f.read()
    checks = HOTPLUG_CHECKS if variant == 'hotplug' else scenarios.FULL_CHECKS
    if variant == 'hotplug':
        # The guest is up: the host may plug the reader in now.
        script = b'echo "HOST-ACTION attach"\n' + script
    guestrun.write_initrd(initrd, wd.image, script, {'ca.cer': wd.ca_der},
                          scenarios.guest_env(checks))
    for path in (kernel, initrd):
        os.chmod(path, 0o644)
    console_path = os.path.join(root, 'console.log')

    # vccid's end and the domain's.
    tls_objects = []
    if variant in ('tcp', 'tls'):
        port = scenarios.free_port()
        chardev = 'socket,id=redir,host=127.0.0.1,port=%d,server=on,wait=off' % port
        if variant == 'tls':
            tls_objects = scenarios.tls_server_objects(wd)
            chardev += scenarios.TLS_SERVER_OPTS
        redirdev = REDIRDEV_TCP.format(port=port,
                                       tls=" tls='yes'" if variant == 'tls' else '')
    else:
        chardev = unix_listener()
        redirdev = (REDIRDEV_UNIX_RECONNECT if variant == 'reconnect'
                    else REDIRDEV_UNIX).format(path=SOCK)
    redirdev_file = os.path.join(root, 'redirdev.xml')
    with open(redirdev_file, 'w') as f:
        f.write(redirdev)
    domain_xml = os.path.join(root, 'domain.xml')
    with open(domain_xml, 'w') as f:
        f.write(DOMAIN_XML.format(name=name, kernel=kernel, initrd=initrd,
                                  console=console_path,
                                  redirdev='' if variant == 'hotplug' else redirdev))
    shutil.copy(domain_xml, logs)
    shutil.copy(redirdev_file, logs)
    vccid = scenarios.Vccid(args.vccid, tls_objects + vccid_options(wd, chardev),
                            os.path.join(logs, 'vccid.log'))

    def start_vccid():
        vccid.start()
        up = (scenarios.wait_for_port(port) if variant in ('tcp', 'tls')
              else vccid.wait_for_socket(SOCK))
        report.add('vccid_listening', up, chardev)
        if up and variant not in ('tcp', 'tls'):
            check_socket(report)
        return up

    lv = Libvirt(root, tls_dir)
    console = None
    defined = False
    try:
        err = lv.start()
        report.add('libvirtd_started', err is None, err or 'libvirtd and virtlogd answer virsh')
        if err:
            return
        if variant != 'reconnect' and not start_vccid():
            return
        r = lv.virsh('define', domain_xml)
        defined = r.returncode == 0
        report.add('domain_defined', defined, 'virsh define domain.xml: ' + r.stdout.strip())
        if not defined:
            return

        # The guest asks: attach (it has booted), unplug and plug (checks.sh's
        # unplug check, which waits for the reader to go and to come back).
        actions = {'HOST-ACTION attach': ('attach', 'attach-device'),
                   'HOST-ACTION unplug': ('detach', 'detach-device'),
                   'HOST-ACTION plug': ('reattach', 'attach-device')}

        def host_action(line):
            for asked, (check, verb) in actions.items():
                if line.rstrip().endswith(asked):
                    r = lv.virsh(verb, name, redirdev_file, '--live')
                    report.add('virsh_' + check, r.returncode == 0,
                               'virsh %s %s redirdev.xml --live: %s'
                               % (verb, name, r.stdout.strip()))

        console = Console(console_path,
                          host_action if variant == 'hotplug' else None).start()
        t0 = time.monotonic()
        r = lv.virsh('start', name, timeout=120)
        report.add('domain_started', r.returncode == 0, 'virsh start %s: %s'
                   % (name, r.stdout.strip()))
        if r.returncode != 0:
            return
        check_qemu_user(lv, name, report)
        if variant == 'reconnect':
            # The domain comes first: its chardev retries every second.
            booted = console.wait_for('GUEST-BOOTED', 60)
            report.add('guest_booted_without_vccid', booted,
                       'the guest runs while vccid is not there yet')
            start_vccid()
        deadline = t0 + DOMAIN_TIMEOUT
        while time.monotonic() < deadline and lv.domstate(name) == 'running':
            time.sleep(1)
        timed_out = lv.domstate(name) == 'running'
        console.close()
        run = console.run
        run.timed_out = timed_out
        run.elapsed = time.monotonic() - t0
        report.add_guest(run)
        # The guest powered off: QEMU closed the connection (hotplug: and
        # once before, at detach-device).
        want = 2 if variant == 'hotplug' else 1
        for _ in range(50):
            with open(vccid.log_path, errors='replace') as f:
                detached = f.read().count('host detached')
            if detached >= want:
                break
            time.sleep(0.1)
        report.add('vccid_host_detached', detached == want,
                   'vccid logged "host detached" %d times (%d expected: %s)'
                   % (detached, want, 'detach-device, power-off' if want == 2
                      else 'power-off'))
        if variant == 'tls':
            peer = "TLS peer '%s'" % scenarios.TLS_CLIENT_DN.replace(',,', ',')
            with open(vccid.log_path, errors='replace') as f:
                report.add('vccid_tls_peer', peer in f.read(),
                           'vccid logged QEMU\'s client certificate: ' + peer)
        scenarios.finish_vccid(vccid, report)
        vccid = None
    finally:
        if console:
            console.close()
        if defined:
            if lv.domstate(name) == 'running':
                lv.virsh('destroy', name)
            pid = lv.qemu_pid(name)
            lv.virsh('undefine', name)
        else:
            pid = None
        lv.stop()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)   # left behind only if libvirtd died
            except OSError:
                pass
        if vccid is not None and vccid.proc is not None:
            vccid.stop()
        for src in ('/var/log/libvirt/libvirtd.log', '/var/log/libvirt/virtlogd.log',
                    '/var/log/libvirt/libvirtd.out', '/var/log/libvirt/virtlogd.out',
                    '/var/log/libvirt/qemu/%s.log' % name, console_path):
            if os.path.exists(src):
                shutil.copy(src, logs)
        qemu_log = '/var/log/libvirt/qemu/%s.log' % name
        if os.path.exists(qemu_log):
            with open(qemu_log, errors='replace') as f:
                report.logs.append(('libvirt\'s QEMU log', f.read()[-4000:]))
        if os.path.exists('/var/log/libvirt/libvirtd.log'):
            with open('/var/log/libvirt/libvirtd.log', errors='replace') as f:
                report.logs.append(('libvirtd log', ''.join(f.readlines()[-30:])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--workdir', default='build/tests/guest')
    ap.add_argument('--vccid', default='build/system/vccid')
    ap.add_argument('variant', choices=['unix', 'tcp', 'tls', 'reconnect', 'hotplug'])
    args = ap.parse_args()
    if os.geteuid() != 0:
        print('SKIP: a system libvirtd (QEMU as libvirt-qemu) needs root')
        return 77
    wd = scenarios.Workdir(args.workdir)
    # Before the namespace: building the guest fetches packages, and the
    # namespace's /run would hide a resolv.conf that links into /run.
    wd.prepare()
    if args.variant == 'tls':
        wd.tls_dir('client')
    root = enter_private_namespace()
    report = scenarios.Report()
    try:
        run_variant(wd, args, root, report)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report.print('libvirt-' + args.variant)


if __name__ == '__main__':
    sys.exit(main())
