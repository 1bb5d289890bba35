#!/usr/bin/env python3
"""fakehub.py - a fake Hugging Face Hub for spoke's tests (python3 stdlib only).

Two origins on 127.0.0.1 with OS-picked ports:
  hub: GET /api/models/{org}/{name}/revision/{rev}
       HEAD|GET /{org}/{name}/resolve/{rev}/{path}   (LFS files: 302 to the CDN with
            X-Linked-Etag / X-Linked-Size / X-Repo-Commit; small files: 200 here)
  cdn: HEAD|GET /blobs/{sha256}                      (Range supported)
Every request is logged (origin, method, path, Range, Authorization); the CDN's
Authorization headers are what the "token never leaves the Hub" test checks.

Fault injection: FakeHub.faults is a list of dicts consumed by matching GET body
requests (on the CDN or for non-LFS files on the hub):
  {"kind": "status", "status": 503, "retry_after": "1", "count": 2}
  {"kind": "reset"}       headers + half the body, then a TCP RST
  {"kind": "truncate"}    headers (full Content-Length) + half the body, clean close
  {"kind": "corrupt"}     full body with one byte flipped
  {"kind": "drip", "rate": 200}   the body at `rate` bytes/s (slow drip)
  {"kind": "stall"}       half the body, then hang until FakeHub.release is set
  {"kind": "loop"}        resolve redirects into an endless redirect chain
  {"kind": "norange"}     ignore Range: answer 200 with the whole body
  {"kind": "short200", "bytes": 1000}   ignore Range: answer 200 with only the first
                          `bytes` bytes (a matching Content-Length: a clean short answer)
A file's content may also be ("huge", SIZE): listed and HEADed with that size (and a
made-up sha256) but never served (a GET gets 500): for the free-disk-space check.
Each fault has "count" (default 1) and optional "path" (substring of the file).

Standalone (for bench/pull.sh):  fakehub.py --serve org/name FILE [--port-file F]
serves FILE as org/name@main/<basename> and writes "HUB_PORT CDN_PORT" to F.
"""
import hashlib
import http.server
import json
import os
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

CHUNK = 1 << 20


class Repo:
    def __init__(self, files, gated=False, token=None, revisions=None, commit=None):
        # files: {path: bytes or ("file", path_on_disk)}
        self.files = files
        self.gated = gated
        self.token = token
        self.commit = commit or hashlib.sha1(repr(sorted(files)).encode()).hexdigest()
        self.revisions = {"main": self.commit}
        if revisions:
            self.revisions.update(revisions)


def _size(content):
    if isinstance(content, tuple):
        return content[1] if content[0] == "huge" else os.path.getsize(content[1])
    return len(content)


def _sha256(content):
    if isinstance(content, tuple) and content[0] == "huge":
        return hashlib.sha256(b"huge %d" % content[1]).hexdigest()
    if isinstance(content, tuple):
        h = hashlib.sha256()
        with open(content[1], "rb") as f:
            while True:
                b = f.read(CHUNK)
                if not b:
                    break
                h.update(b)
        return h.hexdigest()
    return hashlib.sha256(content).hexdigest()


def is_lfs(path):
    return path.endswith(".gguf") or path.endswith(".bin")


class FakeHub:
    def __init__(self):
        self.repos = {}
        self.faults = []
        self.log = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.cdn_auth = []  # every Authorization header the CDN ever received (never cleared)
        self.cdn_count = 0
        self.blobs = {}  # sha -> content
        self._sha_cache = {}
        self.hub = self._server("hub")
        self.cdn = self._server("cdn")
        self.hub_url = "http://127.0.0.1:%d" % self.hub.server_address[1]
        self.cdn_url = "http://127.0.0.1:%d" % self.cdn.server_address[1]

    # ---- setup -------------------------------------------------------------
    def add_repo(self, repo_id, files, **kw):
        r = Repo(files, **kw)
        self.repos[repo_id] = r
        for p, c in files.items():
            self.blobs[self.sha(c)] = c
        return r

    def sha(self, content):
        key = content if isinstance(content, tuple) else id(content)
        if key not in self._sha_cache:
            self._sha_cache[key] = _sha256(content)
        return self._sha_cache[key]

    def add_fault(self, kind, count=1, path=None, **kw):
        f = dict(kind=kind, count=count, path=path)
        f.update(kw)
        with self.lock:
            self.faults.append(f)

    def clear(self):
        with self.lock:
            self.faults = []
            self.log = []
        self.release.clear()

    def take_fault(self, path, kinds=None):
        with self.lock:
            for f in self.faults:
                if f["count"] <= 0:
                    continue
                if f.get("path") and f["path"] not in path:
                    continue
                if kinds and f["kind"] not in kinds:
                    continue
                f["count"] -= 1
                return dict(f)
        return None

    def record(self, origin, handler):
        with self.lock:
            self.cdn_count += origin == "cdn"
            if origin == "cdn" and handler.headers.get("Authorization") is not None:
                self.cdn_auth.append((handler.path, handler.headers.get("Authorization")))
            self.log.append(dict(origin=origin, method=handler.command, path=handler.path,
                                 range=handler.headers.get("Range"),
                                 auth=handler.headers.get("Authorization")))

    def requests(self, origin=None, method=None, contains=None):
        with self.lock:
            return [e for e in self.log
                    if (origin is None or e["origin"] == origin)
                    and (method is None or e["method"] == method)
                    and (contains is None or contains in e["path"])]

    def body_requests(self):
        """GETs that would carry file bytes (CDN blobs and non-LFS resolves)."""
        return [e for e in self.requests(method="GET")
                if e["origin"] == "cdn" or "/resolve/" in e["path"]]

    def start(self):
        for s in (self.hub, self.cdn):
            t = threading.Thread(target=s.serve_forever, daemon=True)
            t.start()
        return self

    def stop(self):
        self.release.set()
        for s in (self.hub, self.cdn):
            s.shutdown()
            s.server_close()

    def _server(self, origin):
        fh = self

        class Handler(BaseHandler):
            pass
        Handler.fh = fh
        Handler.origin = origin
        srv = Server(("127.0.0.1", 0), Handler)
        return srv


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class BaseHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fh = None
    origin = None

    def log_message(self, fmt, *args):
        pass

    # ---- helpers -------------------------------------------------------------
    def reply(self, status, body=b"", headers=None, ctype="application/json"):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def error(self, status, code, msg):
        self.reply(status, json.dumps({"error": msg}).encode(),
                   {"X-Error-Code": code, "X-Error-Message": msg})

    def do_HEAD(self):
        self.handle_any()

    def do_GET(self):
        self.handle_any()

    def handle_any(self):
        self.fh.record(self.origin, self)
        try:
            if self.origin == "cdn":
                self.cdn_route()
            else:
                self.hub_route()
        except (BrokenPipeError, ConnectionResetError):
            pass

    def auth_ok(self, repo):
        if not repo.gated:
            return True
        return self.headers.get("Authorization") == "Bearer " + (repo.token or "")

    # ---- hub -------------------------------------------------------------------
    def hub_route(self):
        u = urllib.parse.urlsplit(self.path)
        parts = [urllib.parse.unquote(p) for p in u.path.split("/")]
        # /api/models/org/name/revision/rev
        if len(parts) >= 7 and parts[1] == "api" and parts[2] == "models" and parts[5] == "revision":
            return self.api_revision(parts[3] + "/" + parts[4], "/".join(parts[6:]))
        # /org/name/resolve/rev/path...
        if len(parts) >= 6 and parts[3] == "resolve":
            return self.resolve(parts[1] + "/" + parts[2], parts[4], "/".join(parts[5:]))
        self.error(404, "NotFound", "no such route")

    def find(self, repo_id, rev):
        repo = self.fh.repos.get(repo_id)
        if repo is None:
            self.error(404, "RepoNotFound", "Repository not found")
            return None, None
        if not self.auth_ok(repo):
            self.error(401, "GatedRepo", "Access to model %s is restricted" % repo_id)
            return None, None
        commit = repo.revisions.get(rev, rev if rev in repo.revisions.values() else None)
        if commit is None:
            self.error(404, "RevisionNotFound", "Invalid rev id: %s" % rev)
            return None, None
        return repo, commit

    def api_revision(self, repo_id, rev):
        f = self.fh.take_fault(repo_id, kinds=("api_status",))
        if f:
            h = {"Retry-After": f["retry_after"]} if f.get("retry_after") else {}
            return self.reply(f.get("status", 503), b"busy", h)
        repo, commit = self.find(repo_id, rev)
        if repo is None:
            return
        sib = []
        for p, c in sorted(repo.files.items()):
            e = {"rfilename": p, "size": _size(c)}
            if is_lfs(p):
                e["lfs"] = {"sha256": self.fh.sha(c), "size": _size(c), "pointerSize": 134}
            sib.append(e)
        body = json.dumps({"_id": "x", "id": repo_id, "sha": commit, "siblings": sib}).encode()
        self.reply(200, body)

    def resolve(self, repo_id, rev, path):
        repo, commit = self.find(repo_id, rev)
        if repo is None:
            return
        content = repo.files.get(path)
        if content is None:
            return self.error(404, "EntryNotFound", "Entry not found")
        sha = self.fh.sha(content)
        size = _size(content)
        h = {"X-Repo-Commit": commit}
        if is_lfs(path):
            loop = self.command == "GET" and self.fh.take_fault(path, kinds=("loop",))
            target = "/loop/1" if loop else "/blobs/%s?sig=abc" % sha
            h.update({"Location": self.fh.cdn_url + target, "X-Linked-Etag": '"%s"' % sha,
                      "X-Linked-Size": str(size), "ETag": '"%s"' % hashlib.sha1(b"p" + sha.encode()).hexdigest()})
            return self.reply(302, b"", h, ctype="text/plain")
        h["ETag"] = '"%s"' % hashlib.sha1(b"blob " + str(size).encode() + b"\0" +
                                         (content if isinstance(content, bytes) else b"")).hexdigest()
        self.serve_content(content, path, h)

    # ---- cdn ---------------------------------------------------------------------
    def cdn_route(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path.startswith("/loop/"):
            n = int(u.path.split("/")[2])
            return self.reply(302, b"", {"Location": self.fh.cdn_url + "/loop/%d" % (n + 1)})
        if u.path.startswith("/blobs/"):
            sha = u.path[len("/blobs/"):]
            content = self.fh.blobs.get(sha)
            if content is None:
                return self.reply(404, b"no blob")
            name = next((p for r in self.fh.repos.values() for p, c in r.files.items()
                         if self.fh.sha(c) == sha), sha)
            return self.serve_content(content, name, {"ETag": '"%s"' % sha})
        self.reply(404, b"")

    # ---- bodies --------------------------------------------------------------------
    def serve_content(self, content, path, headers):
        size = _size(content)
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        fault = None
        if isinstance(content, tuple) and content[0] == "huge" and self.command == "GET":
            return self.reply(500, b"huge files are never served", ctype="text/plain")
        if self.command == "GET":
            fault = self.fh.take_fault(path, kinds=("status", "reset", "truncate", "corrupt",
                                                     "drip", "stall", "norange", "short200"))
        if fault and fault["kind"] == "short200":
            data = (content if isinstance(content, bytes) else
                    open(content[1], "rb").read())[:fault.get("bytes", 1000)]
            return self.reply(200, data, dict(headers), ctype="application/octet-stream")
        if fault and fault["kind"] == "norange":
            rng, fault = None, None  # a server that ignores Range: 200 with everything
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a)
            end = int(b) if b else size - 1
            if start >= size:
                return self.reply(416, b"", {"Content-Range": "bytes */%d" % size})
            status = 206
        if fault and fault["kind"] == "status":
            h = {"Retry-After": fault["retry_after"]} if fault.get("retry_after") else {}
            return self.reply(fault.get("status", 503), b"busy", h, ctype="text/plain")
        length = end - start + 1
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        if self.command == "HEAD":
            return
        kind = fault["kind"] if fault else None
        if isinstance(content, tuple) and kind is None:
            with open(content[1], "rb") as f:
                self.wfile.flush()
                self.connection.sendfile(f, offset=start, count=length)
            return
        data = content[start:end + 1] if isinstance(content, bytes) else \
            open(content[1], "rb").read()[start:end + 1]
        if kind is None:
            self.wfile.write(data)
        elif kind == "corrupt":
            b = bytearray(data)
            if b:
                b[len(b) // 2] ^= 0x01
            self.wfile.write(bytes(b))
        elif kind in ("reset", "truncate", "stall"):
            half = len(data) // 2
            self.wfile.write(data[:half])
            self.wfile.flush()
            if kind == "stall":
                self.fh.release.wait(60)
            if kind == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        elif kind == "drip":
            rate = fault.get("rate", 200)
            step = max(1, rate // 10)
            for i in range(0, len(data), step):
                self.wfile.write(data[i:i + step])
                self.wfile.flush()
                time.sleep(0.1)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "--serve":
        repo_id, path = sys.argv[2], sys.argv[3]
        port_file = sys.argv[5] if len(sys.argv) >= 6 and sys.argv[4] == "--port-file" else None
        fh = FakeHub()
        fh.add_repo(repo_id, {os.path.basename(path): ("file", os.path.abspath(path))})
        fh.start()
        line = "%d %d\n" % (fh.hub.server_address[1], fh.cdn.server_address[1])
        if port_file:
            with open(port_file + ".tmp", "w") as f:
                f.write(line)
            os.rename(port_file + ".tmp", port_file)
        else:
            sys.stdout.write(line)
            sys.stdout.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        fh.stop()
        return 0
    sys.stderr.write("usage: fakehub.py --serve org/name FILE [--port-file F]\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
