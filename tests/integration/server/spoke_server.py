"""spoke_server.py - helpers for the server integration tests: start
`spoke serve` on 127.0.0.1 with an OS-picked port (always stopped, also on
failure), small HTTP/SSE clients on the standard library."""
import atexit
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

SPOKE = os.environ.get("SPOKE_BIN", "build/spoke")
SRC = os.environ.get("SPOKE_SRC_DIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))))
MODEL = os.path.join(SRC, "models", "stories260K.gguf")
ASAN = bool(os.environ.get("SPOKE_ASAN"))

_live = []
_tmpdirs = []


def numpy_or_system_python():
    """True when numpy imports. Else, when this python3 is not the system one
    (a pyenv without Debian's python3-numpy), re-run this script under
    /usr/bin/python3 if it exists (once: SPOKE_NUMPY_REEXEC); False when
    neither has numpy. Call it before anything else starts."""
    try:
        import numpy  # noqa: F401
        return True
    except ImportError:
        pass
    sysp = "/usr/bin/python3"
    if os.path.realpath(sys.executable) != os.path.realpath(sysp) and os.path.exists(sysp) and \
            not os.environ.get("SPOKE_NUMPY_REEXEC"):
        os.environ["SPOKE_NUMPY_REEXEC"] = "1"
        os.execv(sysp, [sysp] + sys.argv)
    return False


def _cleanup():
    for s in list(_live):
        s.stop(sig=signal.SIGKILL)
    import shutil
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)


atexit.register(_cleanup)


class Server:
    def __init__(self, config_yaml, env=None, args=(), tmp=None):
        self.tmp = tmp
        if not self.tmp:
            self.tmp = tempfile.mkdtemp(prefix="spoke-srv-")
            _tmpdirs.append(self.tmp)
        self.cfg = os.path.join(self.tmp, "spoke.yaml")
        self.db = os.path.join(self.tmp, "history.db")
        with open(self.cfg, "w") as f:
            f.write(config_yaml)
        e = dict(os.environ)
        e["SPOKE_HOME"] = self.tmp
        e["HF_HUB_OFFLINE"] = "1"
        e.setdefault("SPOKE_LOG", "warn")
        if env:
            e.update(env)
        self.log = open(os.path.join(self.tmp, "server.log"), "w+")
        self.proc = subprocess.Popen([SPOKE, "serve", "-c", self.cfg, "--port", "0", "--history", self.db] +
                                     list(args), stdout=subprocess.PIPE, stderr=self.log, env=e, text=True)
        _live.append(self)
        self.port = None
        self.stdout_lines = []
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.stdout_lines.append(line)
            if "listening on http://" in line:
                self.port = int(line.strip().rsplit(":", 1)[1])
                break
        if self.port is None:
            self.stop(sig=signal.SIGKILL)
            raise RuntimeError("server did not start: " + "".join(self.stdout_lines) + self.logtext())
        # drain the rest of stdout in the background (avoid a full pipe)
        import threading
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.stdout_lines.append(line)

    def logtext(self):
        try:
            self.log.flush()
            with open(self.log.name) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in _live:
            _live.remove(self)
        return self.proc.returncode

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            st, _, _ = self.request("GET", "/v1/ready")
            if st == 200:
                return True
            time.sleep(0.05)
        raise RuntimeError("server not ready: " + self.logtext())

    def request(self, method, path, body=None, headers=None, timeout=60):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            h = {"Content-Type": "application/json"}
            if headers:
                h.update(headers)
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        finally:
            c.close()

    def post(self, path, obj, **kw):
        st, h, data = self.request("POST", path, obj, **kw)
        try:
            j = json.loads(data) if data else None
        except ValueError:
            j = None
        return st, h, j, data

    def stream(self, path, obj, timeout=60):
        """POST with stream=true; returns (status, list of parsed events, raw text)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("POST", path, body=json.dumps(obj), headers={"Content-Type": "application/json"})
            r = c.getresponse()
            raw = r.read().decode("utf-8")
            events = []
            for block in raw.split("\n\n"):
                block = block.strip("\n")
                if not block:
                    continue
                assert block.startswith("data: "), "bad SSE block %r" % block
                payload = block[len("data: "):]
                events.append(payload if payload == "[DONE]" else json.loads(payload))
            return r.status, r.getheader("Content-Type"), events, raw
        finally:
            c.close()

    def metrics(self):
        st, _, data = self.request("GET", "/metrics")
        assert st == 200
        return data.decode()

    def metric(self, name, model=None):
        text = self.metrics()
        want = name + ('{model="%s"}' % model if model else "")
        for line in text.splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        return None

    def sql(self, q):
        body = q.encode() if isinstance(q, str) else q
        ctype = "application/json" if body[:1] == b"{" else "application/sql"
        st, _, data = self.request("POST", "/v1/sql", body, headers={"Content-Type": ctype})
        return st, json.loads(data)


def model_config(name="stories260K", params=None, server=None, sql_endpoint=True, extra_server=""):
    """spoke.yaml for the bundled model; server = limits; sql_endpoint turns on
    POST /v1/sql (off by default in spoke); extra_server = more YAML lines
    indented under server:."""
    p = {"max_concurrency": 1}
    if params:
        p.update(params)
    lines = ["models:", "  - from: file:%s" % MODEL, "    name: %s" % name, "    params:"]
    for k, v in p.items():
        lines.append("      %s: %s" % (k, json.dumps(v) if isinstance(v, bool) else v))
    if server or sql_endpoint or extra_server:
        lines.append("server:")
    if server:
        lines.append("  limits:")
        for k, v in server.items():
            lines.append("    %s: %s" % (k, v))
    if sql_endpoint:
        lines.append("  task_history:")
        lines.append("    sql_endpoint: true")
    if extra_server:
        lines.extend("  " + l for l in extra_server.strip("\n").split("\n"))
    return "\n".join(lines) + "\n"


_failures = []


def check(cond, what):
    if not cond:
        _failures.append(what)
        print("  FAIL:", what, flush=True)
    return cond


def summary(name):
    if _failures:
        print("%s: %d check(s) failed" % (name, len(_failures)))
        sys.exit(1)
    print("%s: all checks passed" % name)
