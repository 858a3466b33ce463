"""A fake Cloud Storage bucket for tests: `gs://` paths that live in a local directory.

Two views of one directory tree (`<root>/<bucket>/<object name>`), so every library that a run
uses to reach a bucket goes through its real `gs://` code path with no network:
- `FakeGCSServer`: the subset of the GCS JSON API that tensorstore's `gcs` driver (orbax's
  array data) speaks, served on localhost; tensorstore finds it through
  `TENSORSTORE_GCS_HTTP_URL`.
- `FakeGCSFileSystem`: an fsspec filesystem registered for `gs://` / `gcs://`, which is what
  `etils.epath` uses for `gs://` paths when TensorFlow is not installed (orbax's metadata, and
  every run file fdrl_jax writes).

Like a bucket, and unlike a local disk: there are no directories (`mkdir` is a no-op, a
"directory" exists while an object lies under it, and vanishes with its last object), files
cannot be opened for appending, and an object is written whole when its file is closed.

Subprocesses: `python tests/fake_gcs.py --config=... --workdir=gs://bucket/run` runs
`fdrl_jax.main` with the fake registered; `env(root, url)` gives the environment it needs.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import fsspec
from fsspec.spec import AbstractFileSystem

ROOT_ENV = "FAKE_GCS_ROOT"


def _object_path(root: str, bucket: str, name: str) -> str:
    if not name or name.startswith("/") or ".." in name.split("/") or name.endswith("/"):
        raise ValueError(f"bad object name {name!r}")
    return os.path.join(root, bucket, name)


def _generation(path: str) -> int:
    return os.stat(path).st_mtime_ns


def _write_object(path: str, data: bytes) -> int:
    """Write all of `data` at once (an object is never seen half-written); a fresh,
    strictly larger generation for every write."""
    old = _generation(path) if os.path.exists(path) else 0
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.fake-gcs-tmp-{threading.get_ident()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    if _generation(path) <= old:
        os.utime(path, ns=(old + 1, old + 1))
    return _generation(path)


def _prune_empty_parents(path: str, stop: str) -> None:
    """Objects, not directories: a "directory" disappears with its last object."""
    parent = os.path.dirname(path)
    while os.path.abspath(parent) != os.path.abspath(stop) and parent.startswith(stop):
        try:
            os.rmdir(parent)
        except OSError:
            return
        parent = os.path.dirname(parent)


def _list_objects(root: str, bucket: str, prefix: str) -> list[tuple[str, int]]:
    base = os.path.join(root, bucket)
    out = []
    for dirpath, _, files in os.walk(base):
        for f in files:
            if ".fake-gcs-tmp-" in f:
                continue
            name = os.path.relpath(os.path.join(dirpath, f), base).replace(os.sep, "/")
            if name.startswith(prefix):
                out.append((name, os.path.getsize(os.path.join(dirpath, f))))
    return sorted(out)


class _Handler(BaseHTTPRequestHandler):
    """GCS JSON API: media upload, media/metadata download, list, delete, with the
    ifGenerationMatch / ifGenerationNotMatch preconditions tensorstore relies on."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, code: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, code: int, obj: dict, headers: dict | None = None) -> None:
        self._send(
            code, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})}
        )

    def _error(self, code: int, message: str) -> None:
        self._json(code, {"error": {"code": code, "message": message}})

    def _parse(self):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        return url.path, query

    def _precondition(self, path: str, query: dict) -> int | None:
        """The HTTP status a failed precondition gives, or None."""
        gen = _generation(path) if os.path.exists(path) else 0
        if "ifGenerationMatch" in query and int(query["ifGenerationMatch"]) != gen:
            return 412
        if "ifGenerationNotMatch" in query and int(query["ifGenerationNotMatch"]) == gen:
            return 304
        return None

    def _meta(self, bucket: str, name: str, path: str) -> dict:
        gen = _generation(path)
        return {
            "kind": "storage#object",
            "bucket": bucket,
            "name": name,
            "generation": str(gen),
            "metageneration": "1",
            "size": str(os.path.getsize(path)),
        }

    def do_POST(self) -> None:
        path, query = self._parse()
        m = re.fullmatch(r"/upload/storage/v1/b/([^/]+)/o", path)
        length = int(self.headers.get("Content-Length", 0))
        data = self.rfile.read(length)
        if not m or query.get("uploadType") != "media" or "name" not in query:
            return self._error(400, f"unsupported upload {self.path}")
        bucket, name = m.group(1), query["name"]
        with self.server.lock:
            obj = _object_path(self.server.root, bucket, name)
            failed = self._precondition(obj, query)
            if failed:
                return self._error(412, "precondition failed")
            _write_object(obj, data)
            self._json(200, self._meta(bucket, name, obj))

    def do_GET(self) -> None:
        path, query = self._parse()
        m = re.fullmatch(r"/storage/v1/b/([^/]+)/o(?:/(.+))?", path)
        if not m:
            return self._error(404, f"unsupported {self.path}")
        bucket = m.group(1)
        if m.group(2) is None:  # list
            prefix = query.get("prefix", "")
            items = [
                {"name": n, "size": str(s)}
                for n, s in _list_objects(self.server.root, bucket, prefix)
                if n >= query.get("startOffset", "")
                and ("endOffset" not in query or n < query["endOffset"])
            ]
            return self._json(200, {"kind": "storage#objects", "items": items})
        name = urllib.parse.unquote(m.group(2))
        with self.server.lock:
            obj = _object_path(self.server.root, bucket, name)
            if not os.path.isfile(obj):
                return self._error(404, f"No such object: {bucket}/{name}")
            failed = self._precondition(obj, query)
            gen = _generation(obj)
            headers = {"x-goog-generation": gen, "x-goog-metageneration": 1}
            if failed:
                return self._send(failed, b"", headers)
            if query.get("alt") != "media":
                return self._json(200, self._meta(bucket, name, obj), headers)
            with open(obj, "rb") as f:
                data = f.read()
        size = len(data)
        rng = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if rng and (rng.group(1) or rng.group(2)):
            if rng.group(1):
                start = int(rng.group(1))
                end = int(rng.group(2)) if rng.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start, end = max(size - int(rng.group(2)), 0), size - 1
            if start >= size and size > 0:
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
            end = min(end, size - 1)
            body = data[start : end + 1]
            return self._send(
                206, body, {**headers, "Content-Range": f"bytes {start}-{end}/{size}"}
            )
        self._send(200, data, headers)

    def do_DELETE(self) -> None:
        path, query = self._parse()
        m = re.fullmatch(r"/storage/v1/b/([^/]+)/o/(.+)", path)
        if not m:
            return self._error(404, f"unsupported {self.path}")
        bucket, name = m.group(1), urllib.parse.unquote(m.group(2))
        with self.server.lock:
            obj = _object_path(self.server.root, bucket, name)
            if not os.path.isfile(obj):
                return self._error(404, "No such object")
            if self._precondition(obj, query):
                return self._error(412, "precondition failed")
            os.remove(obj)
            _prune_empty_parents(obj, os.path.join(self.server.root, bucket))
        self._send(204)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    root: str
    lock: threading.Lock


class FakeGCSServer:
    """The GCS JSON API over `root` on 127.0.0.1 (a free port), in a background thread."""

    def __init__(self, root: str):
        self.root = root
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.root, self._server.lock = root, threading.Lock()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FakeGCSServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


class _ObjectFile(io.BytesIO):
    """A file being written: the object appears whole when the file is closed."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def close(self) -> None:
        if not self.closed:
            _write_object(self._path, self.getvalue())
        super().close()


class FakeGCSFileSystem(AbstractFileSystem):
    """fsspec's `gs://` filesystem over `$FAKE_GCS_ROOT` (bucket = first path component).

    Only the primitives are here (list, stat, open, delete, copy); fsspec derives exists,
    isdir, walk, glob, recursive rm and mv (copy, then delete) from them, as for gcsfs."""

    protocol = ("gs", "gcs")
    root_marker = ""
    cachable = False  # the root comes from the environment: tests use several

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.root = os.environ[ROOT_ENV]

    def _local(self, path) -> str:
        return os.path.join(self.root, self._strip_protocol(path))

    def _remote(self, local: str) -> str:
        return os.path.relpath(local, self.root).replace(os.sep, "/")

    def ls(self, path, detail=True, **kwargs):
        local = self._local(path)
        if os.path.isfile(local):
            entries = [local]
        elif os.path.isdir(local):
            entries = [os.path.join(local, n) for n in sorted(os.listdir(local))]
        else:
            raise FileNotFoundError(path)
        names = [self._remote(e) for e in entries if ".fake-gcs-tmp-" not in e]
        return [self.info(n) for n in names] if detail else names

    def info(self, path, **kwargs):
        local = self._local(path)
        if not os.path.exists(local):
            raise FileNotFoundError(path)
        is_dir = os.path.isdir(local)
        return {
            "name": self._strip_protocol(path),
            "size": 0 if is_dir else os.path.getsize(local),
            "type": "directory" if is_dir else "file",
            "mtime": os.path.getmtime(local),
        }

    # Directories are only prefixes of objects: nothing to create or remove.
    def mkdir(self, path, create_parents=True, **kwargs) -> None:
        if "/" not in self._strip_protocol(path):  # a bucket
            os.makedirs(self._local(path), exist_ok=True)

    def makedirs(self, path, exist_ok=False) -> None:
        self.mkdir(path)

    def rmdir(self, path) -> None:
        pass

    def _open(self, path, mode="rb", **kwargs):
        if "a" in mode or "+" in mode:
            raise NotImplementedError(f"mode {mode!r}: objects in a bucket cannot be appended to")
        local = self._local(path)
        if "w" in mode or "x" in mode:
            return _ObjectFile(local)
        return open(local, mode)

    def rm_file(self, path) -> None:
        local = self._local(path)
        if not os.path.isfile(local):
            return  # a prefix ("directory"): it goes away with its objects
        os.remove(local)
        bucket = self._strip_protocol(path).split("/")[0]
        _prune_empty_parents(local, os.path.join(self.root, bucket))

    def _rm(self, path) -> None:
        self.rm_file(path)

    def cp_file(self, path1, path2, **kwargs) -> None:
        with open(self._local(path1), "rb") as f:
            _write_object(self._local(path2), f.read())


def register() -> None:
    """Route `gs://` in this process to the fake: fsspec (etils.epath without TensorFlow) and
    orbax's question about the bucket's hierarchical namespace (a fake bucket has none).
    TensorBoard summaries are off: TensorFlow's writer reaches gs:// through its own GCS
    client, which the fake cannot serve."""
    os.environ["EPATH_USE_TF"] = "false"  # epath picks tf.io.gfile for gs:// where TF exists
    from etils.epath import gpath

    gpath._is_tf_installed.cache_clear()
    for protocol in ("gs", "gcs"):
        fsspec.register_implementation(protocol, FakeGCSFileSystem, clobber=True)
    from etils.epath import backend

    backend.fsspec_backend._get_filesystem.cache_clear()
    from orbax.checkpoint._src.path import gcs_utils

    gcs_utils.is_hierarchical_namespace_enabled = lambda path: False
    import fdrl_jax.modes.train_mode

    fdrl_jax.modes.train_mode.open_writer = lambda workdir: None


def env(root: str, server_url: str) -> dict[str, str]:
    """Environment variables that point a subprocess (and its tensorstore) at the fake."""
    return {
        ROOT_ENV: root,
        "TENSORSTORE_GCS_HTTP_URL": server_url,
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake-token",
        "EPATH_USE_TF": "false",
    }


if __name__ == "__main__":  # fdrl_jax.main with gs:// routed to the fake
    register()
    from absl import app

    from fdrl_jax import main

    main.define_flags()
    app.run(main.main, flags_parser=main._parse_flags)
