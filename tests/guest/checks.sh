#!/bin/sh
# Runs inside the test guest (busybox sh), as /scenario/run.sh.
#
# Each check prints one machine-readable line on the console:
#   RESULT <name>=pass|fail <detail>
# and the benchmark prints "METRIC <key>=<value> ...". The host side
# (guestrun.py) collects them. The checks to run and what to expect come from
# /scenario/env, written by the host:
#   CHECKS       space-separated check names, run in order
#   EXPECT_VID   EXPECT_PID   the reader's USB ids (4 hex digits, lower case)
#   EXPECT_ATR   the card's ATR, hex, no spaces
#   PCSCD_DEBUG  1: run pcscd with --debug --apdu (checks read its log)
#   BENCH_N      APDUs for the benchmark
#   PIN          the PIN given to OpenSC (libcacard accepts any, see README)
#   TOKEN_PIN    WRONG_PIN   the token checks' right and wrong PINs
#   USBIP_HOST   USBIP_PORT  the usbip_* checks: vccid's USB/IP export, which
#                the guest reaches over QEMU user networking
. /scenario/env

MODULE=/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so
PCSCD_LOG=/tmp/pcscd.log
failures=0

result() {  # result NAME pass|fail DETAIL...
    name=$1 status=$2
    shift 2
    [ "$status" = pass ] || failures=$((failures + 1))
    echo "RESULT $name=$status $*"
}

# Print a command's output on the console, each line tagged, for the log.
show() {  # show TAG FILE
    sed "s/^/$1 /" "$2"
}

p11() {
    pkcs11-tool --module "$MODULE" "$@"
}

find_device() {
    for d in /sys/bus/usb/devices/*; do
        [ -f "$d/idVendor" ] || continue
        if [ "$(cat "$d/idVendor")" = "$EXPECT_VID" ] &&
           [ "$(cat "$d/idProduct")" = "$EXPECT_PID" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

check_enumerate() {
    i=0
    while ! dev=$(find_device) && [ $i -lt 150 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    if [ -z "$dev" ]; then
        result enumerate fail "no USB device $EXPECT_VID:$EXPECT_PID after 30 s"
        no_device=1
        return
    fi
    # Give the kernel a moment to finish binding the interface.
    sleep 0.5
    result enumerate pass "$(basename "$dev") speed=$(cat "$dev/speed")" \
        "version=$(cat "$dev/version" | tr -d ' ')" \
        "controller=$(basename "$(readlink -f "$dev/../..")")" \
        "waited_ms=$((i * 200))"
}

check_lsusb() {
    lsusb -v -d "$EXPECT_VID:$EXPECT_PID" > /tmp/lsusb.txt 2>&1
    rc=$?
    show LSUSB /tmp/lsusb.txt
    eps=$(grep -c 'bEndpointAddress' /tmp/lsusb.txt)
    if [ $rc -eq 0 ] &&
       grep -q 'bInterfaceClass *11 ' /tmp/lsusb.txt &&
       grep -q 'ChipCard Interface Descriptor' /tmp/lsusb.txt &&
       grep -q 'bcdCCID' /tmp/lsusb.txt && [ "$eps" -eq 3 ]; then
        result lsusb pass "class=11 endpoints=$eps" \
            "$(awk '/bcdCCID|dwFeatures|dwMaxCCIDMessageLength|dwProtocols/ \
                   {printf "%s=%s ", $1, $2}' /tmp/lsusb.txt)"
    else
        result lsusb fail "rc=$rc endpoints=$eps (CCID class descriptor missing?)"
    fi
}

# USB 2.0 chapter 9 consistency of what lsusb read (run check_lsusb first).
# Not in the default lists: a record for the device model's authors.
check_chapter9() {
    dev=$(find_device)
    speed=$(cat "$dev/speed")
    problems=""
    # 9.6.2: a full-speed-only device whose bcdUSB is 2.00 answers
    # GET_DESCRIPTOR(DEVICE_QUALIFIER) with a request error.
    if grep -q '^Device Qualifier' /tmp/lsusb.txt && [ "$speed" = 12 ]; then
        problems="$problems device_qualifier_at_full_speed(claims_high_speed_capability)"
    fi
    # 9.4.5 / 9.6.3: GET_STATUS's Self Powered bit against the
    # configuration's bmAttributes (0x40 = self-powered).
    attrs=$(awk '/bmAttributes/{print $2; exit}' /tmp/lsusb.txt)
    if grep -q -A1 '^Device Status' /tmp/lsusb.txt &&
       grep -A1 '^Device Status' /tmp/lsusb.txt | grep -q 'Self Powered' &&
       [ $((attrs & 0x40)) -eq 0 ]; then
        problems="$problems self_powered_status_but_bmAttributes=$attrs"
    fi
    if [ -z "$problems" ]; then
        result chapter9 pass "descriptors and status consistent (speed $speed)"
    else
        result chapter9 fail "$problems"
    fi
}

start_pcscd() {
    if [ "${PCSCD_DEBUG:-1}" = 1 ]; then
        pcscd --foreground --debug --apdu > "$PCSCD_LOG" 2>&1 &
    else
        pcscd --foreground > "$PCSCD_LOG" 2>&1 &
    fi
    PCSCD_PID=$!
    # Clients get "service not available" until the socket exists.
    i=0
    while [ ! -S /run/pcscd/pcscd.comm ] && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
}

stop_pcscd() {
    [ -n "${PCSCD_PID:-}" ] || return 0
    kill "$PCSCD_PID" 2>/dev/null
    wait "$PCSCD_PID" 2>/dev/null
    PCSCD_PID=
}

# After the device went away and came back: pcscd's hotplug needs udevd's
# events, which this guest has not, so a new pcscd finds the reader again.
# Then the card must answer every response length again.
reader_works_again() {  # reader_works_again NAME WHAT-HAPPENED
    stop_pcscd
    mv "$PCSCD_LOG" "$PCSCD_LOG.$1" 2>/dev/null
    start_pcscd
    if ! apdu-bench list -w 20 > "/tmp/$1.txt" 2>&1; then
        result "$1" fail "$2; then pcscd lists no reader"
    elif ! apdu-bench atr >> "/tmp/$1.txt" 2>&1 &&
         ! { sleep 1; apdu-bench atr >> "/tmp/$1.txt" 2>&1; }; then
        result "$1" fail "$2; then no card: $(grep error= "/tmp/$1.txt" | head -n1)"
    elif ! apdu-bench sweep >> "/tmp/$1.txt" 2>&1; then
        result "$1" fail "$2; then $(grep -E '^(sweep_ok|SWEEP-FAILED|error)' \
            "/tmp/$1.txt" | head -n3 | tr '\n' ' ')"
    else
        result "$1" pass "$2; then reader, ATR and all 255 lengths work"
    fi
    show "$1" "/tmp/$1.txt"
}

# Runtime power management: libccid's udev rules set power/control=auto on
# CCID readers, so a real guest suspends an idle reader (USB selective
# suspend) and resumes it when pcscd opens it again.
check_autosuspend() {
    dev=$(find_device) || { result autosuspend fail "no device"; return; }
    stop_pcscd
    echo 200 > "$dev/power/autosuspend_delay_ms"
    echo auto > "$dev/power/control"
    i=0
    while [ "$(cat "$dev/power/runtime_status")" != suspended ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    state=$(cat "$dev/power/runtime_status")
    if [ "$state" != suspended ]; then
        result autosuspend fail "runtime_status=$state after 5 s with power/control=auto"
        return
    fi
    reader_works_again autosuspend "suspended after $((i * 100)) ms, resumed by pcscd"
    echo on > "$dev/power/control"
}

# A port reset, as a driver recovering from an error does.
check_usb_reset() {
    dev=$(find_device) || { result usb_reset fail "no device"; return; }
    node=$(printf '/dev/bus/usb/%03d/%03d' "$(cat "$dev/busnum")" "$(cat "$dev/devnum")")
    stop_pcscd
    EXPECTED_KERNEL_LINES='reset full-speed USB device'
    if ! usbreset "$node" > /tmp/usbreset.txt 2>&1; then
        result usb_reset fail "$(cat /tmp/usbreset.txt)"
        return
    fi
    sleep 1
    find_device > /dev/null || { result usb_reset fail "device gone after reset"; return; }
    reader_works_again usb_reset "USBDEVFS_RESET of $node"
}

# Deconfigure and configure again (SET_CONFIGURATION 0, then 1).
check_deauthorize() {
    dev=$(find_device) || { result deauthorize fail "no device"; return; }
    stop_pcscd
    echo 0 > "$dev/authorized"
    sleep 0.5
    if [ -e "$dev/$(basename "$dev"):1.0" ]; then
        result deauthorize fail "interface still there with authorized=0"
        return
    fi
    echo 1 > "$dev/authorized"
    i=0
    while [ ! -e "$dev/$(basename "$dev"):1.0" ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    reader_works_again deauthorize "authorized=0 then 1"
}

# The host takes the device away (vccid stops) and brings it back (a new
# vccid); the console line HOST-ACTION tells the host when.
check_unplug() {
    echo "HOST-ACTION unplug"
    i=0
    while find_device > /dev/null && [ $i -lt 150 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    if find_device > /dev/null; then
        result unplug fail "the device did not go away within 30 s"
        return
    fi
    result unplug pass "gone after $((i * 200)) ms"
    echo "HOST-ACTION plug"
    i=0
    until find_device > /dev/null || [ $i -ge 150 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    if ! find_device > /dev/null; then
        result replug fail "the device did not come back within 30 s"
        return
    fi
    sleep 0.5
    reader_works_again replug "back after $((i * 200)) ms"
}

# The card leaves and comes back (the host asks vscclient to remove and
# insert it): the reader must report both through its interrupt endpoint,
# and the card must work again.
check_card_events() {
    echo "HOST-ACTION remove at $(cut -d' ' -f1 /proc/uptime)"
    apdu-bench wait absent -w 20 > /tmp/events.txt 2>&1
    gone=$?
    echo "HOST-ACTION insert at $(cut -d' ' -f1 /proc/uptime)"
    apdu-bench wait present -w 20 >> /tmp/events.txt 2>&1
    back=$?
    show EVENTS /tmp/events.txt
    if [ $gone -ne 0 ] || [ $back -ne 0 ]; then
        result card_events fail "$(tr '\n' ' ' < /tmp/events.txt)"
    elif ! apdu-bench sweep > /tmp/events-sweep.txt 2>&1; then
        show EVENTS /tmp/events-sweep.txt
        result card_events fail "removal and insertion seen; then $(grep -E \
            '^(sweep_ok|error)' /tmp/events-sweep.txt | tr '\n' ' ')"
    else
        result card_events pass "$(tr '\n' ' ' < /tmp/events.txt); then all 255 lengths work"
    fi
}

# The card's owner goes away (vscclient stops) and comes back (a new
# vscclient connects): the reader stays, its card leaves and returns.
check_client_events() {
    echo "HOST-ACTION client-stop at $(cut -d' ' -f1 /proc/uptime)"
    apdu-bench wait absent -w 20 > /tmp/client.txt 2>&1
    gone=$?
    readers_between=$(apdu-bench list | grep -c '^READER')
    echo "HOST-ACTION client-start at $(cut -d' ' -f1 /proc/uptime)"
    apdu-bench wait present -w 20 >> /tmp/client.txt 2>&1
    back=$?
    show CLIENT /tmp/client.txt
    if [ $gone -ne 0 ] || [ $back -ne 0 ] || [ "$readers_between" -ne 1 ]; then
        result client_events fail "readers while away: $readers_between;" \
            "$(tr '\n' ' ' < /tmp/client.txt)"
    elif ! apdu-bench sweep > /tmp/client-sweep.txt 2>&1; then
        show CLIENT /tmp/client-sweep.txt
        result client_events fail "card left and came back; then $(grep -E \
            '^(sweep_ok|error)' /tmp/client-sweep.txt | tr '\n' ' ')"
    else
        result client_events pass "$(tr '\n' ' ' < /tmp/client.txt); the reader" \
            "stayed; then all 255 lengths work"
    fi
}

# The host holds the card's next answer for SLOW_CARD seconds (a card busy
# with a long computation): the exchange must succeed, only slowly.
check_slow_card() {
    echo "HOST-ACTION slow"
    sleep 1   # the host arms its proxy when it reads the line above
    apdu-bench bench -n 1 > /tmp/slow.txt 2>&1
    rc=$?
    show SLOW /tmp/slow.txt
    ms=$(sed -n 's/.* p50_ms=\([0-9]*\).*/\1/p' /tmp/slow.txt)
    if [ $rc -eq 0 ] && [ "${ms:-0}" -ge $((SLOW_CARD * 1000 - 100)) ]; then
        result slow_card pass "answer after ${ms} ms (card held it ${SLOW_CARD} s)"
    else
        result slow_card fail "rc=$rc exchange took ${ms:-?} ms," \
            "$(grep error= /tmp/slow.txt | head -n1)"
    fi
}

check_pcscd() {
    start_pcscd
    apdu-bench list -w 20 > /tmp/readers.txt 2>&1
    show PCSC /tmp/readers.txt
    reader=$(sed -n 's/^READER //p' /tmp/readers.txt | head -n1)
    if [ -n "$reader" ]; then
        result pcscd_reader pass "reader=\"$reader\""
    else
        result pcscd_reader fail "$(tr '\n' ' ' < /tmp/readers.txt)"
    fi
}

check_atr() {
    # The card may need a moment after the reader appears.
    i=0
    until apdu-bench atr > /tmp/atr.txt 2>&1 || [ $i -ge 10 ]; do
        sleep 0.5
        i=$((i + 1))
    done
    show PCSC /tmp/atr.txt
    atr=$(sed -n 's/^ATR //p' /tmp/atr.txt)
    # What libccid read from the reader's RDR_to_PC_DataBlock at power on.
    log_atr=$(sed -n 's/.*Card ATR: *//p' "$PCSCD_LOG" | head -n1 | tr -d ' \r')
    if [ -n "$atr" ] && [ "$atr" = "$EXPECT_ATR" ] &&
       { [ -z "$log_atr" ] || [ "$log_atr" = "$atr" ]; }; then
        result atr pass "atr=$atr pcscd_log_atr=${log_atr:-n/a}"
    else
        result atr fail "atr=${atr:-none} expected=$EXPECT_ATR" \
            "pcscd_log_atr=${log_atr:-n/a}"
    fi
}

# The token's objects after a login, in /tmp/objects.txt: pkcs11-tool's
# status in $rc, how many certificates and private keys in $certs, $keys.
list_objects() {
    p11 --login --pin "$PIN" --list-objects > /tmp/objects.txt 2>&1
    rc=$?
    show OPENSC /tmp/objects.txt
    certs=$(grep -c '^Certificate Object' /tmp/objects.txt)
    keys=$(grep -c '^Private Key Object' /tmp/objects.txt)
}

check_opensc() {
    opensc-tool --name > /tmp/name.txt 2>&1
    show OPENSC /tmp/name.txt
    p11 --list-slots > /tmp/slots.txt 2>&1
    show OPENSC /tmp/slots.txt
    list_objects
    if [ $rc -eq 0 ] && [ "$certs" -eq 3 ] && [ "$keys" -eq 3 ]; then
        result opensc_objects pass "card=\"$(head -n1 /tmp/name.txt)\"" \
            "certificates=$certs private_keys=$keys pin=$PIN"
    else
        result opensc_objects fail "rc=$rc certificates=$certs private_keys=$keys" \
            "card=\"$(head -n1 /tmp/name.txt)\""
    fi
}

# Sign with the card's key and verify on the guest with openssl against the
# certificate read from the card, which must chain to the test CA.
sign_with() {  # sign_with ID
    id=$1
    p11 --read-object --type cert --id "$id" -o "/tmp/cert-$id.der" \
        > "/tmp/sign-$id.txt" 2>&1 || return 1
    openssl x509 -inform DER -in "/tmp/cert-$id.der" -out "/tmp/cert-$id.pem" || return 1
    [ -f /tmp/ca.pem ] ||
        openssl x509 -inform DER -in /scenario/ca.cer -out /tmp/ca.pem || return 1
    openssl verify -CAfile /tmp/ca.pem "/tmp/cert-$id.pem" \
        >> "/tmp/sign-$id.txt" 2>&1 || return 1
    openssl x509 -in "/tmp/cert-$id.pem" -pubkey -noout > "/tmp/pub-$id.pem" || return 1
    echo "vccid guest test $id $(date +%s)" > /tmp/data
    p11 --login --pin "$PIN" --sign --id "$id" -m SHA256-RSA-PKCS \
        -i /tmp/data -o "/tmp/sig-$id" >> "/tmp/sign-$id.txt" 2>&1 || return 1
    openssl dgst -sha256 -verify "/tmp/pub-$id.pem" -signature "/tmp/sig-$id" \
        /tmp/data >> "/tmp/sign-$id.txt" 2>&1
}

# sign_with each key id; those that passed in $ok, those that failed in $bad.
sign_each() {  # sign_each ID...
    ok="" bad=""
    for id in "$@"; do
        if sign_with "$id"; then
            ok="$ok $id"
        else
            bad="$bad $id"
        fi
        show SIGN "/tmp/sign-$id.txt"
    done
}

check_sign() {
    ids=$(awk '/^Private Key Object/{k=1} k && /ID:/{print $2; k=0}' /tmp/objects.txt)
    sign_each $ids
    if [ -n "$ok" ] && [ -z "$bad" ]; then
        result sign_verify pass "verified key ids:$ok"
    else
        result sign_verify fail "verified:${ok:- none} failed:${bad:- none}"
    fi
}

# A PKCS#11 token lent as the card (scenarios token*: SoftHSM2 on the host).
# /scenario/token.cer is the certificate certutil made on the token; TOKEN_PIN
# is the token's user PIN, WRONG_PIN one it must refuse.
check_token() {
    p11 --login --pin "$WRONG_PIN" --list-objects > /tmp/wrong-pin.txt 2>&1
    rc_wrong=$?
    show WRONG-PIN /tmp/wrong-pin.txt
    why=$(grep -m1 -E 'error|CKR_' /tmp/wrong-pin.txt)
    if [ $rc_wrong -ne 0 ] && ! grep -q '^Private Key Object' /tmp/wrong-pin.txt; then
        result token_wrong_pin pass "refused: rc=$rc_wrong $why"
    else
        result token_wrong_pin fail "a wrong PIN was accepted: rc=$rc_wrong"
    fi
    p11 --login --pin "$TOKEN_PIN" --list-objects > /tmp/objects.txt 2>&1
    rc=$?
    show OPENSC /tmp/objects.txt
    certs=$(grep -c '^Certificate Object' /tmp/objects.txt)
    keys=$(grep -c '^Private Key Object' /tmp/objects.txt)
    id=$(awk '/^Certificate Object/{k=1} k && /ID:/{print $2; exit}' /tmp/objects.txt)
    if [ $rc -eq 0 ] && [ "$certs" -eq 1 ] && [ "$keys" -eq 1 ] &&
        p11 --read-object --type cert --id "$id" -o /tmp/token.der > /dev/null 2>&1 &&
        cmp -s /tmp/token.der /scenario/token.cer; then
        result token_certificate pass "certificates=$certs private_keys=$keys id=$id:"             "the token's certificate, byte for byte"
    else
        result token_certificate fail "rc=$rc certificates=$certs private_keys=$keys"             "id=${id:-none} same_as_token=$(cmp -s /tmp/token.der /scenario/token.cer &&
            echo yes || echo no)"
    fi
}

# Sign with the token's key after its PIN; openssl verifies with the public
# key of the certificate made on the host.
check_token_sign() {
    id=$(awk '/^Private Key Object/{k=1} k && /ID:/{print $2; exit}' /tmp/objects.txt)
    openssl x509 -inform DER -in /scenario/token.cer -pubkey -noout > /tmp/token-pub.pem
    echo "vccid token test $(date +%s)" > /tmp/data
    p11 --login --pin "$TOKEN_PIN" --sign --id "${id:-none}" -m SHA256-RSA-PKCS \
        -i /tmp/data -o /tmp/token-sig > /tmp/token-sign.txt 2>&1 &&
    openssl dgst -sha256 -verify /tmp/token-pub.pem -signature /tmp/token-sig \
        /tmp/data >> /tmp/token-sign.txt 2>&1
    rc=$?
    show SIGN /tmp/token-sign.txt
    if [ $rc -eq 0 ]; then
        result token_sign_verify pass "key id $id signed, openssl verified"
    else
        result token_sign_verify fail "key id ${id:-none}: rc=$rc"
    fi
}

check_sweep() {
    apdu-bench sweep > /tmp/sweep.txt 2>&1
    rc=$?
    show SWEEP /tmp/sweep.txt
    summary=$(grep '^sweep_ok' /tmp/sweep.txt)
    if [ $rc -eq 0 ]; then
        result response_lengths pass "$summary"
    else
        result response_lengths fail "$summary $(grep -E '^(SWEEP-FAILED|error)' \
            /tmp/sweep.txt | head -n3 | tr '\n' ' ')"
    fi
}

# libccid and pcscd log transport trouble at error level; in debug mode
# every line carries the source location, so match the known messages.
# GET_FIRMWARE_FEATURES is a Gemalto escape command that libccid tries on
# any reader with Gemalto's USB ids (as QEMU's and vccid's have); an
# emulated reader refusing it is expected, not a communication error.
check_pcscd_log() {
    [ "${PCSCD_DEBUG:-1}" = 1 ] || return 0
    grep -nE 'LIBUSB_ERROR|ReadUSB|WriteUSB|Duplicate frame|bSeq|IFD_COMMUNICATION_ERROR|Card not transacted|not answering|reader is unresponsive|Protocol error|cannot|failed' \
        "$PCSCD_LOG" | grep -v 'GET_FIRMWARE_FEATURES failed' \
        > /tmp/pcscd-errors.txt
    n=$(wc -l < /tmp/pcscd-errors.txt)
    if [ "$n" -eq 0 ]; then
        result pcscd_log pass "no communication errors in $(wc -l < "$PCSCD_LOG") lines"
    else
        show PCSCD-ERR /tmp/pcscd-errors.txt
        result pcscd_log fail "$n error lines, first: $(head -n1 /tmp/pcscd-errors.txt)"
    fi
}

# Resets the checks themselves asked for are not errors.
EXPECTED_KERNEL_LINES='^$'

# The check NAME passes if FILE (dmesg lines it picked) is empty, else shows them.
result_dmesg_lines() {  # result_dmesg_lines NAME TAG FILE WHAT
    n=$(wc -l < "$3")
    if [ "$n" -eq 0 ]; then
        result "$1" pass "no $4 in dmesg"
    else
        show "$2" "$3"
        result "$1" fail "$n lines, first: $(head -n1 "$3")"
    fi
}

check_kernel_log() {
    dmesg | grep -iE 'usb.*(error|fail|timeout|reset|disabled|not accepting)' |
        grep -vE "$EXPECTED_KERNEL_LINES" > /tmp/usb-errors.txt
    result_dmesg_lines kernel_log DMESG-ERR /tmp/usb-errors.txt "USB errors"
}

check_bench() {
    apdu-bench bench -n "${BENCH_N:-500}" > /tmp/bench.txt 2>&1
    rc=$?
    show BENCH /tmp/bench.txt
    if [ $rc -eq 0 ]; then
        echo "METRIC $(grep '^apdus=' /tmp/bench.txt) $(grep '^cert_bytes=' /tmp/bench.txt)"
        result bench pass "$(grep '^apdus=' /tmp/bench.txt)"
    else
        result bench fail "$(tr '\n' ' ' < /tmp/bench.txt)"
    fi
}

# Diagnostic (not in the default lists): a usbmon trace of a few SELECTs,
# printed on the console, to see where an exchange spends its time.
check_usbmon() {
    bus=$(basename "$(find_device)" | cut -d- -f1)
    cat "/sys/kernel/debug/usb/usbmon/${bus}u" > /tmp/usbmon.txt &
    mon=$!
    sleep 0.5
    apdu-bench bench -n 20 > /tmp/bench.txt 2>&1
    rc=$?
    sleep 0.2
    kill $mon
    show USBMON /tmp/usbmon.txt
    result usbmon "$([ $rc -eq 0 ] && echo pass || echo fail)" \
        "$(wc -l < /tmp/usbmon.txt) usbmon lines on bus $bus"
}

# The host resets the whole machine (QMP system_reset) the first time it
# reads this; SeaBIOS and then Linux enumerate the reader again on the new
# boot, which runs every check again. The second time the host answers
# "continue" on the console instead.
check_system_reset() {
    echo "HOST-ACTION system-reset"
    reply=""
    while read -t 30 line; do
        case $line in *continue*) reply=continue; break ;; esac
    done
    if [ "$reply" = continue ]; then
        result system_reset pass "this boot follows the host's system_reset"
    else
        result system_reset fail "neither a reset nor an answer from the host"
    fi
}

# ---- ccid-card-piv (scenario piv): OpenSC's PIV driver, yubico-piv-tool ----
# OpenSC's PIV driver gives 9A, 9C, 9D the key ids 01, 02, 03.

check_piv_opensc() {
    opensc-tool --name > /tmp/name.txt 2>&1
    show OPENSC /tmp/name.txt
    piv-tool --serial > /tmp/serial.txt 2>&1
    show OPENSC /tmp/serial.txt
    list_objects
    # The last line is the driver's card name (the first may name the reader).
    name=$(tail -n1 /tmp/name.txt)
    if [ $rc -eq 0 ] && [ "$certs" -eq 3 ] && [ "$keys" -eq 3 ] &&
       [ "$name" = "Personal Identity Verification Card" ]; then
        result piv_opensc pass "card=\"$name\" certificates=$certs private_keys=$keys" \
            "serial=\"$(tail -n1 /tmp/serial.txt)\""
    else
        result piv_opensc fail "rc=$rc card=\"$name\" certificates=$certs private_keys=$keys"
    fi
}

check_piv_sign() {
    sign_each 01 02
    if [ -z "$bad" ]; then
        result piv_sign pass "signed and verified with key ids:$ok (9A, 9C)"
    else
        result piv_sign fail "verified:${ok:- none} failed:${bad:- none}"
    fi
}

# openssl encrypts to 9D's certificate; the card decrypts.
check_piv_decipher() {
    log=/tmp/decipher.txt
    echo "a secret for slot 9D $(date +%s)" > /tmp/secret
    if p11 --read-object --type cert --id 03 -o /tmp/cert-03.der > $log 2>&1 &&
       openssl x509 -inform DER -in /tmp/cert-03.der -pubkey -noout > /tmp/pub-03.pem &&
       openssl pkeyutl -encrypt -pubin -inkey /tmp/pub-03.pem -in /tmp/secret \
           -out /tmp/secret.enc >> $log 2>&1 &&
       p11 --login --pin "$PIN" --decrypt --id 03 -m RSA-PKCS -i /tmp/secret.enc \
           -o /tmp/secret.dec >> $log 2>&1 &&
       cmp /tmp/secret /tmp/secret.dec >> $log 2>&1; then
        show DECIPHER $log
        result piv_decipher pass "9D decrypted what openssl encrypted ($(wc -c < /tmp/secret) bytes)"
    else
        show DECIPHER $log
        result piv_decipher fail "$(tail -n2 $log | tr '\n' ' ')"
    fi
}

# Scenario piv-ec: OpenSC signs with the P-256 keys of 9A and 9C (the card
# answers a DER Ecdsa-Sig-Value; OpenSC converts it) and openssl verifies;
# OpenSC derives an ECDH secret with 9D that openssl derives too.
check_piv_ec() {
    log=/tmp/ec.txt
    failed=""
    : > $log
    echo "vccid guest ECC test $(date +%s)" > /tmp/data
    for id in 01 02; do
        { p11 --read-object --type cert --id $id -o /tmp/cert-$id.der &&
          openssl x509 -inform DER -in /tmp/cert-$id.der -pubkey -noout > /tmp/pub-$id.pem &&
          p11 --login --pin "$PIN" --sign --id $id -m ECDSA-SHA256 \
              --signature-format openssl -i /tmp/data -o /tmp/sig-$id &&
          openssl dgst -sha256 -verify /tmp/pub-$id.pem -signature /tmp/sig-$id /tmp/data
        } >> $log 2>&1 || failed="$failed ecdsa-$id"
    done
    { p11 --read-object --type cert --id 03 -o /tmp/cert-03.der &&
      openssl x509 -inform DER -in /tmp/cert-03.der -pubkey -noout > /tmp/pub-03.pem &&
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out /tmp/eph.pem &&
      openssl pkey -in /tmp/eph.pem -pubout -outform DER -out /tmp/eph.der &&
      openssl pkeyutl -derive -inkey /tmp/eph.pem -peerkey /tmp/pub-03.pem \
          -out /tmp/z-openssl &&
      p11 --login --pin "$PIN" --derive --id 03 -m ECDH1-DERIVE -i /tmp/eph.der \
          -o /tmp/z-card &&
      cmp /tmp/z-openssl /tmp/z-card
    } >> $log 2>&1 || failed="$failed ecdh-03"
    show EC $log
    if [ -z "$failed" ]; then
        result piv_ec pass "ECDSA-SHA256 with 9A and 9C verified by openssl;" \
            "ECDH with 9D equals openssl's ($(wc -c < /tmp/z-card) bytes)"
    else
        result piv_ec fail "failed:$failed"
    fi
}

ykpiv() {
    yubico-piv-tool -r "$reader" "$@"
}

check_piv_yubico() {
    log=/tmp/yubico.txt
    failed=""
    ykpiv -a status > $log 2>&1 || failed="$failed status"
    ykpiv -a read-certificate -s 9a -o /tmp/yk-9a.pem >> $log 2>&1 || failed="$failed read"
    openssl x509 -inform DER -in /tmp/cert-01.der -out /tmp/p11-9a.pem 2>> $log
    cmp /tmp/yk-9a.pem /tmp/p11-9a.pem >> $log 2>&1 || failed="$failed read-compare"
    ykpiv -a read-certificate -s 9d -o /tmp/yk-9d.pem >> $log 2>&1 || failed="$failed read-9d"
    ykpiv -a verify-pin -P "$PIN" >> $log 2>&1 || failed="$failed verify-pin"
    ykpiv -a verify-pin -P "$PIN" -a test-signature -s 9a -i /tmp/yk-9a.pem >> $log 2>&1 ||
        failed="$failed test-signature"
    ykpiv -a verify-pin -P "$PIN" -a test-decipher -s 9d -i /tmp/yk-9d.pem >> $log 2>&1 ||
        failed="$failed test-decipher"
    show YUBICO $log
    if [ -z "$failed" ]; then
        result piv_yubico pass "status, read-certificate 9a (same as OpenSC's), verify-pin," \
            "test-signature 9a, test-decipher 9d"
    else
        result piv_yubico fail "failed:$failed"
    fi
}

# Wrong PINs: the counter the clients report goes down, then the PIN blocks
# (until vccid restarts: the card has no PUK).
check_piv_pin_block() {
    log=/tmp/pin.txt
    ykpiv -a verify-pin -P 000000 > $log 2>&1
    first=$(grep -o '[0-9]* tries left' $log | head -n1)
    p11 --login --pin 000000 --list-objects >> $log 2>&1
    p11 --list-token-slots > /tmp/slots-low.txt 2>&1
    show PIN /tmp/slots-low.txt
    ykpiv -a verify-pin -P 000000 >> $log 2>&1
    ykpiv -a verify-pin -P "$PIN" >> $log 2>&1
    right_rc=$?
    show PIN $log
    if [ "$first" = "2 tries left" ] && grep -q 'blocked' $log && [ $right_rc -ne 0 ] &&
       grep -q 'final user PIN try' /tmp/slots-low.txt; then
        result piv_pin_block pass "yubico-piv-tool: $first; after one more wrong PIN" \
            "OpenSC's token flags say 'final user PIN try'; after the third the PIN is" \
            "blocked and the right one is refused"
    else
        result piv_pin_block fail "first=\"$first\" right_pin_after_block_rc=$right_rc" \
            "$(tail -n3 $log | tr '\n' ' ')"
    fi
}

# USB/IP (vccid's -export usbip): the guest's own usbip tool and vhci-hcd.
usbip_cmd() {
    usbip --tcp-port "$USBIP_PORT" "$@"
}

usbip_attach() {  # usbip_attach BUSID OUTPUT-FILE
    usbip_cmd attach -r "$USBIP_HOST" -b "$1" > "$2" 2>&1
}

# Run COMMAND every 0.2 s until it succeeds or has failed TRIES more times;
# $polls says how many times it failed.
poll() {  # poll TRIES COMMAND...
    tries=$1
    shift
    polls=0
    until "$@"; do
        [ $polls -ge "$tries" ] && return 1
        sleep 0.2
        polls=$((polls + 1))
    done
}

device_present() {
    find_device > /dev/null
}

# Wait until the reader is gone from the USB bus (after a detach); 0 if it is.
wait_device_gone() {
    i=0
    while find_device > /dev/null && [ $i -lt 100 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    ! find_device > /dev/null
}

check_usbip_list() {
    usbip_cmd list -r "$USBIP_HOST" > /tmp/usbip-list.txt 2>&1
    rc=$?
    show USBIP-LIST /tmp/usbip-list.txt
    if [ $rc -eq 0 ] && grep -q "1-1:.*($EXPECT_VID:$EXPECT_PID)" /tmp/usbip-list.txt &&
       grep -q '(0b/00/00)' /tmp/usbip-list.txt; then
        result usbip_list pass "1-1 is $EXPECT_VID:$EXPECT_PID with a CCID interface (0b/00/00)"
    else
        result usbip_list fail "rc=$rc: $(tr '\n' ' ' < /tmp/usbip-list.txt | cut -c1-200)"
    fi
}

check_usbip_attach() {
    if usbip_attach 1-1 /tmp/usbip-attach.txt; then
        result usbip_attach pass "usbip attach -r $USBIP_HOST -b 1-1"
    else
        show USBIP-ATTACH /tmp/usbip-attach.txt
        result usbip_attach fail "$(tr '\n' ' ' < /tmp/usbip-attach.txt)"
    fi
}

# While the reader is attached here, a second import of 1-1 is refused and
# the first keeps working.
check_usbip_second() {
    if usbip_attach 1-1 /tmp/usbip-second.txt; then
        result usbip_second fail "a second attach of 1-1 succeeded"
        return
    fi
    show USBIP-SECOND /tmp/usbip-second.txt
    if apdu-bench atr > /tmp/usbip-second-atr.txt 2>&1; then
        result usbip_second pass "refused ($(grep . /tmp/usbip-second.txt | tail -n1));" \
            "the first still works"
    else
        result usbip_second fail "refused, but the first import stopped working"
    fi
}

# Detach (the device leaves the guest's bus), attach again, and the reader
# and card work again.
check_usbip_reattach() {
    port=$(usbip port 2>/dev/null | sed -n 's/^Port \([0-9]*\):.*/\1/p' | head -n1)
    stop_pcscd
    if ! usbip detach -p "${port:-0}" > /tmp/usbip-detach.txt 2>&1; then
        show USBIP-DETACH /tmp/usbip-detach.txt
        result usbip_reattach fail "usbip detach -p ${port:-0} failed"
        return
    fi
    if ! wait_device_gone; then
        result usbip_reattach fail "the reader stayed after usbip detach"
        return
    fi
    if ! usbip_attach 1-1 /tmp/usbip-attach2.txt; then
        show USBIP-ATTACH /tmp/usbip-attach2.txt
        result usbip_reattach fail "the second attach failed"
        return
    fi
    poll 100 device_present
    sleep 0.5
    reader_works_again usbip_reattach "detached, attached again"
}

# vccid goes away while the reader is attached (the host restarts it on
# HOST-ACTION vccid-restart): the device leaves, and a new attach to the new
# vccid works.
check_usbip_restart() {
    stop_pcscd
    echo "HOST-ACTION vccid-restart"
    if ! wait_device_gone; then
        result usbip_restart fail "the reader stayed after vccid stopped"
        return
    fi
    poll 75 usbip_attach 1-1 /tmp/usbip-restart.txt
    attach_ms=$((polls * 200))
    poll 100 device_present
    if ! device_present; then
        show USBIP-RESTART /tmp/usbip-restart.txt
        result usbip_restart fail "no reader after attaching to the new vccid"
        return
    fi
    sleep 0.5
    reader_works_again usbip_restart "gone with vccid; attached to the new one after $attach_ms ms"
}

# Two readers exported (1-1 and 1-2), both attached and used at once.
check_usbip_two() {
    for b in 1-1 1-2; do
        if ! usbip_attach $b /tmp/usbip-two.txt; then
            show USBIP-TWO /tmp/usbip-two.txt
            result usbip_two fail "attach $b failed"
            return
        fi
    done
    i=0
    while [ "$(grep -ls "$EXPECT_VID" /sys/bus/usb/devices/*/idVendor | wc -l)" -lt 2 ] &&
          [ $i -lt 100 ]; do
        sleep 0.2
        i=$((i + 1))
    done
    sleep 0.5
    start_pcscd
    apdu-bench list -w 20 > /tmp/usbip-two-list.txt 2>&1
    ok=0
    for r in 0 1; do
        opensc-tool -r $r -a > /tmp/usbip-two-atr$r.txt 2>&1 &&
            grep -qi "$(echo "$EXPECT_ATR" | sed 's/../&:/g; s/:$//')" /tmp/usbip-two-atr$r.txt &&
            ok=$((ok + 1))
        show "USBIP-TWO-$r" /tmp/usbip-two-atr$r.txt
    done
    n=$(grep -c '^READER' /tmp/usbip-two-list.txt)
    if [ "$n" -eq 2 ] && [ $ok -eq 2 ]; then
        result usbip_two pass "1-1 and 1-2 attached; pcscd lists 2 readers; both cards answer"
    else
        show USBIP-TWO-LIST /tmp/usbip-two-list.txt
        result usbip_two fail "$n readers listed, $ok of 2 cards answered"
    fi
}

# vhci-hcd says so when the device side breaks the protocol (an unknown
# seqnum, a reset of the connection).
check_usbip_kernel_log() {
    dmesg | grep -iE 'vhci|usbip' | grep -iE 'cannot|error|fail|invalid|unknown' \
        > /tmp/usbip-errors.txt
    result_dmesg_lines usbip_kernel_log DMESG-USBIP /tmp/usbip-errors.txt "vhci/usbip errors"
}

# Diagnostics: a usbmon trace around other checks
# (--checks "... usbmon_start card_events usbmon_stop").
check_usbmon_start() {
    bus=$(basename "$(find_device)" | cut -d- -f1)
    cat "/sys/kernel/debug/usb/usbmon/${bus}u" > /tmp/usbmon-bg.txt &
    USBMON_PID=$!
}

check_usbmon_stop() {
    sleep 0.2
    kill "$USBMON_PID"
    show USBMON /tmp/usbmon-bg.txt
}

for c in $CHECKS; do
    if [ "${no_device:-0}" = 1 ]; then
        # Without the device every later check fails; say so quickly.
        result "$c" fail "not run: the reader never appeared on the USB bus"
        continue
    fi
    "check_$c"
done

if [ $failures -gt 0 ]; then
    [ -f "$PCSCD_LOG" ] && tail -n 150 "$PCSCD_LOG" | sed 's/^/PCSCD /'
    dmesg | tail -n 40 | sed 's/^/DMESG /'
fi
[ -n "${PCSCD_PID:-}" ] && kill "$PCSCD_PID" 2>/dev/null
exit $failures
