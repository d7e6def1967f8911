#!/usr/bin/env python3
"""A Jupyter client that reaches a notebook through Zoe's authenticated proxy (stdlib only).

    jupyter.py URL BASE USER PASSWORD CODE

URL is the master (http://127.0.0.1:4850), BASE the notebook's proxy path
(/proxy/<execution>/notebook/8888/). Every request carries the user's basic-auth credentials,
as a signed-in browser's do. The client does what JupyterLab does: reads a page to get the
`_xsrf` cookie, creates a kernel with the XSRF token (after checking that a POST without it is
refused), opens the kernel's WebSocket through the proxy and runs CODE over it (legacy JSON
messages). Prints one JSON object: {"refused_without_xsrf": status, "kernel": id, "text":
printed text, "error": null or "Name: value"}; exits 1 when something did not work.
"""

import base64
import json
import os
import socket
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid


def main(url, base, user, password, code):
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    root = url.rstrip("/") + base

    def http(method, path, headers=None, body=None):
        h = {"Authorization": auth, **(headers or {})}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(root + path, method=method, headers=h, data=data)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    status, headers, _ = http("GET", "lab")
    cookies = {}
    for h in headers.get_all("Set-Cookie") or []:
        k, v = h.split(";", 1)[0].split("=", 1)
        cookies[k] = v
    if status != 200 or "_xsrf" not in cookies:
        raise SystemExit(f"GET {base}lab: {status}, cookies {sorted(cookies)}")
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    refused, _, _ = http("POST", "api/kernels", body={"name": "python3"})
    status, _, body = http("POST", "api/kernels", body={"name": "python3"},
                           headers={"X-XSRFToken": cookies["_xsrf"], "Cookie": cookie})
    if status != 201:
        raise SystemExit(f"POST {base}api/kernels: {status} {body[:300]!r}")
    kernel = json.loads(body)["id"]
    text, error = run(url, auth, cookie, f"{base}api/kernels/{kernel}/channels", code)
    print(json.dumps({"refused_without_xsrf": refused, "kernel": kernel, "text": text, "error": error}))


class Socket:
    """A WebSocket client over one TCP connection: text frames out (masked), frames in."""

    def __init__(self, url, auth, cookie, path):
        host = urllib.parse.urlsplit(url).netloc
        name, port = host.rsplit(":", 1)
        self.sock = socket.create_connection((name, int(port)), timeout=180)
        key = base64.b64encode(os.urandom(16)).decode()
        authorization = f"Authorization: {auth}\r\n" if auth else ""
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{authorization}"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Cookie: {cookie}\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise SystemExit(f"the WebSocket handshake was cut: {head!r}")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise SystemExit(f"WebSocket refused: {head.decode(errors='replace')}")

    def read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit("the WebSocket was closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def recv(self):
        message = b""
        while True:
            b0, b1 = self.read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.read(8))[0]
            payload = self.read(n)
            opcode = b0 & 0x0F
            if opcode == 0x9:
                self.send(0xA, payload)
                continue
            if opcode == 0x8:
                raise SystemExit("the WebSocket was closed by the server")
            message += payload
            if b0 & 0x80:
                return json.loads(message)


def run(url, auth, cookie, path, code):
    """Runs `code` in the kernel whose channels are at `path` on `url` (with the basic-auth
    header `auth`, if any): (printed text, error or None). Also used by apps/test-apps.py."""
    ws = Socket(url, auth, cookie, path)
    msg_id, session = uuid.uuid4().hex, uuid.uuid4().hex
    ws.send(0x1, json.dumps({
        "header": {"msg_id": msg_id, "username": "zoe-test", "session": session,
                   "msg_type": "execute_request", "version": "5.3",
                   "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }).encode())
    text, error, replied, idle = "", None, False, False
    while not (replied and idle):
        m = ws.recv()
        if m.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind, content = m["header"]["msg_type"], m["content"]
        if kind == "stream":
            text += content["text"]
        elif kind == "execute_result":
            text += content["data"].get("text/plain", "") + "\n"
        elif kind == "error":
            error = f"{content['ename']}: {content['evalue']}"
        elif kind == "execute_reply":
            replied = True
        elif kind == "status" and content["execution_state"] == "idle":
            idle = True
    ws.send(0x8, b"")
    return text, error


if __name__ == "__main__":
    if len(sys.argv) != 6:
        raise SystemExit(__doc__)
    main(*sys.argv[1:])
