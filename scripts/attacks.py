#!/usr/bin/env python3
"""RELIABILITY.md's "Tried as an attacker": the replay and connection attacks
against any build of `card-member`, reproducible with Python's standard
library and the `openssl` command line (the flood has its own command,
`card-member flood`).

    scripts/attacks.py --bin target/release/card-member [--attack replay|connections|second-server|all]

replay       sign one update, send it (200), send it again (refused), restart
             the server (SIGTERM, then again with kill -9) and send it a third
             time: a server that forgets nonces applies it again.
second-server
             start a second server on the first's data directory (another
             port), send one signed update to the first (200) and the same
             bytes to the second: a second server that starts has its own
             memory of nonces and applies it again.
connections  under a 1,024 open-file limit, open 1,100 connections that each
             send an unfinished request head and hold them; report whether
             /healthz still answers, how soon, and how many of the attack's
             connections the server closed within 15 s.

Every server runs on 127.0.0.1 in a temporary directory and is stopped at
the end; every loop is bounded in count and time.
"""

import argparse
import base64
import json
import os
import secrets
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthz(port, timeout):
    """The status line of GET /healthz on a new connection, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data = s.recv(64)
            return data.split(b"\r\n", 1)[0].decode() if data else None
    except OSError:
        return None


class Server:
    def __init__(self, binary, directory, open_files=None):
        self.binary, self.directory, self.open_files = binary, directory, open_files
        self.port = free_port()
        self.process = None

    def start(self, may_refuse=False):
        command = [self.binary, "serve", "--listen", f"127.0.0.1:{self.port}"]
        if self.open_files:
            command = ["sh", "-c", f'ulimit -n {self.open_files} && exec "$0" "$@"'] + command
        self.process = subprocess.Popen(
            command, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if (healthz(self.port, 1) or "").startswith("HTTP/1.1 200"):
                return self
            if may_refuse and self.process.poll() is not None:
                return None
            time.sleep(0.05)
        raise SystemExit("the server did not start")

    def stop(self, sig=signal.SIGTERM):
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)


def signed_update(directory, level):
    """A PATCH of the development card, signed as the brand signs it."""
    creds = json.load(open(os.path.join(directory, "card-member-data/dev/credentials.json")))
    target = f"/brand/card-member/user-cards/{creds['user_card_code']}"
    body = json.dumps(
        {"card_id": creds["card_id"], "openid": creds["openid"], "level": level},
        separators=(",", ":"),
    )
    timestamp = str(int(time.time()))
    nonce = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    message = f"PATCH\n{target}\n{timestamp}\n{nonce}\n{body}\n".encode()
    signature = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", creds["brand_private_key_file"]],
        input=message, capture_output=True, check=True,
    ).stdout
    authorization = (
        f'WECHATPAY-BRAND-SHA256-RSA2048 brand_id="{creds["brand_id"]}",nonce_str="{nonce}",'
        f'signature="{base64.b64encode(signature).decode()}",timestamp="{timestamp}",'
        f'serial_no="{creds["brand_serial_no"]}"'
    )
    head = (
        f"PATCH {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Authorization: {authorization}\r\nAccept: application/json\r\n"
        f"Content-Type: application/json\r\nWechatpay-Serial: {creds['wechatpay_public_key_id']}\r\n"
        f"Content-Length: {len(body.encode())}\r\n\r\n"
    )
    return head.encode() + body.encode()


def send(port, raw):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    status = data.split(b"\r\n", 1)[0].decode()
    body = data.split(b"\r\n\r\n", 1)[-1].decode(errors="replace")
    return f"{status} {body[:120]}"


def replay(binary):
    for how in ("SIGTERM", "SIGKILL"):
        with tempfile.TemporaryDirectory() as directory:
            server = Server(binary, directory).start()
            captured = signed_update(directory, "captured")
            print(f"replay/{how}: first send:  {send(server.port, captured)}")
            print(f"replay/{how}: second send: {send(server.port, captured)}")
            server.stop(getattr(signal, how))
            server.start()
            print(f"replay/{how}: after restart: {send(server.port, captured)}")
            server.stop()


def second_server(binary):
    with tempfile.TemporaryDirectory() as directory:
        first = Server(binary, directory).start()
        second = Server(binary, directory)
        started = second.start(may_refuse=True)
        captured = signed_update(directory, "captured")
        print(f"second-server: to the first:  {send(first.port, captured)}")
        if started is None:
            print(f"second-server: the second refused to start (exit {second.process.returncode})")
        else:
            print(f"second-server: to the second: {send(second.port, captured)}")
            second.stop()
        first.stop()


def connections(binary, count=1100, hold=15.0):
    with tempfile.TemporaryDirectory() as directory:
        server = Server(binary, directory, open_files=1024).start()
        held, refused_at_connect = [], 0
        started = time.time()
        for _ in range(count):
            try:
                s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                s.setblocking(False)
                held.append(s)
            except OSError:
                refused_at_connect += 1
        print(f"connections: opened {len(held)} half-finished requests "
              f"({refused_at_connect} refused at connect) in {time.time() - started:.1f} s")
        answered = None
        while time.time() - started < hold:
            status = healthz(server.port, 1)
            if status and status.startswith("HTTP/1.1 200"):
                answered = time.time() - started
                break
        print("connections: /healthz " + (
            f"answered 200 after {answered:.1f} s" if answered is not None
            else f"did not answer within {hold:.0f} s"))
        time.sleep(max(0.0, hold - (time.time() - started)))
        closed = 0
        for s in held:
            try:
                data = s.recv(1024)
                closed += 1 if data == b"" or data.startswith(b"HTTP/1.1 503") else 0
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
            s.close()
        print(f"connections: after {hold:.0f} s the server had closed {closed} of {len(held)}")
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", default="target/release/card-member")
    parser.add_argument(
        "--attack", choices=["replay", "connections", "second-server", "all"], default="all"
    )
    args = parser.parse_args()
    binary = os.path.abspath(args.bin)
    if args.attack in ("replay", "all"):
        replay(binary)
    if args.attack in ("second-server", "all"):
        second_server(binary)
    if args.attack in ("connections", "all"):
        connections(binary)


if __name__ == "__main__":
    sys.exit(main())
