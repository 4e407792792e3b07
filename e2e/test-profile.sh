#!/bin/bash
# `image-build profile` end to end: publish the tiny guest, record its boot
# profile under QEMU TCG from a traced blockfs mount of the store, and check what
# was published: the file is named by the SHA-1 of its bytes, the re-signed
# catalog names it, the store still verifies, and the order is a boot's order
# (the BIOS reads the MBR first, so block 0 comes first). About a minute.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
source e2e/lib/tiny-guest.sh
tiny_guest_build
bin=$repo/target/release
work=$(mktemp -d /tmp/circular-profile.XXXXXX)
trap 'rm -rf "$work"' EXIT

"$bin/image-build" keygen --secret "$work/key" --public "$work/key.pub" >/dev/null
"$bin/image-build" add --store "$work/store" --distro tiny --date 2026-11-22 --memory-mib 256 --cpus 1 \
	--key "$work/key" "$TINY_GUEST_IMG" >/dev/null
"$bin/image-build" profile --store "$work/store" --distro tiny --date 2026-11-22 --key "$work/key" \
	--public "$work/key.pub" --prompt "$TINY_GUEST_MARKER" --timeout 240 --serial-log "$work/serial.log" | tee "$work/out"
grep -q "to the login prompt" "$work/out" || { echo "FAIL: the boot did not reach $TINY_GUEST_MARKER"; tail -20 "$work/serial.log"; exit 1; }
python3 - "$work/store" <<'PY'
import hashlib, json, os, sys
store = sys.argv[1]
cat = json.load(open(os.path.join(store, "catalog.json")))
snap = cat["distributions"][0]["snapshots"][0]
pid = snap["profile"]
assert pid, "the catalog names no profile"
raw = open(os.path.join(store, "profiles", pid + ".json"), "rb").read()
assert hashlib.sha1(raw).hexdigest() == pid, "profile file not named by its SHA-1"
prof = json.loads(raw)
assert prof["format"] == "circular-profile/1", prof["format"]
assert prof["index"] == snap["index"], "profile names another index"
index = json.load(open(os.path.join(store, "indexes", snap["index"] + ".json")))
assert prof["block_size"] == index["block_size"]
blocks = prof["blocks"]
assert blocks and blocks[0] == 0, f"a BIOS boot reads the MBR (block 0) first, got {blocks[:5]}"
assert len(set(blocks)) == len(blocks), "a block listed twice"
assert all(0 <= b < len(index["blocks"]) for b in blocks), "block number out of range"
print(f"profile {pid}: {len(blocks)} blocks of {len(index['blocks'])}, first {blocks[:8]}")
PY
"$bin/image-build" verify --store "$work/store" --public "$work/key.pub"
echo "PASS test-profile"
