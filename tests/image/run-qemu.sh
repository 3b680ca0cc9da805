#!/usr/bin/env bash
# Runs the svtpm image under QEMU TCG as the svm platform does.
#
#   tests/image/run-qemu.sh IMAGE [FIRMWARE|-] [QEMU ARGS...]
#
# IMAGE     the svtpm ELF (target/x86_64-unknown-none/release/svtpm)
# FIRMWARE  the guest firmware, e.g. /usr/share/ovmf/OVMF.fd, handed to the
#           image as fw_cfg file opt/svtpm/ovmf; "-" (or nothing) runs the
#           engine self-test only
# QEMU ARGS appended as they are, e.g. -append "svtpm.interface=crb"
#
# Exit status: 33 when the image reports success through isa-debug-exit,
# 35 on failure, 3 when the image found nothing at 4 GiB; QEMU's own status
# otherwise (a guest reset ends QEMU because of -no-reboot).
#
# Memory: the guest gets the -m RAM (all below 4 GiB: keep it <= 2560M);
# svtpm lives in a 64 MiB pc-dimm at 4 GiB, which QEMU leaves out of the
# E820 map (see docs/platform-svm.md). SVTPM_QEMU_MEM overrides the RAM size.
#
# The attested boot (docs/hostchan.md) adds, from the environment:
# SVTPM_HOSTCHAN=FILE  the host channel: a 2 MiB pc-dimm right after svtpm's,
#                      at 0x104000000, backed by FILE shared with svtpm-proxy;
#                      the image learns of it from its command line,
#                      svtpm.hostchan=0x104000000,0x200000
# SVTPM_SECRETS=FILE   the SNP secrets page (svtpm-psp-sim secrets-page) as
#                      fw_cfg file opt/svtpm/secrets
set -euo pipefail

if [ $# -lt 1 ]; then
    sed -n '2,20s/^# \{0,1\}//p' "$0" >&2
    exit 2
fi
image=$1
shift
firmware=-
if [ $# -gt 0 ]; then
    firmware=$1
    shift
fi

args=(
    -machine pc -accel tcg -cpu max
    -m "${SVTPM_QEMU_MEM:-512M}",slots=2,maxmem=4G
    -object memory-backend-ram,id=svtpm-mem,size=64M
    -device pc-dimm,id=svtpm-dimm,memdev=svtpm-mem,addr=0x100000000
    -kernel "$image"
    -serial stdio -display none -no-reboot
    -device isa-debug-exit,iobase=0xf4,iosize=0x04
)
if [ -n "${SVTPM_HOSTCHAN:-}" ]; then
    args+=(
        -object "memory-backend-file,id=svtpm-chan,size=2M,mem-path=$SVTPM_HOSTCHAN,share=on"
        -device pc-dimm,id=svtpm-chan-dimm,memdev=svtpm-chan,addr=0x104000000
    )
fi
if [ -n "${SVTPM_SECRETS:-}" ]; then
    args+=(-fw_cfg "name=opt/svtpm/secrets,file=$SVTPM_SECRETS")
fi
if [ "$firmware" != - ]; then
    args+=(-fw_cfg "name=opt/svtpm/ovmf,file=$firmware")
fi
exec qemu-system-x86_64 "${args[@]}" "$@"
