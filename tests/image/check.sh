#!/usr/bin/env bash
# End-to-end checks of the svtpm image under QEMU TCG (about 80 seconds).
#
#   tests/image/check.sh IMAGE [OVMF] [KERNEL]
#
# IMAGE   target/x86_64-unknown-none/release/svtpm
# OVMF    guest firmware (default /usr/share/ovmf/OVMF.fd)
# KERNEL  EFI-stub Linux kernel for the Linux check (default: the newest
#         /boot/vmlinuz-*; the check is skipped if there is none)
#
# Each check runs QEMU through run-qemu.sh with a time limit, keeps its
# serial log in $SVTPM_CHECK_LOGS (default /tmp/svtpm-image-check) and
# asserts on it. Prints "N passed, N failed" and exits non-zero on failure.
# The boots with a guest use the in-memory TPM (svtpm.state=ephemeral): the
# attested boot needs the key broker and svtpm-proxy, which `cargo xtask
# test` starts for its own attested steps.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
image=${1:?usage: check.sh IMAGE [OVMF] [KERNEL]}
ovmf=${2:-/usr/share/ovmf/OVMF.fd}
kernel=${3:-$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)}
logs=${SVTPM_CHECK_LOGS:-/tmp/svtpm-image-check}
mkdir -p "$logs"
passed=0
failed=0
# The guest ends a run by writing 0x10 to isa-debug-exit: QEMU exits 33.
guest_exit='mm F4 10 -w 1 -IO -n'

# run NAME SECONDS ARGS...: runs QEMU, leaves the log in $logs/NAME.log
# and the exit status in $status.
run() {
    local name=$1 secs=$2
    shift 2
    timeout "$secs" "$here/run-qemu.sh" "$@" > "$logs/$name.log" 2>&1
    status=$?
}

# verdict NAME CONDITION-DESCRIPTION RESULT
verdict() {
    if [ "$3" = 0 ]; then
        echo "ok   $1: $2"
        passed=$((passed + 1))
    else
        echo "FAIL $1: $2 (log: $logs/$1.log)"
        failed=$((failed + 1))
    fi
}

has() { grep -q -- "$2" "$logs/$1.log"; }

# 1. The engine self-test, no guest.
run selftest 180 "$image"
r=1
[ "$status" = 33 ] && has selftest "all commands succeeded" && has selftest "ReadClock -> rc 0x0" && r=0
verdict selftest "engine commands succeed, QEMU exits 33" $r

# 1b. The failure paths: an exception and a panic are reported, QEMU exits 35.
run fault 60 "$image" - -append svtpm.mode=fault
r=1
[ "$status" = 35 ] && has fault "exception 6 error 0x0 at rip" && has fault "rax 0x" && r=0
verdict fault "#UD is reported with registers on its IST stack, QEMU exits 35" $r
run panic 60 "$image" - -append svtpm.mode=panic
r=1
[ "$status" = 35 ] && has panic "svtpm: panic: panicked at" && has panic "^svtpm.mode=panic" && r=0
verdict panic "a panic is reported, QEMU exits 35" $r

# 2. OVMF through TIS; the guest writes svtpm's memory, reads it back and
# sees all-ones (the image's code starts at 4 GiB: a real read would not).
# The host channel's pc-dimm is attached too, backed by a file of 0xA5
# bytes: the guest must neither see nor change it (the image leaves it
# alone on the in-memory TPM, so any change would be the guest's).
esp=$logs/esp-isolation
chan=$logs/isolation-hostchan.mem
head -c 2097152 /dev/zero | tr '\0' '\245' > "$chan"
chan_before=$(sha256sum < "$chan")
"$here/make-esp.sh" "$esp" -- \
    'mm 100000000 5A -w 1 -n' 'mm 100200008 0123456789ABCDEF -w 8 -n' \
    'mm 104000000 5A -w 1 -n' 'mm 104001008 0123456789ABCDEF -w 8 -n' \
    'echo svtpm-check: dmem begin' 'dmem 100000000 40' 'dmem 100200000 40' \
    'dmem 104000000 40' 'dmem 104001000 40' 'dmem 1041FFFC0 40' \
    'echo svtpm-check: dmem end' "$guest_exit"
SVTPM_HOSTCHAN=$chan run ovmf-tis 240 "$image" "$ovmf" -net none \
    -drive "file=fat:rw:$esp,format=raw,if=ide" -append svtpm.state=ephemeral
r=1
if [ "$status" = 33 ] && has ovmf-tis "guest sees it through Tis" &&
    has ovmf-tis "TPM command 0x144 at locality 0: 12 bytes -> rc 0x0" &&
    has ovmf-tis "TPM command 0x182 .* -> rc 0x0"; then
    r=0
fi
verdict ovmf-tis "OVMF runs Startup and PCR_Extend through TIS, reaches its shell" $r
# Every dumped line of svtpm's slot must read FF, and there must be dumped lines.
dump=$(sed -n '/svtpm-check: dmem begin/,/svtpm-check: dmem end/p' "$logs/ovmf-tis.log" |
    grep -E '^ +[0-9A-F]{8}: ')
dump_lines=$(printf '%s\n' "$dump" | grep -c .)
# non_ff=1 when some dumped byte is not FF. grep reads everything (no -q):
# under pipefail an early exit could fail the pipeline with SIGPIPE.
non_ff=1
printf '%s\n' "$dump" | sed 's/\*.*//' | cut -d: -f2- |
    grep -E '[0-9A-E][0-9A-F]|[0-9A-F][0-9A-E]' >/dev/null || non_ff=0
r=1
[ "$dump_lines" -ge 8 ] && [ "$non_ff" = 0 ] && r=0
verdict isolation "the guest's writes to svtpm's memory vanish and its reads see all-ones" $r
# The channel's three dumps (12 lines) come after svtpm's two (8 lines).
r=1
if [ "$dump_lines" -ge 20 ] && [ "$non_ff" = 0 ] &&
    [ "$(sha256sum < "$chan")" = "$chan_before" ]; then
    r=0
fi
verdict isolation-hostchan "the host channel (0x104000000) reads all-ones to the guest and its writes leave the shared file unchanged" $r

# 3. OVMF through CRB.
esp=$logs/esp-exit
"$here/make-esp.sh" "$esp" -- "$guest_exit"
run ovmf-crb 240 "$image" "$ovmf" -net none -drive "file=fat:rw:$esp,format=raw,if=ide" \
    -append "svtpm.interface=crb svtpm.state=ephemeral"
r=1
if [ "$status" = 33 ] && has ovmf-crb "guest sees it through Crb" &&
    has ovmf-crb "TPM command 0x144 at locality 0: 12 bytes -> rc 0x0" &&
    has ovmf-crb "TPM command 0x182 .* -> rc 0x0"; then
    r=0
fi
verdict ovmf-crb "OVMF runs Startup and PCR_Extend through CRB" $r

# 4. Linux binds tpm_tis (forced: there are no TPM ACPI tables).
if [ -n "$kernel" ] && [ -r "$kernel" ]; then
    esp=$logs/esp-linux
    "$here/make-esp.sh" "$esp" "$kernel" -- \
        '\vmlinuz console=ttyS0 tpm_tis.force=1 tpm_tis.interrupts=0 memhp_default_state=offline panic=-1'
    run linux-tis 300 "$image" "$ovmf" -net none -drive "file=fat:rw:$esp,format=raw,if=ide" \
        -append svtpm.state=ephemeral
    r=1
    has linux-tis "tpm_tis tpm_tis: 2.0 TPM (device-id 0x5356, rev-id 1)" && r=0
    verdict linux-tis "Linux tpm_tis binds the emulated TPM" $r
else
    echo "skip linux-tis: no kernel"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
