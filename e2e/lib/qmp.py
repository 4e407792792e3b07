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
    qmp.py SOCKET chord QCODE...         press QEMU key codes together (ctrl alt esc)
    qmp.py SOCKET quadrants SECONDS OUT.png
                                         wait until the screen shows the tiny guest's pattern
                                         (red, green / blue, white quadrants of a 4:3 picture)
                                         scaled to fill the screen, centred; save it as OUT.png
    qmp.py SOCKET no-quadrants SECONDS OUT.png
                                         wait until the pattern is gone from the screen
    qmp.py SOCKET menu SECONDS OUT.ppm [BEFORE.ppm]
                                         wait until the screen shows the menu (its cyan titles
                                         and borders, no pattern) and, with BEFORE, its first
                                         text row (the header) exactly as in BEFORE; save
                                         the screen as OUT.ppm and a PNG beside it
    qmp.py SOCKET point-at GX GY GW GH   move the absolute pointer (a usb-tablet) to where guest
                                         pixel (GX, GY) of a GWxGH guest shows on the screen,
                                         scaled to fill it and centred as the presenter draws it
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


def ppm_pixels(ppm):
    """(width, height, rgb bytes) of a binary PPM."""
    data = open(ppm, "rb").read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    w, h = int(fields[1]), int(fields[2])
    return w, h, data[pos + 1:pos + 1 + w * h * 3]


def ppm_to_png(ppm, png):
    w, h, pixels = ppm_pixels(ppm)
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


QUADRANT_COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255), "white": (255, 255, 255)}


def quadrant_problems(w, h, px):
    """What is wrong with the screen as a picture of the pattern: [] when it shows it.

    The guest's picture is 4:3; the presenter scales it by one factor to fill the screen's
    width or height and centres it, so the pattern's place follows from the screen's size.
    Each quadrant is sampled at 25 points spread over it (1% of the picture in from its
    edges: a picture 2% too small or off centre fails), and the
    bars beside a picture narrower than the screen must be black."""
    scale = min(w / 4, h / 3)
    pw, ph = int(4 * scale), int(3 * scale)
    x0, y0 = (w - pw) // 2, (h - ph) // 2
    problems = []

    def at(x, y):
        i = (y * w + x) * 3
        return tuple(px[i:i + 3])

    def near(c, want):
        return all(abs(a - b) <= 40 for a, b in zip(c, want))

    layout = [("red", 0, 0), ("green", 1, 0), ("blue", 0, 1), ("white", 1, 1)]
    for name, qx, qy in layout:
        bad = 0
        for i in range(5):
            for j in range(5):
                fx = qx * 0.5 + 0.5 * (0.02 + 0.96 * i / 4)
                fy = qy * 0.5 + 0.5 * (0.02 + 0.96 * j / 4)
                x, y = x0 + int(fx * (pw - 1)), y0 + int(fy * (ph - 1))
                if not near(at(x, y), QUADRANT_COLOURS[name]):
                    bad += 1
                    sample = (x, y, at(x, y))
        if bad:
            problems.append(f"{name} quadrant: {bad}/25 points differ, e.g. {sample}")
    for x in ([x0 // 2, w - 1 - x0 // 2] if x0 > 4 else []):
        if not near(at(x, h // 2), (0, 0, 0)):
            problems.append(f"the bar at x={x} is {at(x, h // 2)}, not black")
    return problems


def wait_screen(f, seconds, out, want_pattern):
    deadline = time.time() + float(seconds)
    tmp = tempfile.mktemp(suffix=".ppm")
    while True:
        call(f, "screendump", filename=tmp)
        w, h, px = ppm_pixels(tmp)
        problems = quadrant_problems(w, h, px)
        shown = not problems
        if shown == want_pattern or time.time() > deadline:
            ppm_to_png(tmp, out)
            os.unlink(tmp)
            if shown != want_pattern:
                what = "; ".join(problems) if want_pattern else "the pattern is still on the screen"
                raise SystemExit(f"qmp: after {seconds} s, {w}x{h} screen ({out}): {what}")
            print(f"qmp: {w}x{h} screen {'shows' if shown else 'no longer shows'} the pattern ({out})")
            return
        time.sleep(2)


# One row of the console's 8x16 font: the menu's header line, the same on every screen.
HEADER_ROWS = 16


def wait_menu(f, seconds, out, before=None):
    deadline = time.time() + float(seconds)
    ref = ppm_pixels(before) if before else None
    while True:
        call(f, "screendump", filename=out)
        w, h, px = ppm_pixels(out)
        why = []
        cyan = cyan_pixels(px)
        # 683 at 800x600 on OVMF's efifb: the box's title and border.
        if cyan < 300:
            why.append(f"{cyan} cyan pixels, not the menu's titles and borders")
        # The header row is white on blue across the screen. (A text mode caught in the middle
        # of a mode switch, read as graphics, can show cyan specks but never this.)
        header = px[: w * 3 * HEADER_ROWS]
        blue = sum(1 for i in range(0, len(header), 3) if header[i] < 0x40 and header[i + 1] < 0x40 and header[i + 2] > 0x80)
        if blue < len(header) // 3 // 2:
            why.append(f"the header row is not blue ({blue} of {len(header) // 3} pixels)")
        if not quadrant_problems(w, h, px):
            why.append("the guest's pattern is on the screen")
        if ref and (ref[0], ref[1]) != (w, h):
            why.append(f"{w}x{h}, not {ref[0]}x{ref[1]} as before")
        elif ref and ref[2][:w * 3 * HEADER_ROWS] != px[:w * 3 * HEADER_ROWS]:
            why.append(f"the header differs from {before}")
        if not why or time.time() > deadline:
            ppm_to_png(out, out.rsplit(".", 1)[0] + ".png")
            if why:
                raise SystemExit(f"qmp: after {seconds} s the screen ({out}) is not the menu: " + "; ".join(why))
            print(f"qmp: the menu is on the {w}x{h} screen ({cyan} cyan pixels{', header as before' if ref else ''})")
            return
        time.sleep(2)


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
    elif cmd in ("quadrants", "no-quadrants"):
        wait_screen(f, args[0], args[1], cmd == "quadrants")
    elif cmd == "menu":
        wait_menu(f, args[0], args[1], args[2] if len(args) > 2 else None)
    elif cmd == "point-at":
        gx, gy, gw, gh = (int(a) for a in args)
        tmp = tempfile.mktemp(suffix=".ppm")
        call(f, "screendump", filename=tmp)
        w, h, _ = ppm_pixels(tmp)
        os.unlink(tmp)
        scale = min(w / gw, h / gh)
        sx = (w - int(gw * scale)) // 2 + (gx + 0.5) * scale
        sy = (h - int(gh * scale)) // 2 + (gy + 0.5) * scale
        # QMP's absolute axes run from 0 to 0x7fff across the screen.
        ax, ay = round(sx * 0x7FFF / w), round(sy * 0x7FFF / h)
        call(f, "input-send-event", events=[{"type": "abs", "data": {"axis": "x", "value": ax}},
                                            {"type": "abs", "data": {"axis": "y", "value": ay}}])
        print(f"qmp: pointer to screen ({sx:.0f}, {sy:.0f}) of {w}x{h}, for guest pixel ({gx}, {gy})")
    elif cmd == "chord":
        call(f, "send-key", keys=[{"type": "qcode", "data": c} for c in args])
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
