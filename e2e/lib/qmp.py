#!/usr/bin/env python3
"""Tiny QMP client for tests: screenshots and key presses.

    qmp.py SOCKET screendump OUT.png     VGA screen → PNG (via QEMU's PPM)
    qmp.py SOCKET cyan OUT.png           the same, and print how many pixels are
                                         cyan (the menu's titles and borders are;
                                         a guest's text console is not)
    qmp.py SOCKET keys TEXT              type TEXT (letters, digits, '\\n' = Enter)
    qmp.py SOCKET key QCODE...           press QEMU key codes (ret, up, down, esc, ...)
    qmp.py SOCKET screendump-ppm OUT.ppm the screen as QEMU writes it (PPM), for checks on pixels
    qmp.py SOCKET link NAME on|off      plug the NIC's cable in or pull it out (set_link;
                                         NAME is the -nic/-netdev id)
    qmp.py SOCKET vga-text OUT           the VGA text screen (80x25 char/attribute pairs at
                                         0xb8000, saved to OUT) printed as 25 lines of text
"""
import json
import os
import socket
import struct
import sys
import tempfile
import time
import zlib


def connect(path):
    # Right after QEMU starts its monitor socket may not be there yet.
    for _ in range(100):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            break
        except OSError:
            s.close()
            time.sleep(0.1)
    else:
        raise SystemExit(f"qmp: cannot connect to {path}")
    f = s.makefile("rw")
    json.loads(f.readline())  # greeting
    call(f, "qmp_capabilities")
    return s, f


def call(f, cmd, **args):
    f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r:
            return r["return"]
        if "error" in r:
            raise SystemExit(f"qmp {cmd}: {r['error']}")


def ppm_to_png(ppm, png):
    data = open(ppm, "rb").read()
    # header: P6\n<w> <h>\n<max>\n
    parts, pos = [], 0
    while len(parts) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        parts.append(data[pos:end])
        pos = end
    pos += 1
    w, h = int(parts[1]), int(parts[2])
    pixels = data[pos:pos + w * h * 3]
    raw = b"".join(b"\x00" + pixels[y * w * 3:(y + 1) * w * 3] for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    with open(png, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)))
        out.write(chunk(b"IDAT", zlib.compress(raw, 9)))
        out.write(chunk(b"IEND", b""))
    return pixels


def cyan_pixels(pixels):
    n = 0
    for i in range(0, len(pixels) - 2, 3):
        r, g, b = pixels[i], pixels[i + 1], pixels[i + 2]
        if r < 0x60 and g > 0x90 and b > 0x90:
            n += 1
    return n


def main():
    sock, cmd, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    s, f = connect(sock)
    if cmd in ("screendump", "cyan"):
        tmp = tempfile.mktemp(suffix=".ppm")
        call(f, "screendump", filename=tmp)
        pixels = ppm_to_png(tmp, args[0])
        os.unlink(tmp)
        if cmd == "cyan":
            print(cyan_pixels(pixels))
    elif cmd == "screendump-ppm":
        call(f, "screendump", filename=args[0])
    elif cmd == "vga-text":
        call(f, "pmemsave", val=0xB8000, size=80 * 25 * 2, filename=args[0])
        d = open(args[0], "rb").read()
        for row in range(25):
            print("".join(chr(c) if 32 <= c < 127 else " " for c in d[row * 160:row * 160 + 160:2]).rstrip())
    elif cmd == "link":
        if len(args) != 2 or args[1] not in ("on", "off"):
            raise SystemExit("usage: qmp.py SOCKET link NAME on|off")
        call(f, "set_link", name=args[0], up=args[1] == "on")
    elif cmd in ("keys", "key"):
        codes = []
        if cmd == "key":
            codes = args
        else:
            for ch in args[0].encode().decode("unicode_escape"):
                codes.append("ret" if ch == "\n" else "spc" if ch == " " else ch)
        for c in codes:
            call(f, "send-key", keys=[{"type": "qcode", "data": c}])
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
