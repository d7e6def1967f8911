#!/usr/bin/env python3
"""Runs the applications of apps/*.json on plain Docker, the way Zoe runs them, and checks them.

    apps/test-apps.py [wordcount] [jupyter] [spark-jupyter]     (default: all three)

Needs the images (apps/build-images.sh), Docker and python3 (stdlib only). For every service
instance of a description, in startup order, one `docker run` like Zoe's: host name
`<service>[-<index>]-<execution>-<owner>-<deployment>` (also a network alias, since the test
containers' names carry the `zoe-apptest-` prefix), the description's environment and command
(templates expanded, split like a shell), the memory limit as memory and swap limit, and:

    --user 200123:200123 --cap-drop ALL --security-opt no-new-privileges --init
    --read-only --tmpfs /tmp:rw,nosuid,nodev,size=<memory>,mode=1777
    --pids-limit 512 -v <workspace owned by 200123, mode 0700>:/mnt/workspace
    -e HOME=/mnt/workspace -e ZOE_PROXY_PATH_<port>=/ -e ZOE_PROXY_SECRET=<random>
    -p 127.0.0.1::<port> for exposed ports, on a private bridge network

(Zoe serves each exposed port at the root of a host of its own, and adds a port's
`secret_header` to every request it forwards; here the script adds it itself.) Checks: the word
count's output equals coreutils' count of the same input; the notebook refuses a request without
the execution's secret, answers with it, creates a kernel and runs code in the kernel over its
WebSocket (a local Spark job in `jupyter`, a job on the cluster in `spark-jupyter`); the Spark
master's UI answers at its root; every file written in the workspace belongs to the uid; no
process runs as root. Prints timings and memory figures. Every object it creates is named `zoe-apptest-*` and
removed at the end, even on failure; every docker command runs alone and under a timeout.
"""

import json
import os
import secrets
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
# The kernel WebSocket client of the test suite (tests/clients/jupyter.py).
sys.path.insert(0, os.path.join(HERE, "..", "tests", "clients"))
import jupyter  # noqa: E402
PREFIX = "zoe-apptest-"
NETWORK = PREFIX + "net"
LABEL = "zoe-apptest=1"
UID = GID = 200123
OWNER, DEPLOYMENT = "alice", "apptest"
WORKSPACE_MOUNT = "/mnt/workspace"

created = []  # names of the containers created, removed at the end
failures = []  # what did not work, reported at the end


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def check(ok, what):
    log(("ok    " if ok else "FAIL  ") + what)
    if not ok:
        failures.append(what)
    return ok


# --- Docker ------------------------------------------------------------------------------------

def docker(*args, timeout=60, ok=False):
    """Runs one docker command under `timeout`; returns stdout (raises unless `ok`)."""
    cmd = ["timeout", "--kill-after=10", str(timeout), "docker", *args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 and not ok:
        raise RuntimeError(f"docker {' '.join(args[:3])}... failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout


def cleanup():
    for name in reversed(created):
        docker("rm", "-f", "-v", name, timeout=60, ok=True)
    created.clear()
    docker("network", "rm", NETWORK, timeout=60, ok=True)


def remove_leftovers():
    """Removes the containers and network of an earlier, interrupted run of this script."""
    ids = docker("ps", "-aq", "--filter", f"label={LABEL}", ok=True).split()
    for cid in ids:
        docker("rm", "-f", "-v", cid, ok=True)
    if docker("network", "ls", "-q", "--filter", f"name=^{NETWORK}$", ok=True).strip():
        docker("network", "rm", NETWORK, ok=True)


# --- Descriptions, as Zoe reads them -----------------------------------------------------------

TEMPLATE = re.compile(r"\{\{|\}\}|\{([a-z_]+)\}")


def expand(text, variables):
    """Zoe's templates: {name} is a variable, {{ and }} are literal braces."""
    def sub(m):
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        return str(variables[m.group(1)])
    return TEMPLATE.sub(sub, text)


def instances(description, execution, execution_id):
    """Every container of an execution of `description`, in startup order, as Zoe names it."""
    out = []
    secret = secrets.token_hex(32)
    for s in sorted(description["services"], key=lambda s: s["startup_order"]):
        for index in range(s["total_count"]):
            instance = s["name"] if s["total_count"] == 1 else f"{s['name']}-{index}"
            variables = dict(execution_name=execution, user_name=OWNER,
                             deployment_name=DEPLOYMENT, index=index, execution_id=execution_id,
                             proxy_path=f"/proxy/{execution_id}/{instance}", proxy_secret=secret)
            cmd = s.get("command")
            out.append(dict(
                service=s["name"],
                instance=instance,
                host=f"{instance}-{execution}-{OWNER}-{DEPLOYMENT}",
                image=s["docker_image"],
                env=[(k, expand(v, variables)) for k, v in s.get("environment", [])],
                cmd=shlex.split(expand(cmd, variables)) if cmd else [],
                memory=s["required_resources"]["memory"],
                ports=[p["port_number"] for p in s["ports"] if p.get("expose")],
                monitor=s["monitor"],
                secret=secret,
                # What the proxy adds to every request to a port: {port: (name, value)}.
                headers={p["port_number"]: tuple(x.strip() for x in
                                                 p["secret_header"].replace("{secret}", secret).split(":", 1))
                         for p in s["ports"] if p.get("expose") and p.get("secret_header")},
            ))
    return out


def run_container(c, workspace):
    """`docker run` of one instance, with the flags Zoe uses; returns the published ports."""
    name = PREFIX + c["host"]
    args = ["run", "--detach", "--name", name, "--hostname", c["host"],
            "--network", NETWORK, "--network-alias", c["host"], "--label", LABEL,
            "--user", f"{UID}:{GID}", "--cap-drop", "ALL",
            "--security-opt", "no-new-privileges", "--init", "--pids-limit", "512",
            "--memory", str(c["memory"]), "--memory-swap", str(c["memory"]),
            "--read-only", "--tmpfs", f"/tmp:rw,nosuid,nodev,size={c['memory']},mode=1777",
            "-v", f"{workspace}:{WORKSPACE_MOUNT}", "-e", f"HOME={WORKSPACE_MOUNT}"]
    for port in c["ports"]:
        args += ["-e", f"ZOE_PROXY_PATH_{port}=/", "-p", f"127.0.0.1::{port}"]
    args += ["-e", f"ZOE_PROXY_SECRET={c['secret']}"]
    for k, v in c["env"]:
        args += ["-e", f"{k}={v}"]
    args += [c["image"], *c["cmd"]]
    created.append(name)
    docker(*args, timeout=60)
    ports = {}
    for port in c["ports"]:
        hostport = docker("port", name, f"{port}/tcp").split()[0]
        ports[port] = int(hostport.rsplit(":", 1)[1])
    return ports


def state(name):
    s = json.loads(docker("inspect", "--format", "{{json .State}}", name))
    return s["Status"], s["ExitCode"], s["OOMKilled"]


def logs(name, tail=40):
    r = subprocess.run(["timeout", "30", "docker", "logs", "--tail", str(tail), name],
                       capture_output=True, text=True)
    return (r.stdout + r.stderr).strip()


def memory_sample(names):
    """One `docker stats --no-stream` sample: {container: used MiB (without page cache)}."""
    out = docker("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}", *names,
                 timeout=10, ok=True)
    sample = {}
    for line in out.splitlines():
        name, usage = line.split(" ", 1)
        value = usage.split("/")[0].strip()
        number, unit = re.match(r"([\d.]+)\s*([KMG]i?B|B)", value).groups()
        factor = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}.get(unit, 1)
        sample[name] = float(number) * factor
    return sample


def peak_memory(name):
    """The cgroup's peak memory use (MiB, page cache included), cgroup v1 or v2."""
    cid = docker("inspect", "--format", "{{.Id}}", name).strip()
    for path in (f"/sys/fs/cgroup/memory/docker/{cid}/memory.max_usage_in_bytes",
                 f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/memory.peak"):
        try:
            with open(path) as f:
                return int(f.read()) / 2**20
        except OSError:
            pass
    return None


def check_processes(names):
    """No process of these containers runs as root (uids as the host sees them)."""
    for name in names:
        if state(name)[0] != "running":
            continue
        rows = docker("top", name, "-eo", "uid,pid,comm").splitlines()[1:]
        uids = {r.split()[0] for r in rows}
        check(uids == {str(UID)}, f"{name}: {len(rows)} processes, uids {sorted(uids)}")


def check_workspace_owner(workspace):
    foreign = []
    for root, dirs, files in os.walk(workspace):
        for n in dirs + files:
            p = os.path.join(root, n)
            st = os.lstat(p)
            if st.st_uid != UID or st.st_gid != GID:
                foreign.append(f"{p} ({st.st_uid}:{st.st_gid})")
    count = sum(len(d) + len(f) for _, d, f in os.walk(workspace))
    check(not foreign, f"the {count} files and folders in the workspace belong to {UID}:{GID} "
          f"(top level: {' '.join(sorted(os.listdir(workspace)))})"
          + (f"; not: {foreign[:5]}" if foreign else ""))


# --- HTTP and a minimal Jupyter client ---------------------------------------------------------

def http(method, url, headers=None, body=None, timeout=10):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method, headers=headers or {},
                                 data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def wait_http(url, deadline, auth=None, ok=lambda status, body: status == 200):
    """The body of `url` once it answers (with the header `auth`: (name, value)), or None."""
    while time.monotonic() < deadline:
        try:
            status, _, body = http("GET", url, headers=dict([auth]) if auth else None, timeout=5)
            if ok(status, body):
                return body
        except (OSError, ValueError):
            pass
        time.sleep(0.25)
    return None


def notebook_checks(name, port, auth, workspace, code):
    """The checks of a notebook served at http://127.0.0.1:port/, reached with the header the
    proxy adds (`auth`: (name, value)); runs `code` in a kernel. Returns the kernel's printed
    text."""
    url = f"http://127.0.0.1:{port}/"
    secret = {auth[0]: auth[1]}
    status, _, _ = http("GET", url + "api/status")
    check(status == 403, f"GET /api/status without the secret is refused: {status}")
    status, _, _ = http("GET", url + "api/status", headers={auth[0]: auth[1] + "x"})
    check(status == 403, f"GET /api/status with a wrong secret is refused: {status}")
    status, headers, _ = http("GET", url + "lab", headers=secret)
    check(status == 200, f"GET /lab with the secret: {status}")
    start = time.monotonic()
    status, _, body = http("POST", url + "api/kernels", body={"name": "python3"},
                           headers={**secret, "Content-Type": "application/json"})
    kernel = json.loads(body) if status == 201 else {}
    check(status == 201, f"POST /api/kernels: {status}, kernel {kernel.get('id', '?')[:8]}")
    status, _, body = http("GET", url + "api/kernels", headers=secret)
    check(status == 200 and any(k["id"] == kernel.get("id") for k in json.loads(body)),
          f"GET /api/kernels lists it: {status}")
    status, _, body = http("PUT", url + "api/contents/apptest.txt",
                           body={"type": "file", "format": "text", "content": "hello\n"},
                           headers={**secret, "Content-Type": "application/json"})
    check(status in (200, 201) and os.path.exists(os.path.join(workspace, "apptest.txt")),
          f"PUT /api/contents/apptest.txt writes into the workspace: {status}")
    if not kernel:
        return ""
    text, error = jupyter.run(f"http://127.0.0.1:{port}", auth[1], "",
                              f"/api/kernels/{kernel['id']}/channels", code)
    log(f"kernel ran the code {time.monotonic() - start:.1f} s after its creation:\n"
        + "\n".join("        " + line for line in text.strip().splitlines()))
    check(error is None, f"the kernel's code ran without error{': ' + error if error else ''}")
    return text


# --- The applications ----------------------------------------------------------------------------

def load(name):
    with open(os.path.join(HERE, name)) as f:
        return json.load(f)


def make_workspace(tmp, name):
    ws = os.path.join(tmp, name)
    os.mkdir(ws)
    os.chown(ws, UID, GID)
    os.chmod(ws, 0o700)
    return ws


def write_input(path, words=300_000):
    """A deterministic text: varied words (some non-ASCII, one with a no-break space inside),
    separated by runs of spaces and tabs, with blank lines and CRLF line ends."""
    import random
    rnd = random.Random(42)
    vocabulary = [f"w{i}" for i in range(3000)] + ["Zoe", "zoe", "Spark", "café", "naïve",
                                                      "日本語", "a\u00a0b", "x-y", "(z)", "end."]
    lines, n = [], 0
    while n < words:
        k = rnd.randint(0, 14)
        seps = [rnd.choice([" ", " ", " ", "  ", "\t", " \t "]) for _ in range(k)]
        ws = [vocabulary[min(int(rnd.paretovariate(1.1)) - 1, len(vocabulary) - 1)]
              if rnd.random() < 0.6 else rnd.choice(vocabulary) for _ in range(k)]
        line = "".join(w + s for w, s in zip(ws, seps))
        lines.append(rnd.choice(["", " ", "\t"]) + line + rnd.choice(["\n", "\n", "\r\n"]))
        n += k
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.writelines(lines)
    os.chown(os.path.dirname(path), UID, GID)
    os.chown(path, UID, GID)
    return n


def watch_cluster(ui_port, t0, deadline, until, names, marks, peaks):
    """Polls the master's JSON status (and memory every ~3 s) until `until()` is true. Records
    in `marks` the seconds from t0 to: master ALIVE, 2 workers registered, an application
    running; in `peaks` the highest memory sample of each container."""
    next_stats = 0.0
    while time.monotonic() < deadline:
        try:
            _, _, body = http("GET", f"http://127.0.0.1:{ui_port}/json/", timeout=3)
            s = json.loads(body)
            now = time.monotonic() - t0
            if s.get("status") == "ALIVE":
                marks.setdefault("master ALIVE", now)
            if s.get("aliveworkers", 0) >= 2:
                marks.setdefault("2 workers registered", now)
            if s.get("activeapps"):
                marks.setdefault("application running", now)
        except (OSError, ValueError):
            pass
        if time.monotonic() >= next_stats:
            for k, v in memory_sample(names).items():
                peaks[k] = max(peaks.get(k, 0), v)
            next_stats = time.monotonic() + 3
        if until():
            return True
        time.sleep(0.25)
    return False


def start_all(description, execution, execution_id, workspace):
    containers = instances(description, execution, execution_id)
    t0 = time.monotonic()
    published = {}
    for c in containers:
        published[c["host"]] = run_container(c, workspace)
    log(f"{len(containers)} containers started in {time.monotonic() - t0:.1f} s: "
        + ", ".join(PREFIX + c["host"] for c in containers))
    return containers, published, t0


def check_master_ui(ui):
    """The master's web UI, as Zoe's proxy asks for it: at the root of its own host."""
    status, _, body = http("GET", ui + "/")
    check(status == 200 and b'href="/static/webui.css"' in body,
          f"GET /: {status}, the master UI's links are at the root")
    status, headers, _ = http("GET", ui + "/static/webui.css")
    check(status == 200 and headers.get("Content-Type", "").startswith("text/css"),
          f"GET /static/webui.css: {status} {headers.get('Content-Type')}")


def report_memory(containers, peaks):
    for c in containers:
        name = PREFIX + c["host"]
        peak = peak_memory(name)
        parts = []
        if name in peaks:
            parts.append(f"highest docker stats sample {peaks[name]:.0f} MiB")
        if peak is not None:
            parts.append(f"cgroup peak (with page cache) {peak:.0f} MiB")
        parts.append(f"limit {c['memory'] / 2**20:.0f} MiB")
        log(f"memory {c['host']}: " + ", ".join(parts))


def test_wordcount(tmp):
    log("=== spark-wordcount.json: master, 2 workers, spark-submit of the word count")
    workspace = make_workspace(tmp, "ws-wordcount")
    input_path = os.path.join(workspace, "wordcount", "input.txt")
    n = write_input(input_path)
    log(f"input: {n} words, {os.path.getsize(input_path) / 1e6:.1f} MB")
    containers, published, t0 = start_all(load("spark-wordcount.json"), "wc1", 1, workspace)
    master = next(c for c in containers if c["service"] == "spark-master")
    submit = PREFIX + next(c for c in containers if c["monitor"])["host"]
    names = [PREFIX + c["host"] for c in containers]
    marks, peaks = {}, {}
    done = lambda: state(submit)[0] == "exited"
    checked_processes = []

    def until():
        if "application running" in marks and not checked_processes:
            check_processes(names)
            checked_processes.append(True)
        return done()

    ui = f"http://127.0.0.1:{published[master['host']][8080]}"
    finished = watch_cluster(published[master["host"]][8080], t0, t0 + 600, until, names,
                             marks, peaks)
    check_master_ui(ui)
    marks["word count done (spark-submit exited)"] = time.monotonic() - t0
    for k, v in marks.items():
        log(f"time from the first docker run to {k}: {v:.1f} s")
    status, code, oom = state(submit)
    check(finished and code == 0 and not oom, f"spark-submit exited {code} (OOM killed: {oom})")
    sub_log = logs(submit, 400)
    for line in sub_log.splitlines():
        if line.startswith(("wordcount:", "zoe-spark-wait:")):
            log("  " + line)
    if code != 0:
        log("spark-submit's log:\n" + sub_log[-4000:])

    out = os.path.join(workspace, "wordcount", "output")
    cmd = (f"cat {shlex.quote(out)}/part-* | LC_ALL=C sort > {tmp}/spark.txt && "
           f"LC_ALL=C tr -s ' \\t\\n\\r\\v\\f' '\\n' < {shlex.quote(input_path)} | "
           f"LC_ALL=C grep -v '^$' | LC_ALL=C sort | LC_ALL=C uniq -c | "
           f"LC_ALL=C awk '{{print $2 \"\\t\" $1}}' | LC_ALL=C sort > {tmp}/coreutils.txt && "
           f"cmp {tmp}/spark.txt {tmp}/coreutils.txt && wc -l < {tmp}/spark.txt")
    r = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True)
    check(r.returncode == 0, f"the word count equals coreutils' count ({r.stdout.strip() or '?'} "
          f"distinct words){': ' + r.stderr.strip() if r.returncode else ''}")
    parts = [p for p in os.listdir(out) if p.startswith("part-")] if os.path.isdir(out) else []
    check(len(parts) > 0, f"{len(parts)} part-* files in {out}")
    report_memory(containers, peaks)
    check_processes(names)
    check_workspace_owner(workspace)
    for name in names:
        status, code, oom = state(name)
        if oom:
            check(False, f"{name} was OOM killed")
    return containers


NOTEBOOK_LOCAL_CODE = r"""
import os, getpass, pyspark
from pyspark.sql import SparkSession
print("user", os.getuid(), getpass.getuser(), "HOME", os.environ["HOME"], "cwd", os.getcwd())
spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
print("master", sc.master, "pyspark", pyspark.__version__)
print("sum", sc.parallelize(range(100000), 4).map(lambda x: x % 7).sum())
spark.stop()
"""

NOTEBOOK_CLUSTER_CODE = r"""
import os, getpass, socket
from pyspark.sql import SparkSession
print("user", os.getuid(), getpass.getuser(), "HOME", os.environ["HOME"])
spark = SparkSession.builder.getOrCreate()
sc = spark.sparkContext
print("master", sc.master, "driver", sc.getConf().get("spark.driver.host"))
hosts = sc.parallelize(range(8), 8).map(lambda x: socket.gethostname()).distinct().collect()
print("executor hosts", sorted(hosts))
print("sum", sc.parallelize(range(100000), 4).map(lambda x: x % 7).sum())
df = spark.range(1000).selectExpr("id % 10 as k").groupBy("k").count()
print("groups", df.count())
"""


def test_jupyter(tmp):
    log("=== jupyter.json: JupyterLab alone")
    workspace = make_workspace(tmp, "ws-jupyter")
    containers, published, t0 = start_all(load("jupyter.json"), "nb1", 2, workspace)
    nb = containers[0]
    name, port, auth = PREFIX + nb["host"], published[nb["host"]][8888], nb["headers"][8888]
    body = wait_http(f"http://127.0.0.1:{port}/api/status", t0 + 120, auth)
    up = time.monotonic() - t0
    if not check(body is not None, f"the notebook API answers at /api/status {up:.1f} s after docker run"):
        log(logs(name))
        return containers
    peaks = {}
    peaks.update(memory_sample([name]))
    log(f"memory {nb['host']} idle: {peaks.get(name, 0):.0f} MiB")
    text = notebook_checks(name, port, auth, workspace, NOTEBOOK_LOCAL_CODE)
    check(f"user {UID} zoe HOME /mnt/workspace cwd /mnt/workspace" in text,
          "the kernel runs as the uid, named by nss_wrapper, in the workspace")
    check("master local[*]" in text and "sum 299995" in text, "a local Spark job runs in the notebook")
    for k, v in memory_sample([name]).items():
        log(f"memory {nb['host']} with a kernel (Spark stopped): {v:.0f} MiB")
    report_memory(containers, {})
    check_processes([name])
    check_workspace_owner(workspace)
    return containers


def test_spark_jupyter(tmp):
    log("=== spark-jupyter.json: master, 2 workers, a notebook driving the cluster")
    workspace = make_workspace(tmp, "ws-spark-jupyter")
    containers, published, t0 = start_all(load("spark-jupyter.json"), "sj1", 3, workspace)
    master = next(c for c in containers if c["service"] == "spark-master")
    nb = next(c for c in containers if c["service"] == "notebook")
    names = [PREFIX + c["host"] for c in containers]
    marks, peaks = {}, {}
    watch_cluster(published[master["host"]][8080], t0, t0 + 120,
                  lambda: "2 workers registered" in marks, names, marks, peaks)
    port, auth = published[nb["host"]][8888], nb["headers"][8888]
    body = wait_http(f"http://127.0.0.1:{port}/api/status", t0 + 120, auth)
    marks["notebook API up"] = time.monotonic() - t0
    for k, v in marks.items():
        log(f"time from the first docker run to {k}: {v:.1f} s")
    if not check(body is not None and "2 workers registered" in marks,
                 "the cluster and the notebook are up"):
        for c in containers:
            log(f"{c['host']}:\n{logs(PREFIX + c['host'])}")
        return containers
    text = notebook_checks(PREFIX + nb["host"], port, auth, workspace, NOTEBOOK_CLUSTER_CODE)
    check(f"master spark://{master['host']}:7077 driver {nb['host']}" in text,
          "SparkSession.builder.getOrCreate() uses the cluster's master, driver host = notebook")
    workers = sorted(c["host"] for c in containers if c["service"] == "spark-worker")
    check(f"executor hosts {workers}" in text, "executors ran on both workers")
    check("sum 299995" in text and "groups 10" in text, "RDD and DataFrame jobs give the right results")
    ui = f"http://127.0.0.1:{published[master['host']][8080]}"
    status, _, body = http("GET", ui + "/json/")
    apps = json.loads(body).get("activeapps", []) if status == 200 else []
    check(len(apps) == 1, f"the master shows the notebook's application: "
          f"{[(a.get('name'), a.get('cores')) for a in apps]}")
    for k, v in memory_sample(names).items():
        peaks[k] = max(peaks.get(k, 0), v)
    report_memory(containers, peaks)
    check_processes(names)
    check_workspace_owner(workspace)
    check_master_ui(ui)
    return containers


TESTS = {"wordcount": test_wordcount, "jupyter": test_jupyter, "spark-jupyter": test_spark_jupyter}


def main(argv):
    chosen = argv[1:] or list(TESTS)
    unknown = [t for t in chosen if t not in TESTS]
    if unknown:
        print(__doc__, file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix=PREFIX)
    start = time.monotonic()
    try:
        remove_leftovers()
        docker("network", "create", "--driver", "bridge", "--label", LABEL, NETWORK)
        for t in chosen:
            t0 = time.monotonic()
            try:
                TESTS[t](tmp)
            except Exception as e:  # a failure of one application does not stop the others
                check(False, f"{t}: {type(e).__name__}: {e}")
                for name in created:
                    log(f"log of {name}:\n{logs(name, 30)}")
            log(f"=== {t}: {time.monotonic() - t0:.1f} s")
            for name in reversed(created):
                docker("rm", "-f", "-v", name, ok=True)
            created.clear()
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    left = docker("ps", "-aq", "--filter", f"label={LABEL}", ok=True).split()
    check(not left, f"no test container left behind ({len(left)})")
    log(f"{len(failures)} failure(s) in {time.monotonic() - start:.0f} s"
        + "".join(f"\n  - {f}" for f in failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
