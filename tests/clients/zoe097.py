#!/usr/bin/env python3
"""The requests and the output of Zoe 0.9.7's command-line client, for the subcommands that read
executions (exec-ls, exec-get, exec-app-get), written from the reference (section 9.2) with the
standard library only. Tests run it against a master to prove that 0.9.7's clients keep working.

Server and credentials come from ZOE_URL, ZOE_USER and ZOE_PASS, as for 0.9.7.
"""

import base64
import json
import os
import sys
import urllib.error
import urllib.request


def call(method, path, body=None):
    url = os.environ["ZOE_URL"] + "/api/0.6" + path
    token = base64.b64encode(("%s:%s" % (os.environ["ZOE_USER"], os.environ["ZOE_PASS"])).encode()).decode()
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", "Basic " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def exec_ls():
    status, data = call("GET", "/execution")
    if status != 200:
        print(data["message"])
        return
    for e in data:
        print("Execution {} (User: {}, ID: {}): {}".format(e["name"], e["owner"], e["id"], e["status"]))


def exec_get(exec_id):
    status, e = call("GET", "/execution/%d" % exec_id)
    if status != 200:
        print("Execution not found")
        return
    print("Execution {} (ID: {})".format(e["name"], e["id"]))
    print("Status: {}".format(e["status"]))
    if e["error"] is not None:
        print("Last error: {}".format(e["error"]))
    print("Time started: {}".format(e["time_started"]))
    print("Time scheduled: {}".format(e["time_scheduled"]))
    print("Time finished: {}".format(e["time_finished"]))
    print("Application name: {}".format(e["application"]["name"]))
    for sid in e["services"]:
        _, s = call("GET", "/service/%d" % sid)
        print("Service {} (ID: {})".format(s["name"], s["id"]))
        ip = list(s["ip_address"].values())[0]
        for p in s["ports"]:
            print(" - {}: {}://{}:{}{}".format(p["name"], p["protocol"], ip, p["port_number"], p["path"]))


def exec_app_get(name):
    _, data = call("POST", "/query", {"what": "execution", "filters": {"name": name}})
    if len(data) == 0:
        print("no such execution")
        return
    print(json.dumps(data[0]["application"], indent=4, sort_keys=True))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "exec-ls":
        exec_ls()
    elif cmd == "exec-get":
        exec_get(int(args[0]))
    elif cmd == "exec-app-get":
        exec_app_get(args[0])
    else:
        sys.exit("unknown subcommand " + cmd)
