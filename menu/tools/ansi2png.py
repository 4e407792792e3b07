#!/usr/bin/env python3
"""Renders a `tmux capture-pane -e -p` capture (text with SGR colour codes) to a
PNG, with the Linux console's 16-colour VGA palette, so the README shows the
menu as it looks on the appliance's text console.

    python3 menu/tools/ansi2png.py CAPTURE.ansi OUT.png [--cols 80 --rows 25]

Needs Pillow (pip install pillow) and a monospace TTF with box-drawing glyphs
(Debian's fonts-dejavu-core: DejaVu Sans Mono).
"""
import argparse
import re

from PIL import Image, ImageDraw, ImageFont

# The Linux console's default palette (drivers/tty/vt/vt.c default_red/grn/blu).
VGA = [
    (0, 0, 0), (170, 0, 0), (0, 170, 0), (170, 85, 0),
    (0, 0, 170), (170, 0, 170), (0, 170, 170), (170, 170, 170),
    (85, 85, 85), (255, 85, 85), (85, 255, 85), (255, 255, 85),
    (85, 85, 255), (255, 85, 255), (85, 255, 255), (255, 255, 255),
]
DEFAULT_FG, DEFAULT_BG = 7, 0
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
FONT_BOLD = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono-Bold.ttf"
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def cells(lines, cols):
    """Yields (row, col, char, fg, bg, bold) for every cell written."""
    fg, bg, bold, reverse = DEFAULT_FG, DEFAULT_BG, False, False
    for row, line in enumerate(lines):
        col, pos = 0, 0
        while pos < len(line) and col < cols:
            m = SGR.match(line, pos)
            if m:
                codes = [int(c) if c else 0 for c in m.group(1).split(";")]
                i = 0
                while i < len(codes):
                    c = codes[i]
                    if c == 0:
                        fg, bg, bold, reverse = DEFAULT_FG, DEFAULT_BG, False, False
                    elif c == 1:
                        bold = True
                    elif c == 22:
                        bold = False
                    elif c == 7:
                        reverse = True
                    elif c == 27:
                        reverse = False
                    elif 30 <= c <= 37:
                        fg = c - 30
                    elif 90 <= c <= 97:
                        fg = c - 90 + 8
                    elif c == 39:
                        fg = DEFAULT_FG
                    elif 40 <= c <= 47:
                        bg = c - 40
                    elif 100 <= c <= 107:
                        bg = c - 100 + 8
                    elif c == 49:
                        bg = DEFAULT_BG
                    elif c in (38, 48) and i + 2 < len(codes) and codes[i + 1] == 5:
                        # 256-colour index: only its 16-colour part is meaningful here.
                        v = codes[i + 2] % 16
                        if c == 38:
                            fg = v
                        else:
                            bg = v
                        i += 2
                    i += 1
                pos = m.end()
                continue
            ch = line[pos]
            pos += 1
            if ch == "\x1b":
                continue
            f, b = (bg, fg) if reverse else (fg, bg)
            if bold and f < 8 and not reverse:
                f += 8  # the console shows bold as bright
            yield row, col, ch, f, b, bold
            col += 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("capture")
    ap.add_argument("out")
    ap.add_argument("--cols", type=int, default=80)
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--size", type=int, default=18)
    a = ap.parse_args()
    font = ImageFont.truetype(FONT, a.size)
    bold_font = ImageFont.truetype(FONT_BOLD, a.size)
    left, top, right, bottom = font.getbbox("M")
    cw = round(font.getlength("M"))
    ch = round(a.size * 1.25)
    pad = 12
    img = Image.new("RGB", (a.cols * cw + 2 * pad, a.rows * ch + 2 * pad), VGA[DEFAULT_BG])
    draw = ImageDraw.Draw(img)
    with open(a.capture, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")[: a.rows]
    for row, col, char, fg, bg, bold in cells(lines, a.cols):
        x, y = pad + col * cw, pad + row * ch
        draw.rectangle([x, y, x + cw - 1, y + ch - 1], fill=VGA[bg])
        if char == " ":
            continue
        if char in "─│┌┐└┘█░":
            # Box and block glyphs drawn as shapes, so lines join across cells.
            draw_shape(draw, char, x, y, cw, ch, VGA[fg], VGA[bg])
        else:
            draw.text((x, y + (ch - a.size) // 2 - 1), char, font=bold_font if bold else font, fill=VGA[fg])
    img.save(a.out)


def draw_shape(draw, char, x, y, cw, ch, fg, bg):
    cx, cy = x + cw // 2, y + ch // 2
    if char == "█":
        draw.rectangle([x, y + 2, x + cw - 1, y + ch - 3], fill=fg)
    elif char == "░":
        draw.rectangle([x, y + 2, x + cw - 1, y + ch - 3], fill=tuple(c // 3 for c in fg))
    if char in "─┌┐└┘":
        x0 = cx if char in "┌└" else x
        x1 = cx if char in "┐┘" else x + cw - 1
        draw.line([x0, cy, x1, cy], fill=fg, width=2)
    if char in "│┌┐└┘":
        y0 = cy if char in "┌┐" else y
        y1 = cy if char in "└┘" else y + ch - 1
        draw.line([cx, y0, cx, y1], fill=fg, width=2)


if __name__ == "__main__":
    main()
