#!/usr/bin/env python3
"""Drive a VM's serial console over QEMU's unix socket, expect-style.

    serial_expect.py SOCKET LOG STEP...

Steps, run in order:
    expect:TIMEOUT:REGEX   wait until REGEX appears in the output since the last match
    screen:TIMEOUT:REGEX   wait until REGEX matches the screen as a terminal would
                           show it (80x24; rows joined by newlines). For the
                           full-screen menu, which draws with cursor moves and
                           redraws only the cells that change.
    send:TEXT              send TEXT (\\n, \\r, \\x1b escapes understood)
    run:COMMAND            run COMMAND (split like a shell would, no shell) and go on
                           when it succeeds, e.g. a QMP command to pull the cable
    sleep:SECONDS
    eof:TIMEOUT            wait until QEMU closes the socket (the VM powered off)

Everything the VM prints is appended to LOG. Exits 1 with the step that
failed and the last output when a step times out.
"""
import codecs
import re
import shlex
import socket
import subprocess
import sys
import time


class Screen:
    """Just enough of a VT100/xterm to see what a ratatui program drew:
    cursor addressing, erase, line feed with scrolling; colours and modes are
    ignored. Fed with everything the serial line carries."""

    def __init__(self, cols=80, rows=24):
        self.cols, self.rows = cols, rows
        self.grid = [[" "] * cols for _ in range(rows)]
        self.r = self.c = 0
        self.state = "text"
        self.params = ""
        self.decode = codecs.getincrementaldecoder("utf-8")(errors="replace").decode

    def text(self):
        return "\n".join("".join(row).rstrip() for row in self.grid)

    def _lf(self):
        if self.r == self.rows - 1:
            self.grid.pop(0)
            self.grid.append([" "] * self.cols)
        else:
            self.r += 1

    def _erase(self, r0, c0, r1, c1):
        # from (r0, c0) to (r1, c1) inclusive, in reading order
        for r in range(r0, r1 + 1):
            a = c0 if r == r0 else 0
            b = c1 if r == r1 else self.cols - 1
            for c in range(a, b + 1):
                self.grid[r][c] = " "

    def _csi(self, params, final):
        if params.startswith("?"):
            if params[1:] in ("1049", "47", "1047") and final in "hl":
                self._erase(0, 0, self.rows - 1, self.cols - 1)
            return
        nums = [int(x) if x.isdigit() else 0 for x in params.split(";")] if params else []
        n1 = nums[0] if nums else 0
        n2 = nums[1] if len(nums) > 1 else 0
        last_r, last_c = self.rows - 1, self.cols - 1
        if final in "Hf":
            self.r, self.c = min(max(n1, 1), self.rows) - 1, min(max(n2, 1), self.cols) - 1
        elif final == "A":
            self.r = max(0, self.r - max(n1, 1))
        elif final == "B":
            self.r = min(last_r, self.r + max(n1, 1))
        elif final == "C":
            self.c = min(last_c, self.c + max(n1, 1))
        elif final == "D":
            self.c = max(0, self.c - max(n1, 1))
        elif final == "G":
            self.c = min(max(n1, 1), self.cols) - 1
        elif final == "d":
            self.r = min(max(n1, 1), self.rows) - 1
        elif final == "J":
            c = min(self.c, last_c)
            if n1 == 0:
                self._erase(self.r, c, last_r, last_c)
            elif n1 == 1:
                self._erase(0, 0, self.r, c)
            else:
                self._erase(0, 0, last_r, last_c)
        elif final == "K":
            c = min(self.c, last_c)
            if n1 == 0:
                self._erase(self.r, c, self.r, last_c)
            elif n1 == 1:
                self._erase(self.r, 0, self.r, c)
            else:
                self._erase(self.r, 0, self.r, last_c)

    def feed(self, data):
        for ch in self.decode(data):
            st = self.state
            if st == "text":
                if ch == "\x1b":
                    self.state = "esc"
                elif ch == "\r":
                    self.c = 0
                elif ch in "\n\x0b\x0c":
                    self._lf()
                elif ch == "\b":
                    self.c = max(0, self.c - 1)
                elif ch == "\t":
                    self.c = min(self.cols - 1, (self.c // 8 + 1) * 8)
                elif ord(ch) < 32 or ch == "\x7f":
                    pass
                else:
                    if self.c >= self.cols:  # deferred wrap
                        self.c = 0
                        self._lf()
                    self.grid[self.r][self.c] = ch
                    self.c += 1
            elif st == "esc":
                if ch == "[":
                    self.state, self.params = "csi", ""
                elif ch == "]":
                    self.state = "osc"
                elif ch in "()#%":
                    self.state = "esc1"
                else:
                    self.state = "text"
            elif st == "esc1":
                self.state = "text"
            elif st == "csi":
                if "\x40" <= ch <= "\x7e":
                    self._csi(self.params, ch)
                    self.state = "text"
                else:
                    self.params += ch
            elif st == "osc":
                if ch == "\x07":
                    self.state = "text"
                elif ch == "\x1b":
                    self.state = "esc"


def main():
    sock_path, log_path, steps = sys.argv[1], sys.argv[2], sys.argv[3:]
    s = None
    for _ in range(300):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(sock_path)
            break
        except OSError:
            s = None
            time.sleep(0.1)
    if s is None:
        print(f"serial_expect: cannot connect to {sock_path}", file=sys.stderr)
        return 1
    s.settimeout(0.5)
    log = open(log_path, "ab", buffering=0)
    buf = b""
    closed = False
    screen = Screen()

    def pump():
        nonlocal buf, closed
        if closed:
            time.sleep(0.2)
            return
        try:
            data = s.recv(65536)
        except socket.timeout:
            return
        except OSError:
            closed = True
            return
        if not data:
            closed = True
            return
        log.write(data)
        buf += data
        screen.feed(data)

    for step in steps:
        kind, _, arg = step.partition(":")
        t0 = time.time()
        if kind == "expect":
            timeout, _, pattern = arg.partition(":")
            rx = re.compile(pattern.encode())
            while True:
                m = rx.search(buf)
                if m:
                    buf = buf[m.end():]
                    print(f"serial_expect: saw {pattern!r} after {time.time() - t0:.0f} s", flush=True)
                    break
                if time.time() - t0 > float(timeout) or closed:
                    tail = buf[-1500:].decode(errors="replace")
                    why = "the VM stopped" if closed else f"timeout {timeout} s"
                    print(f"serial_expect: {why} waiting for {pattern!r}; last output:\n{tail}", file=sys.stderr)
                    return 1
                pump()
        elif kind == "screen":
            timeout, _, pattern = arg.partition(":")
            rx = re.compile(pattern)
            while not rx.search(screen.text()):
                if time.time() - t0 > float(timeout) or closed:
                    why = "the VM stopped" if closed else f"timeout {timeout} s"
                    print(f"serial_expect: {why} waiting for {pattern!r} on the screen; screen:\n{screen.text()}", file=sys.stderr)
                    return 1
                pump()
            print(f"serial_expect: screen shows {pattern!r} after {time.time() - t0:.0f} s", flush=True)
            # What the raw stream held so far was seen: later `expect`s look
            # only at what follows.
            buf = b""
        elif kind == "send":
            text = arg.encode().decode("unicode_escape").encode("latin-1")
            s.sendall(text)
            print(f"serial_expect: sent {arg!r}", flush=True)
        elif kind == "run":
            r = subprocess.run(shlex.split(arg))
            if r.returncode != 0:
                print(f"serial_expect: {arg!r} failed with status {r.returncode}", file=sys.stderr)
                return 1
            print(f"serial_expect: ran {arg!r}", flush=True)
        elif kind == "sleep":
            end = time.time() + float(arg)
            while time.time() < end:
                pump()
        elif kind == "eof":
            while not closed:
                if time.time() - t0 > float(arg):
                    print(f"serial_expect: the VM did not stop within {arg} s", file=sys.stderr)
                    return 1
                pump()
            print(f"serial_expect: the VM closed its console after {time.time() - t0:.0f} s", flush=True)
        else:
            print(f"serial_expect: bad step {step!r}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
