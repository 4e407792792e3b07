#!/usr/bin/env python3
"""Replay a boot's disk reads, in their order, as fast as the storage allows.

    replay.py ranges TRACE OUT          QEMU trace log -> "offset length" lines (first boot's reads)
    replay.py file RANGES PATH          pread each range from PATH (one reader, in order)
    replay.py qemu-io RANGES URL        the same through QEMU's curl block driver (qemu-io)
    replay.py limit RANGES STORE RTT_MS MBIT
                                        the link limit: the stored (compressed) bytes of the
                                        distinct blocks the reads touch, at MBIT plus one RTT;
                                        prints "blocks MB seconds"

Prints the seconds taken. One reader in order is what a guest that waits for
each read does; it removes the CPU cost of emulating the guest (TCG) so that
only the storage path is compared.
"""
import mmap
import os
import re
import subprocess
import sys
import time

READ = re.compile(r"blk_co_preadv .*offset (\d+) bytes (\d+)")


def ranges_from_trace(trace, out):
    n = 0
    with open(trace) as f, open(out, "w") as o:
        for line in f:
            m = READ.search(line)
            if m:
                o.write(f"{m.group(1)} {m.group(2)}\n")
                n += 1
    print(n)


def load(ranges):
    with open(ranges) as f:
        return [tuple(map(int, line.split())) for line in f if line.strip()]


def replay_file(ranges, path):
    """O_DIRECT, as the VM launcher opens the image (cache.direct=on): each read
    reaches the storage as the guest asked it, not widened by the page cache's
    readahead. QEMU's reads are 512-byte aligned; the buffer is page aligned."""
    todo = load(ranges)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, max((length for _, length in todo), default=4096))
    t0 = time.monotonic()
    for off, length in todo:
        got = os.preadv(fd, [memoryview(buf)[:length]], off)
        if got != length:
            sys.exit(f"short read at {off}: {got} of {length}")
    print(f"{time.monotonic() - t0:.2f}")


def replay_qemu_io(ranges, url):
    todo = load(ranges)
    args = ["qemu-io", "-r", "--image-opts", f"driver=raw,file.driver=http,file.url={url}"]
    for off, length in todo:
        args += ["-c", f"read -q {off} {length}"]
    t0 = time.monotonic()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    print(f"{time.monotonic() - t0:.2f}")


def link_limit(ranges, store, rtt_ms, mbit):
    import glob
    import json
    (index_file,) = glob.glob(os.path.join(store, "indexes", "*.json"))
    index = json.load(open(index_file))
    bs = index["block_size"]
    touched = set()
    for off, length in load(ranges):
        if length:
            touched.update(range(off // bs, (off + length - 1) // bs + 1))
    names = {index["blocks"][n] for n in touched if index["blocks"][n]}
    moved = sum(os.path.getsize(os.path.join(store, "blocks", n[:2], n)) for n in names)
    seconds = moved * 8 / (float(mbit) * 1e6) + float(rtt_ms) / 1000
    print(f"{len(names)} {moved / 1e6:.1f} {seconds:.2f}")


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "ranges":
        ranges_from_trace(sys.argv[2], sys.argv[3])
    elif mode == "file":
        replay_file(sys.argv[2], sys.argv[3])
    elif mode == "qemu-io":
        replay_qemu_io(sys.argv[2], sys.argv[3])
    elif mode == "limit":
        link_limit(*sys.argv[2:6])
    else:
        sys.exit(__doc__)
