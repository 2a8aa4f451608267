#!/usr/bin/env python3
"""A minimal SMTP sink for smoke tests (Python 3 standard library only).

Listens on 127.0.0.1 (port 0 by default: a free one), writes the port to --port-file once it
listens, and saves the DATA of every accepted message, dot-unstuffed, as <dir>/mail-N.eml
(written to a temporary name first, then renamed, so a reader never sees half a message).
Plain text only: no STARTTLS, no AUTH. Runs until killed.

    python3 scripts/smtp_sink.py --dir /tmp/mail --port-file /tmp/mail/port
"""

import argparse
import itertools
import os
import socket
import threading

COUNTER = itertools.count(1)
COUNTER_LOCK = threading.Lock()


def session(conn, out_dir):
    conn.settimeout(120)
    rfile = conn.makefile("rb")

    def send(line):
        conn.sendall(line.encode("ascii") + b"\r\n")

    def read_line():
        raw = rfile.readline(65536)
        if not raw:
            return None
        return raw.rstrip(b"\n").rstrip(b"\r")

    send("220 smoke-sink ESMTP ready")
    while True:
        raw = read_line()
        if raw is None:
            return
        line = raw.decode("utf-8", "replace")
        verb = line.split(" ", 1)[0].upper()
        if verb == "EHLO":
            send("250-smoke-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760")
        elif verb == "HELO":
            send("250 smoke-sink")
        elif verb == "MAIL":
            send("250 2.1.0 ok")
        elif verb == "RCPT":
            send("250 2.1.5 ok")
        elif verb == "DATA":
            send("354 end with <CRLF>.<CRLF>")
            data = bytearray()
            while True:
                raw = read_line()
                if raw is None:
                    return
                if raw == b".":
                    break
                if raw.startswith(b"."):
                    raw = raw[1:]
                data += raw + b"\r\n"
            with COUNTER_LOCK:
                n = next(COUNTER)
            path = os.path.join(out_dir, "mail-%d.eml" % n)
            with open(path + ".part", "wb") as f:
                f.write(data)
            os.rename(path + ".part", path)
            send("250 2.0.0 queued as %d" % n)
        elif verb in ("RSET", "NOOP"):
            send("250 2.0.0 ok")
        elif verb == "QUIT":
            send("221 2.0.0 bye")
            return
        else:
            send("502 5.5.2 command not recognized")


def serve(conn, out_dir):
    try:
        session(conn, out_dir)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="where to save the messages")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    parser.add_argument("--port-file", help="write the port here once listening")
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(16)
    port = listener.getsockname()[1]
    if args.port_file:
        with open(args.port_file + ".part", "w") as f:
            f.write("%d\n" % port)
        os.rename(args.port_file + ".part", args.port_file)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, args.dir), daemon=True).start()


if __name__ == "__main__":
    main()
