#!/usr/bin/env python3
"""Drive a VM's serial console over QEMU's unix socket, expect-style.

    serial_expect.py SOCKET LOG STEP...

Steps, run in order:
    expect:TIMEOUT:REGEX   wait until REGEX appears in the output since the last match
    send:TEXT              send TEXT (\\n, \\r, \\x1b escapes understood)
    sleep:SECONDS
    eof:TIMEOUT            wait until QEMU closes the socket (the VM powered off)

Everything the VM prints is appended to LOG. Exits 1 with the step that
failed and the last output when a step times out.
"""
import re
import socket
import sys
import time


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
        elif kind == "send":
            text = arg.encode().decode("unicode_escape").encode("latin-1")
            s.sendall(text)
            print(f"serial_expect: sent {arg!r}", flush=True)
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
