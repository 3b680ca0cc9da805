#!/bin/sh
# svtpm-check: exercises the guest's TPM through the kernel's own driver with
# tpm2-tools and prints one line per check on the console:
#
#   SVTPM-CHECK <name> ok [detail]
#   SVTPM-CHECK <name> FAIL [reason]
#   SVTPM-CHECK done pass=<N> fail=<M>
#
# Lines starting with "svtpm-check:" are information only. Run by /init of
# the svtpm guest initramfs (busybox sh); `cargo xtask run` and
# `cargo xtask test` parse the SVTPM-CHECK lines (docs/guest.md), and the
# persistence section's
#
#   SVTPM-PERSIST wrote|read <hex> ek=<sha256 of the EK public area>
#
# which the attested boots compare across boots of the same vTPM.

export TPM2TOOLS_TCTI=device:/dev/tpmrm0
W=/tmp/svtpm-check
LOG=/sys/kernel/security/tpm0/binary_bios_measurements
# The PCRs the sealing test binds its secret to: boot PCRs that OVMF
# extends (tpm2_createpolicy takes at most 8 PCRs, so PCR 6, which only
# holds a separator, is left out) and the resettable debug PCR, which the
# test extends to break the policy.
SEAL_PCRS=0,1,2,3,4,5,7
DEBUG_PCR=23
mkdir -p "$W"
pass=0
fail=0

ok() {
    echo "SVTPM-CHECK $1 ok${2:+ $2}"
    pass=$((pass + 1))
}

bad() {
    echo "SVTPM-CHECK $1 FAIL${2:+ $2}"
    fail=$((fail + 1))
}

# Prints the last lines of a tool's output, so a failure explains itself.
show() {
    [ -s "$1" ] && tail -n 5 "$1" | sed 's/^/svtpm-check:   /'
}

# "<bank> <pcr> <hex digest>" lines from tpm2_pcrread or the "pcrs:" section
# of tpm2_eventlog (both YAML: "  sha256:" then "    0 : 0xABCD...").
pcr_table() {
    awk -v from="$2" '
        from == "eventlog" && /^pcrs:/ { on = 1; next }
        from == "eventlog" && !on { next }
        from == "eventlog" && /^[^ ]/ { on = 0; next }
        /^  [a-z0-9]+:$/ { bank = $1; sub(":", "", bank); next }
        /^    [0-9]+ *: 0x[0-9A-Fa-f]+$/ {
            n = $1; sub(":", "", n); v = $NF; sub("0x", "", v)
            print bank, n, tolower(v)
        }' "$1"
}

# --- the device and its driver -------------------------------------------
dev=/sys/class/tpm/tpm0
if [ -e "$dev/device/driver" ] && [ -c /dev/tpm0 ] && [ -c /dev/tpmrm0 ]; then
    driver=$(basename "$(readlink "$dev/device/driver")")
    major=$(cat "$dev/tpm_version_major" 2>/dev/null)
    echo "svtpm-check: tpm0 is $(readlink -f "$dev/device"), driver $driver"
    if [ "$major" = 2 ]; then
        ok "driver=$driver" "tpm0 is a TPM 2.0"
    else
        bad "driver=$driver" "tpm_version_major is '$major', not 2"
    fi
else
    bad "driver=none" "no TPM bound: /sys/class/tpm/tpm0 or /dev/tpmrm0 missing"
    dmesg | grep -i tpm | tail -n 10 | sed 's/^/svtpm-check:   /'
    echo "SVTPM-CHECK done pass=$pass fail=$fail"
    exit 1
fi

# --- random numbers ------------------------------------------------------
if tpm2_getrandom --hex 32 >"$W/r1" 2>"$W/err" &&
    tpm2_getrandom --hex 32 >"$W/r2" 2>>"$W/err"; then
    r1=$(cat "$W/r1")
    r2=$(cat "$W/r2")
    if [ ${#r1} -eq 64 ] && [ "$r1" != "$r2" ] &&
        [ "$r1" != 0000000000000000000000000000000000000000000000000000000000000000 ]; then
        ok getrandom "$r1"
    else
        bad getrandom "implausible output: '$r1' then '$r2'"
    fi
else
    bad getrandom "tpm2_getrandom failed"
    show "$W/err"
fi

# --- PCRs ------------------------------------------------------------------
if tpm2_pcrread >"$W/pcrs.yaml" 2>"$W/err"; then
    pcr_table "$W/pcrs.yaml" pcrread >"$W/pcrs"
    banks=$(cut -d' ' -f1 "$W/pcrs" | uniq | tr '\n' ' ')
    echo "svtpm-check: PCR banks: $banks"
    grep -E '^sha256 [0-7] ' "$W/pcrs" | sed 's/^/svtpm-check: PCR /'
    # Every one of PCR 0-7 of sha256 must have been extended: neither the
    # reset value (zeros) nor the "not extendable" value (ones).
    unset_pcrs=$(awk '$1 == "sha256" && $2 <= 7 && ($3 ~ /^0+$/ || $3 ~ /^f+$/) { printf "%s ", $2 }' "$W/pcrs")
    have=$(awk '$1 == "sha256" && $2 <= 7' "$W/pcrs" | wc -l)
    if [ "$have" -eq 8 ] && [ -z "$unset_pcrs" ]; then
        ok pcrread "sha256 PCR 0-7 extended; banks: $banks"
    else
        bad pcrread "sha256 PCR 0-7: $have read, not extended: ${unset_pcrs:-none}"
    fi
else
    bad pcrread "tpm2_pcrread failed"
    show "$W/err"
fi

# --- the firmware's event log, replayed against the PCRs -----------------
if [ ! -r "$LOG" ]; then
    bad eventlog "$LOG is missing"
elif tpm2_eventlog "$LOG" >"$W/log.yaml" 2>"$W/err"; then
    events=$(grep -c '^- EventNum:' "$W/log.yaml")
    # Each of PCR 0-7 must carry at least one measurement (OVMF extends a
    # separator into every one of them).
    missing=""
    for i in 0 1 2 3 4 5 6 7; do
        grep -q "^  PCRIndex: $i\$" "$W/log.yaml" || missing="$missing$i "
    done
    crtm=$(grep -cE 'EventType: EV_(S_CRTM_VERSION|EFI_PLATFORM_FIRMWARE_BLOB)' "$W/log.yaml")
    if [ -z "$missing" ] && [ "$crtm" -gt 0 ]; then
        ok eventlog "$events events; PCR 0 has $crtm CRTM/firmware measurements"
    else
        bad eventlog "$events events; PCRs without events: ${missing:-none}; CRTM/firmware events: $crtm"
    fi
    pcr_table "$W/log.yaml" eventlog >"$W/replay"
    # Compare every PCR the log replays with the TPM's value, bank by bank.
    for bank in $(cut -d' ' -f1 "$W/replay" | uniq); do
        result=$(awk -v bank="$bank" '
            FNR == NR { if ($1 == bank) tpm[$2] = $3; next }
            $1 != bank { next }
            {
                n++; list = list $2 " "
                if (!($2 in tpm)) { bad = bad "PCR" $2 "(not read) " }
                else if (tpm[$2] != $3) { bad = bad "PCR" $2 " "; print "svtpm-check:   " bank " PCR " $2 " replay " $3 " tpm " tpm[$2] > "/dev/stderr" }
            }
            END {
                boot = 0
                for (i = 0; i <= 7; i++) if (index(" " list, " " i " ")) boot++
                sub(/ $/, "", list)
                printf "%d|%d|%s|%s\n", n, boot, list, bad
            }' "$W/pcrs" "$W/replay")
        n=${result%%|*}
        rest=${result#*|}
        boot=${rest%%|*}
        rest=${rest#*|}
        list=${rest%%|*}
        mismatch=${rest#*|}
        if [ ! -s "$W/pcrs" ] || [ "$n" -eq 0 ]; then
            bad "eventlog-replay:$bank" "nothing to compare (no PCR values read)"
        elif [ -n "$mismatch" ]; then
            bad "eventlog-replay:$bank" "mismatch: $mismatch"
        elif [ "$bank" = sha256 ] && [ "$boot" -ne 8 ]; then
            bad "eventlog-replay:$bank" "the log replays only $boot of PCR 0-7"
        else
            ok "eventlog-replay:$bank" "PCRs $list match"
        fi
    done
    grep -q '^sha256 ' "$W/replay" || bad eventlog-replay:sha256 "the log has no sha256 digests"
    # A bank the TPM has but the log does not cover is reported, not failed:
    # the firmware measures only the banks it supports.
    for bank in $banks; do
        grep -q "^$bank " "$W/replay" ||
            echo "svtpm-check: bank $bank is active but the event log has no digests for it"
    done
else
    bad eventlog "tpm2_eventlog failed"
    show "$W/err"
fi

# --- dictionary-attack counter --------------------------------------------
# A TPM whose state persists counts a power loss without TPM2_Shutdown as a
# failed authorization (if DA-protected objects were used) and, after
# TPM2_PT_MAX_AUTH_FAIL of them, refuses every DA-protected authorization.
# guest/init shuts the TPM down orderly, so the counter stays 0; a run cut
# short (Ctrl-C, a timeout) leaves one behind, which is cleared here with
# the lockout hierarchy's empty authorization so the checks below can run.
if tpm2_getcap properties-variable >"$W/caps" 2>"$W/err"; then
    da_count=$(awk '/TPM2_PT_LOCKOUT_COUNTER:/ { print $2 }' "$W/caps")
    da_max=$(awk '/TPM2_PT_MAX_AUTH_FAIL:/ { print $2 }' "$W/caps")
    da_locked=$(awk '/inLockout:/ { print $2 }' "$W/caps")
    da_count=$((${da_count:-0}))
    da_max=$((${da_max:-0}))
    if [ "$da_count" -eq 0 ] && [ "$da_locked" = 0 ]; then
        ok da-counter "failed-auth counter 0 of $da_max"
    elif tpm2_dictionarylockout --clear-lockout >"$W/out" 2>"$W/err"; then
        echo "svtpm-check: failed-auth counter was $da_count of $da_max (inLockout $da_locked): earlier boots ended without TPM2_Shutdown; cleared"
        ok da-counter "failed-auth counter $da_count of $da_max, cleared"
    else
        bad da-counter "failed-auth counter $da_count of $da_max (inLockout $da_locked) and clearing it failed"
        show "$W/err"
    fi
else
    bad da-counter "tpm2_getcap properties-variable failed"
    show "$W/err"
fi

# --- sealing under a PCR policy ------------------------------------------
# Seal a secret to boot PCRs and the debug PCR, unseal it, then extend the
# debug PCR: the same unseal must now fail. The debug PCR is reset afterwards.
seal_pcrs="sha256:$SEAL_PCRS,$DEBUG_PCR"
secret="svtpm-sealed-$(cat "$W/r1" 2>/dev/null | cut -c1-16)"
step() {
    name=$1
    shift
    "$@" >"$W/out" 2>"$W/err" || {
        echo "svtpm-check: $name failed"
        show "$W/err"
        return 1
    }
}
if step createprimary tpm2_createprimary -C o -g sha256 -G ecc -c "$W/primary.ctx" &&
    step pcrread tpm2_pcrread -o "$W/pcr.bin" "$seal_pcrs" &&
    step createpolicy tpm2_createpolicy --policy-pcr -l "$seal_pcrs" -f "$W/pcr.bin" -L "$W/policy.bin" &&
    step create sh -c "printf '%s' '$secret' | tpm2_create -C '$W/primary.ctx' -g sha256 -L '$W/policy.bin' -i- -u '$W/seal.pub' -r '$W/seal.priv'" &&
    step load tpm2_load -C "$W/primary.ctx" -u "$W/seal.pub" -r "$W/seal.priv" -c "$W/seal.ctx" &&
    step unseal tpm2_unseal -c "$W/seal.ctx" -p "pcr:$seal_pcrs" -o "$W/unsealed"; then
    if [ "$(cat "$W/unsealed")" = "$secret" ]; then
        ok seal-unseal "policy $seal_pcrs"
    else
        bad seal-unseal "unsealed '$(cat "$W/unsealed")', sealed '$secret'"
    fi
    if ! step pcrextend tpm2_pcrextend "$DEBUG_PCR:sha256=$(printf '%064d' 1)"; then
        bad seal-policy "could not extend PCR $DEBUG_PCR"
    elif tpm2_unseal -c "$W/seal.ctx" -p "pcr:$seal_pcrs" >"$W/out" 2>"$W/err"; then
        bad seal-policy "unsealed after PCR $DEBUG_PCR changed"
    else
        ok seal-policy "unseal refused after PCR $DEBUG_PCR changed"
    fi
    tpm2_pcrreset "$DEBUG_PCR" >/dev/null 2>&1 || echo "svtpm-check: could not reset PCR $DEBUG_PCR"
else
    bad seal-unseal "a tpm2-tools step failed (see above)"
fi

# Settings from the kernel command line or an SMBIOS OEM string (type 11,
# QEMU `-smbios type=11,value=svtpm.<name>=<value>`, which keeps the boot
# medium unchanged): one "name=value" per line, the command line last.
guest_settings() {
    for f in /sys/firmware/dmi/entries/11-*/raw; do
        [ -r "$f" ] && tr '\000' '\n' <"$f"
    done
    tr ' ' '\n' </proc/cmdline
}

# --- persistence -------------------------------------------------------------
# An NV index that outlives the boot when the TPM's state does: on a TPM
# that does not have it yet, define it and write random bytes; on one that
# has it, read it back. Either way print the value and the hash of the EK's
# public area (both stay the same across boots of the same TPM). With
# `svtpm.persist=rewrite` a read is followed by a new write, so the TPM's
# state changes in this boot too.
NV_INDEX=0x01500016
NV_SIZE=32
persist_mode=$(guest_settings 2>/dev/null | grep -o 'svtpm\.persist=[a-z]*' | tail -n 1 | cut -d= -f2)
hexdump_file() {
    od -An -tx1 -v "$1" | tr -d ' \n'
}
# persist_write: new random bytes into the index (defined already).
persist_write() {
    dd if=/dev/urandom of="$W/nv-new" bs="$NV_SIZE" count=1 2>/dev/null &&
        step nvwrite tpm2_nvwrite "$NV_INDEX" -C o -i "$W/nv-new" &&
        step nvread tpm2_nvread "$NV_INDEX" -C o -s "$NV_SIZE" -o "$W/nv-back" &&
        cmp -s "$W/nv-new" "$W/nv-back"
}
if step createek tpm2_createek -G ecc -c "$W/ek.ctx" -u "$W/ek.pub"; then
    ek=$(sha256sum "$W/ek.pub" | cut -d' ' -f1)
    if tpm2_nvreadpublic "$NV_INDEX" >"$W/out" 2>"$W/err"; then
        if step nvread tpm2_nvread "$NV_INDEX" -C o -s "$NV_SIZE" -o "$W/nv-old"; then
            value=$(hexdump_file "$W/nv-old")
            echo "SVTPM-PERSIST read $value ek=$ek"
            if [ "$persist_mode" != rewrite ]; then
                ok persist "read $NV_SIZE bytes back from NV $NV_INDEX"
            elif persist_write; then
                echo "SVTPM-PERSIST wrote $(hexdump_file "$W/nv-new") ek=$ek"
                ok persist "read $NV_SIZE bytes back from NV $NV_INDEX, then wrote new ones"
            else
                bad persist "could not rewrite NV $NV_INDEX"
            fi
        else
            bad persist "NV $NV_INDEX is defined but cannot be read"
        fi
    elif step nvdefine tpm2_nvdefine "$NV_INDEX" -C o -s "$NV_SIZE" -a "ownerread|ownerwrite" &&
        persist_write; then
        echo "SVTPM-PERSIST wrote $(hexdump_file "$W/nv-new") ek=$ek"
        ok persist "defined NV $NV_INDEX and wrote $NV_SIZE bytes"
    else
        bad persist "could not define and write NV $NV_INDEX"
    fi
else
    bad persist "tpm2_createek failed"
fi

echo "SVTPM-CHECK done pass=$pass fail=$fail"

# --- opt-in benchmark ------------------------------------------------------
# `svtpm.bench=<N>` (a guest setting, see guest_settings) times N PCR
# extends of the debug PCR, after the checks so their timing is unaffected:
#
#   SVTPM-BENCH begin <name>             the loop starts (no TPM command
#   SVTPM-BENCH end <name>               of another loop lies in between)
#   SVTPM-BENCH <name> n=<N> ok=<K> min_us=<a> median_us=<b> mean_us=<c> max_us=<d>
#
# `clock`: two clock reads back to back (the cost every sample includes);
# `pcrextend`: one `tpm2_pcrextend` process (exec, TCTI, ESAPI, the command);
# `raw-extend`: one TPM2_PCR_Extend (sha256, password session) written to
# /dev/tpmrm0 and its response read, by two `dd`s; `raw-control`: the same
# two `dd`s on a file (what raw-extend costs without the TPM). The clock is the
# kernel's monotonic clock in ns (/proc/timer_list, root only), else the
# wall clock in us (busybox adjtimex): busybox `date` has no %N.
bench_n=$(guest_settings 2>/dev/null | grep -o 'svtpm\.bench=[0-9]*' | tail -n 1 | cut -d= -f2)
now_us() {
    if [ -r /proc/timer_list ]; then
        awk '/^now at/ { printf "%.0f\n", $3 / 1000; exit }' /proc/timer_list
    else
        adjtimex | awk '/tv_sec/ { s = $2 } /tv_usec/ { u = $2 } END { printf "%.0f\n", s * 1000000 + u }'
    fi
}
# bench_stats NAME FILE OK: one summary line from FILE's samples (us).
bench_stats() {
    sort -n "$2" | awk -v name="$1" -v ok="$3" '
        { v[NR] = $1; sum += $1 }
        END {
            if (NR == 0) { print "SVTPM-BENCH " name " n=0 ok=" ok; exit }
            m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
            printf "SVTPM-BENCH %s n=%d ok=%d min_us=%.0f median_us=%.0f mean_us=%.0f max_us=%.0f\n", name, NR, ok, v[1], m, sum / NR, v[NR]
        }'
}
if [ -n "$bench_n" ] && [ "$bench_n" -gt 0 ]; then
    B=$W/bench
    mkdir -p "$B"
    echo "svtpm-check: benchmark, $bench_n iterations per loop, PCR $DEBUG_PCR"
    : >"$B/clock"
    echo "SVTPM-BENCH begin clock"
    i=0
    while [ "$i" -lt "$bench_n" ]; do
        t0=$(now_us)
        t1=$(now_us)
        echo $((t1 - t0)) >>"$B/clock"
        i=$((i + 1))
    done
    echo "SVTPM-BENCH end clock"
    bench_stats clock "$B/clock" "$bench_n"

    : >"$B/pcrextend"
    good=0
    digest=$(printf '%064d' 2)
    echo "SVTPM-BENCH begin pcrextend"
    i=0
    while [ "$i" -lt "$bench_n" ]; do
        t0=$(now_us)
        tpm2_pcrextend "$DEBUG_PCR:sha256=$digest" >/dev/null 2>"$W/err" && good=$((good + 1))
        t1=$(now_us)
        echo $((t1 - t0)) >>"$B/pcrextend"
        i=$((i + 1))
    done
    echo "SVTPM-BENCH end pcrextend"
    [ "$good" -eq "$bench_n" ] || show "$W/err"
    bench_stats pcrextend "$B/pcrextend" "$good"

    # TPM2_PCR_Extend(PCR 23, TPM_RS_PW, one sha256 digest of 0x03 bytes):
    # 65 bytes; its response is 19 bytes with rc at offset 6.
    printf '\200\002\000\000\000\101\000\000\001\202\000\000\000\027' >"$B/cmd"
    printf '\000\000\000\011\100\000\000\011\000\000\000\000\000' >>"$B/cmd"
    printf '\000\000\000\001\000\013' >>"$B/cmd"
    i=0
    while [ "$i" -lt 32 ]; do
        printf '\003' >>"$B/cmd"
        i=$((i + 1))
    done
    : >"$B/raw-extend"
    : >"$B/responses"
    echo "SVTPM-BENCH begin raw-extend"
    if exec 3<>/dev/tpmrm0; then
        i=0
        while [ "$i" -lt "$bench_n" ]; do
            t0=$(now_us)
            dd if="$B/cmd" bs=4096 count=1 2>/dev/null >&3
            dd bs=4096 count=1 2>/dev/null <&3 >>"$B/responses"
            t1=$(now_us)
            echo $((t1 - t0)) >>"$B/raw-extend"
            i=$((i + 1))
        done
        exec 3>&-
    else
        echo "svtpm-check: cannot open /dev/tpmrm0"
    fi
    echo "SVTPM-BENCH end raw-extend"
    : >"$B/raw-control"
    echo "SVTPM-BENCH begin raw-control"
    i=0
    while [ "$i" -lt "$bench_n" ]; do
        t0=$(now_us)
        dd if="$B/cmd" bs=4096 count=1 2>/dev/null >/dev/null
        dd if="$B/cmd" bs=4096 count=1 2>/dev/null >>"$B/control-out"
        t1=$(now_us)
        echo $((t1 - t0)) >>"$B/raw-control"
        i=$((i + 1))
    done
    echo "SVTPM-BENCH end raw-control"
    bench_stats raw-control "$B/raw-control" "$bench_n"
    # Every response must be 19 bytes with rc 0.
    good=$(od -An -tx1 -v "$B/responses" | tr -s ' ' '\n' | grep . | awk '
        { k = (NR - 1) % 19; if (k == 0) { rec++; rc = "" } if (k >= 6 && k <= 9) rc = rc $1
          if (k == 18 && rc == "00000000") good++ }
        END { print (NR == rec * 19) ? good + 0 : 0 }')
    bench_stats raw-extend "$B/raw-extend" "$good"
    tpm2_pcrreset "$DEBUG_PCR" >/dev/null 2>&1 || echo "svtpm-check: could not reset PCR $DEBUG_PCR"
fi

[ "$fail" -eq 0 ]
