#!/bin/sh
# Regenerates the swtpm golden state used by svtpm-store's import tests.
# Needs Debian's swtpm and swtpm-tools (swtpm_setup, swtpm_ioctl).
# Usage: regenerate.sh [OUTDIR]   (default: this script's directory)
#
#   plain/   TPM 2.0 state made by `swtpm_setup --createek`, not encrypted
#   enc128/  the same kind of state, encrypted with enc128.key (AES-128-CBC)
#   enc256/  encrypted with enc256.key (AES-256-CBC)
#   enc*.saved  swtpm's own decryption of enc*/tpm2-00.permall: what
#               `swtpm_ioctl --save permanent` returns from an swtpm running
#               on a copy of that state with its key
set -eu
here=$(cd "${1:-$(dirname "$0")}" && pwd)
cd "$here"
rm -rf plain enc128 enc256 enc128.saved enc256.saved
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > enc128.key
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > enc256.key

mkdir plain enc128 enc256
swtpm_setup --tpm2 --createek --tpmstate "$here/plain" --logfile "$scratch/log"
swtpm_setup --tpm2 --createek --tpmstate "$here/enc128" --keyfile "$here/enc128.key" --logfile "$scratch/log"
swtpm_setup --tpm2 --createek --tpmstate "$here/enc256" --logfile "$scratch/log" \
    --tpm "$(command -v swtpm) socket --key file=$here/enc256.key,mode=aes-256-cbc"

for bits in 128 256; do
    mode=aes-cbc
    [ $bits = 256 ] && mode=aes-256-cbc
    rm -rf "$scratch/state" && mkdir "$scratch/state"
    cp "enc$bits/tpm2-00.permall" "$scratch/state/"
    swtpm socket --tpm2 --tpmstate dir="$scratch/state" \
        --key file="$here/enc$bits.key,mode=$mode" \
        --ctrl type=unixio,path="$scratch/ctrl" --server type=unixio,path="$scratch/srv" \
        --flags not-need-init --daemon --pid file="$scratch/pid"
    i=0
    while [ ! -S "$scratch/ctrl" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    swtpm_ioctl --unix "$scratch/ctrl" --save permanent "$here/enc$bits.saved"
    swtpm_ioctl --unix "$scratch/ctrl" -s
done
rm -f plain/.lock enc128/.lock enc256/.lock
chmod 644 plain/* enc128/* enc256/* enc128.saved enc256.saved
