"""cdp.py - a small Chrome DevTools Protocol client on the python standard
library: starts Debian's chromium headless with --remote-debugging-pipe (the
protocol as NUL-separated JSON on file descriptors 3 and 4, no websocket, no
port), opens one page and offers navigate / evaluate / keys / screenshot.
Used by the web-console test; no npm needed."""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class CDPError(Exception):
    pass


class Browser:
    def __init__(self, binary, width=1280, height=900, attempts=3):
        # should chromium exit at once when started, start it again (its log is
        # printed each time, and kept in the final error)
        for attempt in range(1, attempts + 1):
            try:
                self._launch(binary, width, height)
                return
            except CDPError as e:
                tail = self._log_tail()
                self.close()
                if attempt == attempts:
                    raise CDPError("chromium did not start (%d attempts): %s; its log: %s" % (attempts, e, tail))
                print("  chromium exited at start (%s); starting it again. Its log: %s" % (e, tail), flush=True)
                time.sleep(1)

    def _log_tail(self):
        try:
            self.log.flush()
            with open(os.path.join(self.profile, "chromium.log"), errors="replace") as f:
                return " | ".join(f.read().strip().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def _launch(self, binary, width, height):
        self.profile = tempfile.mkdtemp(prefix="spoke-chromium-")
        cmd_r, self._cmd_w = os.pipe()   # we write commands, chromium reads fd 3
        self._res_r, res_w = os.pipe()   # chromium writes fd 4, we read
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", "--disable-default-apps", "--mute-audio", "--no-default-browser-check",
                "--user-data-dir=" + self.profile, "--remote-debugging-pipe", "--window-size=%d,%d" % (width, height),
                "about:blank"]
        self.log = open(os.path.join(self.profile, "chromium.log"), "w")
        # bash, not sh: dash reads only one-digit descriptors in a redirection,
        # and the pipes get numbers >= 10 when the caller holds more files open
        # (under ctest in CI, or flock), which made chromium's start fail
        self.proc = subprocess.Popen(["bash", "-c", 'exec "$0" "$@" 3<&%d 4>&%d' % (cmd_r, res_w)] + args,
                                     pass_fds=(cmd_r, res_w), stdout=self.log, stderr=subprocess.STDOUT)
        os.close(cmd_r)
        os.close(res_w)
        self._id = 0
        self._lock = threading.Lock()
        self._cv = threading.Condition()
        self._replies = {}
        self.events = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.session = None
        t = self.call("Target.createTarget", {"url": "about:blank"})
        s = self.call("Target.attachToTarget", {"targetId": t["targetId"], "flatten": True})
        self.session = s["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.call(domain + ".enable")
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False})

    def _read(self):
        buf = b""
        while True:
            try:
                chunk = os.read(self._res_r, 1 << 16)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cv:
                    self._replies[None] = True
                    self._cv.notify_all()
                return
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                m = json.loads(msg)
                with self._cv:
                    if "id" in m:
                        self._replies[m["id"]] = m
                    else:
                        self.events.append(m)
                    self._cv.notify_all()

    def call(self, method, params=None, timeout=30, session=True):
        with self._lock:
            self._id += 1
            i = self._id
        msg = {"id": i, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        try:
            os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        except OSError as e:  # EPIPE: chromium has exited
            raise CDPError("chromium exited (%s)" % e)
        deadline = time.time() + timeout
        with self._cv:
            while i not in self._replies:
                if None in self._replies:
                    raise CDPError("chromium exited")
                left = deadline - time.time()
                if left <= 0:
                    raise CDPError("timeout waiting for " + method)
                self._cv.wait(left)
            m = self._replies.pop(i)
        if "error" in m:
            raise CDPError("%s: %s" % (method, m["error"]))
        return m.get("result", {})

    def navigate(self, url, timeout=30):
        n = len(self.events)
        self.call("Page.navigate", {"url": url})
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(e.get("method") == "Page.loadEventFired" for e in self.events[n:]):
                return
            time.sleep(0.05)
        raise CDPError("page did not load: " + url)

    def eval(self, expr, timeout=30):
        r = self.call("Runtime.evaluate", {"expression": expr, "awaitPromise": True, "returnByValue": True},
                      timeout=timeout)
        if "exceptionDetails" in r:
            raise CDPError("JS exception: %s" % json.dumps(r["exceptionDetails"])[:500])
        return r.get("result", {}).get("value")

    def wait(self, expr, timeout=30, interval=0.1):
        deadline = time.time() + timeout
        v = None
        while time.time() < deadline:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(interval)
        return v

    def type_text(self, text):
        self.call("Input.insertText", {"text": text})

    def key(self, key, code=None, vk=0, text=None):
        base = {"key": key, "code": code or key, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk}
        down = dict(base, type="keyDown")
        if text:
            down["text"] = text
        self.call("Input.dispatchKeyEvent", down)
        self.call("Input.dispatchKeyEvent", dict(base, type="keyUp"))

    def enter(self):
        self.key("Enter", vk=13, text="\r")

    def screenshot(self, path):
        r = self.call("Page.captureScreenshot", {"format": "png"})
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))
        return path

    def requested_urls(self):
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=5)
        except CDPError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd_w, self._res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)
