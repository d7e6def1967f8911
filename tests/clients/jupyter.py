#!/usr/bin/env python3
"""A Jupyter client that reaches a notebook through Zoe, as a browser does (stdlib only).

    jupyter.py URL LINK USER PASSWORD CODE
    jupyter.py round-trips ADDRESS HOST HEADER N      (for the benchmark)

URL is the master (http://127.0.0.1:4850), LINK the notebook's link on it
(/proxy/<execution>/notebook/8888/). The client opens the link with the user's basic-auth
credentials and follows Zoe to the notebook's own host (<port>-<instance>-<id>.localhost on the
master's address and port, reached here by connecting to the master with that Host header): the
one-time ticket, then the host's cookie, which every later request carries (Zoe's credentials are
not accepted there). It checks that the application host refuses a request without the cookie
and a POST from another origin, reads a page, creates a kernel and runs CODE over the kernel's
WebSocket (legacy JSON messages). Prints one JSON object: {"refused_without_sign_in": status,
"refused_cross_origin": status, "kernel": id, "text": printed text, "error": null or "Name:
value"}; exits 1 when something did not work.

`round-trips` creates a kernel on the notebook at ADDRESS (host:port, sent `Host: HOST` and the
header line HEADER, e.g. `Cookie: zoe-app=...` through the proxy or `Authorization: token ...`
directly), runs `1` in it N times over one WebSocket, each after the previous reply, and prints
the round trips' times in microseconds as a JSON list.
"""

import base64
import http.client
import json
import os
import socket
import struct
import sys
import time
import urllib.parse
import uuid


def request(address, host, method, path, headers=None, body=None):
    """One request to `address` (host:port) with `Host: host`, no redirect followed:
    (status, headers, body)."""
    name, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(name, int(port), timeout=60)
    h = {"Host": host, **(headers or {})}
    data = None if body is None else json.dumps(body).encode()
    if data is not None:
        h["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=h)
    r = conn.getresponse()
    out = (r.status, r.headers, r.read())
    conn.close()
    return out


def sign_in(url, link, user, password):
    """Follows LINK on Zoe to the application's host: (host, cookie "name=value")."""
    address = urllib.parse.urlsplit(url).netloc
    auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    status, headers, body = request(address, address, "GET", link, {"Authorization": auth})
    if status != 303:
        raise SystemExit(f"GET {link} on Zoe: {status} {body[:300]!r}")
    target = urllib.parse.urlsplit(headers["Location"])
    path = target.path + ("?" + target.query if target.query else "")
    status, headers, body = request(address, target.netloc, "GET", path)
    cookie = (headers.get("Set-Cookie") or "").split(";", 1)[0]
    if status != 303 or not cookie:
        raise SystemExit(f"the sign-in on {target.netloc}: {status} {body[:300]!r}")
    return target.netloc, cookie


def main(url, link, user, password, code):
    address = urllib.parse.urlsplit(url).netloc
    host, cookie = sign_in(url, link, user, password)

    def http(method, path, headers=None, body=None, cookies=cookie):
        h = {"Cookie": cookies, **(headers or {})} if cookies else dict(headers or {})
        return request(address, host, method, "/" + path, h, body)

    refused, _, _ = http("GET", "api/status", cookies=None)
    status, headers, _ = http("GET", "lab")
    if status != 200:
        raise SystemExit(f"GET /lab on {host}: {status}")
    cookies = {}
    for h in headers.get_all("Set-Cookie") or []:
        k, v = h.split(";", 1)[0].split("=", 1)
        cookies[k] = v
    jar = "; ".join([cookie] + [f"{k}={v}" for k, v in cookies.items()])
    cross, _, _ = http("POST", "api/kernels", body={"name": "python3"}, cookies=jar,
                       headers={"Origin": "http://8888-other-1.localhost", "X-XSRFToken": cookies.get("_xsrf", "")})
    status, _, body = http("POST", "api/kernels", body={"name": "python3"}, cookies=jar,
                           headers={"Origin": f"http://{host}", "X-XSRFToken": cookies.get("_xsrf", "")})
    if status != 201:
        raise SystemExit(f"POST /api/kernels on {host}: {status} {body[:300]!r}")
    kernel = json.loads(body)["id"]
    text, error = run(f"http://{address}", None, jar, f"/api/kernels/{kernel}/channels", code, host=host)
    print(json.dumps({"refused_without_sign_in": refused, "refused_cross_origin": cross, "kernel": kernel,
                      "text": text, "error": error}))


class Socket:
    """A WebSocket client over one TCP connection: text frames out (masked), frames in."""

    def __init__(self, url, auth, cookie, path, host=None):
        address = urllib.parse.urlsplit(url).netloc
        host = host or address
        name, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((name, int(port)), timeout=180)
        # Each message goes out at once (a browser's WebSocket does not wait for ACKs either).
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        authorization = f"Authorization: {auth}\r\n" if auth else ""
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{authorization}"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                           f"Origin: http://{host}\r\nCookie: {cookie}\r\n\r\n").encode())
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


def run(url, auth, cookie, path, code, host=None):
    """Runs `code` in the kernel whose channels are at `path` on `url` (with the Authorization
    header value `auth`, if any, and `Host: host` if given): (printed text, error or None). Also
    used by apps/test-apps.py."""
    ws = Socket(url, auth, cookie, path, host)
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


def round_trips(address, host, header, n):
    name, value = header.split(": ", 1)
    extra = {name: value, "Origin": f"http://{host}"}
    status, _, body = request(address, host, "POST", "/api/kernels", extra, {"name": "python3"})
    if status != 201:
        raise SystemExit(f"POST /api/kernels on {host}: {status} {body[:300]!r}")
    kernel = json.loads(body)["id"]
    auth = value if name.lower() == "authorization" else None
    cookie = value if name.lower() == "cookie" else ""
    ws = Socket(f"http://{address}", auth, cookie, f"/api/kernels/{kernel}/channels", host)
    session, times = uuid.uuid4().hex, []
    for i in range(int(n) + 20):
        msg_id = uuid.uuid4().hex
        start = time.perf_counter()
        ws.send(0x1, json.dumps({
            "header": {"msg_id": msg_id, "username": "zoe-bench", "session": session,
                       "msg_type": "execute_request", "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": "1", "silent": True, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }).encode())
        while True:
            m = ws.recv()
            if m.get("parent_header", {}).get("msg_id") == msg_id and m["header"]["msg_type"] == "execute_reply":
                break
        if i >= 20:
            times.append((time.perf_counter() - start) * 1e6)
    ws.send(0x8, b"")
    request(address, host, "DELETE", f"/api/kernels/{kernel}", extra)
    print(json.dumps(times))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "round-trips":
        round_trips(*sys.argv[2:])
    elif len(sys.argv) == 6:
        main(*sys.argv[1:])
    else:
        raise SystemExit(__doc__)
