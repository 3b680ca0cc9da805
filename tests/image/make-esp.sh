#!/usr/bin/env bash
# Makes a directory QEMU can offer the guest as a FAT disk (vvfat) holding
# a UEFI shell script, and optionally a kernel to start from it.
#
#   tests/image/make-esp.sh DIR [KERNEL] -- SHELL-LINE...
#
# DIR        created (emptied first)
# KERNEL     copied to DIR/vmlinuz (an EFI-stub kernel, e.g. /boot/vmlinuz-*)
# SHELL-LINE lines of DIR/startup.nsh, which OVMF's shell runs from FS0:
#
# Use it with run-qemu.sh ... -drive file=fat:rw:DIR,format=raw,if=ide
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,12s/^# \{0,1\}//p' "$0" >&2
    exit 2
fi
dir=$1
shift
kernel=
if [ "$1" != -- ]; then
    kernel=$1
    shift
fi
[ "${1:-}" = -- ] && shift

rm -rf "$dir"
mkdir -p "$dir"
if [ -n "$kernel" ]; then
    cp "$kernel" "$dir/vmlinuz"
fi
{
    printf 'fs0:\r\n'
    for line in "$@"; do
        printf '%s\r\n' "$line"
    done
} > "$dir/startup.nsh"
