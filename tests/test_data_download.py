"""data/cached_fineweb10B.py against a loopback stand-in for the Hugging Face hub.

The downloader runs as a user runs it (a subprocess, HF_ENDPOINT pointing at the stand-in), so the real
huggingface_hub client asks for the repo info, resolves each file with a HEAD request and fetches it.
The stand-in answers like the hub: the repo-info API (?blobs=true) lists each file's size and LFS
sha256 and the commit; /resolve/ answers 302 with X-Repo-Commit, X-Linked-Etag and X-Linked-Size and
points at a CDN on another host name ("localhost" for the endpoint's "127.0.0.1"), which honours Range.
No test depends on timing: faults are answers, not delays (one server that never answers, with a 1 s limit).
"""
import hashlib
import json
import os
import re
import socket
import struct
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data import cached_fineweb10B as dl  # noqa: E402
from data.shards import HEADER_BYTES, shard_tokens, write_shard  # noqa: E402

SCRIPT = ROOT / "data" / "cached_fineweb10B.py"
COMMIT = "c0ffee" * 6 + "0123"
INFO = "/api/datasets/kjj0/fineweb10B-gpt2/revision/main"
RESOLVE = "/datasets/kjj0/fineweb10B-gpt2/resolve/"  # then <revision>/<name>
NAMES = ["fineweb_val_000000.bin"] + [f"fineweb_train_{i:06d}.bin" for i in (1, 2, 3)]
RETRY = "run the same command again"


class FakeHub:
    """Serves shards the way the hub does.

    `faults[name]`: an int makes /resolve/ answer that HTTP status; ("cdn", status) makes the CDN answer it
    (once); "cut" sends the full Content-Length but closes after half the bytes, on the first CDN GET only.
    `listed[name]` makes the repo info (and X-Linked-*) describe other bytes than the CDN serves;
    `info` = an int answers that status to the repo-info request, "no-lfs" lists no sha256.
    """

    def __init__(self, files):
        self.files, self.faults, self.listed, self.info, self.requests = files, {}, {}, None, []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hub.handle(self, body=True)

            def do_HEAD(self):
                hub.handle(self, body=False)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def described(self, name):
        return self.listed.get(name, self.files[name])

    def handle(self, req, body):
        self.requests.append((req.command, req.path, req.headers))
        path = req.path.split("?")[0]
        if path == INFO:
            return self.repo_info(req)
        if path.startswith(RESOLVE):
            name = path[len(RESOLVE):].split("/", 1)[-1]
            fault = self.faults.get(name)
            if isinstance(fault, int):
                return self.send(req, fault, body)
            if name not in self.files:
                return self.send(req, 404, body, {"X-Error-Code": "EntryNotFound"})
            data = self.described(name)
            return self.send(req, 302, body, {"Location": f"http://localhost:{self.port}/cdn/{name}",
                                              "X-Repo-Commit": COMMIT, "X-Linked-Size": str(len(data)),
                                              "X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"'})
        if path.startswith("/cdn/") and path[5:] in self.files:
            return self.serve(req, path[5:], body)
        self.send(req, 404, body)

    def repo_info(self, req):
        if isinstance(self.info, int):
            return self.send(req, self.info, True)
        siblings = [{"rfilename": ".gitattributes", "size": 2500, "blobId": "0" * 40}]
        for name in self.files:
            data = self.described(name)
            entry = {"rfilename": name, "size": len(data), "blobId": hashlib.sha1(data).hexdigest()}
            if self.info != "no-lfs":
                entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            siblings.append(entry)
        payload = json.dumps({"id": "kjj0/fineweb10B-gpt2", "sha": COMMIT, "siblings": siblings}).encode()
        self.send(req, 200, True, {"Content-Type": "application/json"}, payload)

    def send(self, req, status, body, headers=(), payload=b'{"error": "stand-in hub error"}'):
        req.send_response(status)
        for key, value in dict(headers or {}).items():
            req.send_header(key, value)
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        if body:
            req.wfile.write(payload)

    def serve(self, req, name, body):
        data, start, fault = self.files[name], 0, self.faults.get(name)
        if isinstance(fault, tuple):
            del self.faults[name]
            return self.send(req, fault[1], body)
        match = re.fullmatch(r"bytes=(\d+)-", req.headers.get("Range", ""))
        if match:
            start = int(match.group(1))
            req.send_response(206)
            req.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            req.send_response(200)
        req.send_header("Content-Length", str(len(data) - start))
        req.send_header("Accept-Ranges", "bytes")
        req.end_headers()
        if body and fault == "cut":
            del self.faults[name]
            req.wfile.write(data[start:start + (len(data) - start) // 2])
            req.wfile.flush()
            req.close_connection = True
        elif body:
            req.wfile.write(data[start:])

    def gets(self, name=None):
        """The CDN GETs so far (optionally for one file), as (name, Range header or None)."""
        return [(p[5:], h.get("Range")) for m, p, h in self.requests
                if m == "GET" and p.startswith("/cdn/") and (name is None or p[5:] == name)]

    def infos(self):
        return [p for m, p, h in self.requests if p.split("?")[0] == INFO]


@pytest.fixture(scope="module")
def shard_bytes(tmp_path_factory):
    """Small synthetic shards of different lengths, as the bytes the hub holds."""
    folder, rng, files = tmp_path_factory.mktemp("hub"), np.random.default_rng(0), {}
    for i, name in enumerate(NAMES):
        write_shard(folder / name, rng.integers(0, 50257, size=3000 + 1000 * i))
        files[name] = (folder / name).read_bytes()
    return files


@pytest.fixture
def hub(shard_bytes):
    server = FakeHub(dict(shard_bytes))
    yield server
    server.close()


def run(args, endpoint, tmp_path, cwd=ROOT, prelude="", **env_extra):
    """Run the downloader as a user would; returns the CompletedProcess (text output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and "proxy" not in k.lower()}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"), NO_PROXY="127.0.0.1,localhost",
               HF_HUB_DISABLE_TELEMETRY="1", **env_extra)
    command = [str(SCRIPT)] if not prelude else ["-c", f"import sys; sys.argv[0] = {str(SCRIPT)!r}\n{prelude}\n"
                                                 f"sys.path.insert(0, {str(ROOT)!r}); from data import "
                                                 f"cached_fineweb10B as dl; sys.exit(dl.main())"]
    return subprocess.run([sys.executable, *command, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def listing(folder):
    """The files in `folder`, less huggingface_hub's own folder (.cache/huggingface)."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".cache")


def contents(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def recorded(folder, name):
    """The sha256 huggingface_hub's record in `folder` holds for `name`."""
    return (folder / ".cache" / "huggingface" / "download" / f"{name}.metadata").read_text().splitlines()[1]


@pytest.fixture(autouse=True)
def offline_in_process(monkeypatch):
    """Calls of dl.main inside pytest never reach a real hub."""
    monkeypatch.setattr(dl.hf_constants, "HF_HUB_OFFLINE", True)


def test_fresh_download_writes_the_hubs_bytes(hub, shard_bytes, tmp_path):
    out = tmp_path / "shards"
    result = run(["2", "--dir", str(out)], hub.url, tmp_path, HF_TOKEN="hf_stand_in_token")
    assert result.returncode == 0, result.stderr
    assert listing(out) == sorted(NAMES[:3])
    for name in NAMES[:3]:
        assert (out / name).read_bytes() == shard_bytes[name]
        assert recorded(out, name) == hashlib.sha256(shard_bytes[name]).hexdigest()
    assert hub.gets() == [(name, None) for name in NAMES[:3]]
    assert hub.infos() == [INFO + "?blobs=true"]  # one request for the sizes and sha256 of every file
    # every file is fetched at the listed commit; HF_TOKEN goes to the hub and not to the CDN, as huggingface_hub does it
    to_hub = [h for m, p, h in hub.requests if not p.startswith("/cdn/")]
    assert [p for m, p, h in hub.requests if p.startswith(RESOLVE)] == [f"{RESOLVE}{COMMIT}/{n}" for n in NAMES[:3]]
    assert len(to_hub) == 4 and all(h.get("Authorization") == "Bearer hf_stand_in_token" for h in to_hub)
    assert all(h.get("Authorization") is None for m, p, h in hub.requests if p.startswith("/cdn/"))
    train = 4000 + 5000
    assert f"3 valid shards in {out}: {3000 + train:,} tokens (val 3,000; train {train:,} in 2 shards)" \
        in result.stdout
    assert "cover 0 steps of 524,288 tokens: NOT enough for the baseline's 3,250 steps (it needs at least 18 " \
           "chunks: python data/cached_fineweb10B.py 18 --dir" in result.stdout
    assert "100%" in result.stderr  # the progress bars


def test_second_call_skips_valid_files_with_one_request(hub, shard_bytes, tmp_path):
    out = tmp_path / "shards"
    assert run(["2", "--dir", str(out)], hub.url, tmp_path).returncode == 0
    stamps = {name: (out / name).stat().st_mtime_ns for name in NAMES[:3]}
    hub.requests.clear()
    again = run(["2", "--dir", str(out)], hub.url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert [(m, p.split("?")[0]) for m, p, h in hub.requests] == [("GET", INFO)]  # sizes and sha256, no transfer
    assert "all 3 files already present and valid" in again.stdout
    assert "checked against the hub's list: header, size, and sha256" in again.stdout
    assert "sha256" not in again.stderr  # no hashing: huggingface_hub's record of each file is trusted
    assert {name: (out / name).stat().st_mtime_ns for name in NAMES[:3]} == stamps
    # offline: no request at all, and the output says the hub was not consulted
    hub.requests.clear()
    offline = run(["2", "--dir", str(out)], hub.url, tmp_path, HF_HUB_OFFLINE="1")
    assert offline.returncode == 0, offline.stderr
    assert hub.requests == []
    assert "all 3 files already present and valid" in offline.stdout
    assert "(checked by header only (HF_HUB_OFFLINE=1 is set))" in offline.stdout
    # asking for one chunk more fetches only that one
    more = run(["3", "--dir", str(out)], hub.url, tmp_path)
    assert more.returncode == 0, more.stderr
    assert hub.gets() == [(NAMES[3], None)]
    assert (out / NAMES[3]).read_bytes() == shard_bytes[NAMES[3]]


def test_files_from_elsewhere_are_hashed_once_and_then_trusted(hub, shard_bytes, tmp_path):
    # Shards copied in by hand (or by the old downloader) have no record: the first run reads them once.
    out = tmp_path / "shards"
    out.mkdir()
    for name in NAMES[:2]:
        (out / name).write_bytes(shard_bytes[name])
    first = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert first.returncode == 0, first.stderr
    assert hub.gets() == [] and "sha256 fineweb_val_000000.bin" in first.stderr
    assert recorded(out, NAMES[1]) == hashlib.sha256(shard_bytes[NAMES[1]]).hexdigest()
    second = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert second.returncode == 0 and "sha256" not in second.stderr


def test_cut_connection_is_resumed_by_the_hub_client_within_the_run(hub, shard_bytes, tmp_path):
    # huggingface_hub writes what it receives in chunks (10 MB; 1,000 bytes here, as if the shards were large)
    # and, after a cut, asks for the rest from the last whole chunk with a Range request.
    out, name = tmp_path / "shards", NAMES[1]
    hub.faults[name] = "cut"
    result = run(["1", "--dir", str(out)], hub.url, tmp_path,
                 prelude="from huggingface_hub import constants; constants.DOWNLOAD_CHUNK_SIZE = 1000")
    assert result.returncode == 0, result.stderr
    assert "Trying to resume download..." in result.stderr
    have = len(shard_bytes[name]) // 2 // 1000 * 1000
    assert hub.gets(name) == [(name, None), (name, f"bytes={have}-")]
    assert (out / name).read_bytes() == shard_bytes[name]
    assert listing(out) == sorted(NAMES[:2])


@pytest.mark.parametrize("status, hint", [(500, "500"), (404, "not found there: check HF_ENDPOINT"),
                                          (401, "set HF_TOKEN")])
def test_hub_error_names_the_file_and_keeps_finished_files(hub, shard_bytes, tmp_path, status, hint):
    out, name = tmp_path / "shards", NAMES[2]
    hub.faults[name] = ("cdn", 500) if status == 500 else status
    result = run(["3", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: downloading {name} failed (") and hint in line
    assert f"the 2 finished files in {out} are kept: {RETRY}: python " in line
    assert line.endswith(f"cached_fineweb10B.py 3 --dir {out}")
    assert listing(out) == sorted(NAMES[:2])  # no file, partial or whole, for the failed one; nothing after it
    assert list((out / ".cache" / "huggingface" / "download").glob("*.incomplete")) == []
    assert all(shard_tokens(out / n) > 0 for n in NAMES[:2])


# -----------------------------------------------------------------------------
# No byte is deleted before a better copy is in place


def damaged(data, how):
    """A shard's bytes, damaged the way a cut copy, a disk or a user's own shard might be."""
    if how == "truncated":  # the start of the hub's file
        return data[:len(data) // 2]
    if how == "bad magic":
        return b"\0\0\0\0" + data[4:]
    if how == "short but self-consistent":  # a valid shard of 500 tokens fewer: not the hub's file
        header = bytearray(data[:HEADER_BYTES])
        header[8:12] = struct.pack("<i", (len(data) - HEADER_BYTES) // 2 - 500)
        return bytes(header) + data[HEADER_BYTES:-1000]
    if how == "bit flip":  # same size, one token changed
        flipped = bytearray(data)
        flipped[HEADER_BYTES + 100] ^= 1
        return bytes(flipped)
    raise ValueError(how)


@pytest.mark.parametrize("how, fault", [("truncated", "truncated"), ("bad magic", "bad magic number"),
                                        ("short but self-consistent", "with a self-consistent header"),
                                        ("bit flip", "sha256")])
@pytest.mark.parametrize("index", [0, 2])
def test_repair_command_replaces_only_the_bad_shard(hub, shard_bytes, tmp_path, how, fault, index):
    # For a bad shard the training script names `python data/cached_fineweb10B.py N`: N = the train
    # shard's index, 1 for the val shard. That fetches the bad file alone and leaves the others be.
    out, name = tmp_path / "shards", NAMES[index]
    assert run(["3", "--dir", str(out)], hub.url, tmp_path).returncode == 0
    (out / name).write_bytes(damaged(shard_bytes[name], how))
    later = (out / name).stat().st_mtime + 5  # changed after the download: huggingface_hub's record no longer counts
    os.utime(out / name, (later, later))
    stamps = {n: (out / n).stat().st_mtime_ns for n in NAMES if n != name}
    hub.requests.clear()
    result = run([str(max(index, 1)), "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^{re.escape(str(out / name))}: .*{fault}.*; downloading it again \(this copy is set aside "
                     rf"until then\)$", result.stdout, re.M)  # what was wrong with it, on one line
    assert f"set {name} aside as {name}.corrupt" in result.stdout
    assert f"removed {name}.corrupt (set aside earlier) now that {name} is whole and valid" in result.stdout
    assert hub.gets() == [(name, None)]
    assert (out / name).read_bytes() == shard_bytes[name]
    assert {n: (out / n).stat().st_mtime_ns for n in NAMES if n != name} == stamps
    assert listing(out) == sorted(NAMES)


def test_set_aside_copy_stays_until_the_replacement_is_whole(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[1]
    out.mkdir()
    (out / NAMES[0]).write_bytes(shard_bytes[NAMES[0]])
    bad = damaged(shard_bytes[name], "bad magic")
    (out / name).write_bytes(bad)
    (out / f"{name}.part").write_bytes(b"left by the old downloader")
    hub.faults[name] = ("cdn", 503)
    first = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert first.returncode == 1 and RETRY in first.stderr and f"downloading {name} failed" in first.stderr
    assert f"set {name} aside as {name}.corrupt" in first.stdout
    assert (out / f"{name}.corrupt").read_bytes() == bad  # the user's bytes, still there
    assert listing(out) == sorted([NAMES[0], f"{name}.corrupt", f"{name}.part"])
    shown = run(["--verify", "--dir", str(out)], hub.url, tmp_path)
    for spare in (f"{name}.corrupt", f"{name}.part"):
        assert re.search(rf"{spare} +\(a copy set aside; removed once {name} is whole\)", shown.stdout)
    assert listing(out) == sorted([NAMES[0], f"{name}.corrupt", f"{name}.part"])

    second = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert second.returncode == 0, second.stderr
    for spare in (f"{name}.corrupt", f"{name}.part"):
        assert f"removed {spare} (set aside earlier) now that {name} is whole and valid" in second.stdout
    assert listing(out) == sorted(NAMES[:2])
    assert (out / name).read_bytes() == shard_bytes[name]


def test_a_second_bad_copy_gets_the_next_name(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[0]
    out.mkdir()
    (out / f"{name}.corrupt").write_bytes(b"first")
    (out / name).write_bytes(b"second")
    hub.faults[name] = ("cdn", 500)
    assert run(["1", "--dir", str(out)], hub.url, tmp_path).returncode == 1
    assert contents(out)[f"{name}.corrupt"] == b"first" and contents(out)[f"{name}.corrupt.2"] == b"second"


def test_download_that_does_not_match_the_hubs_sha256_is_set_aside(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[0]
    hub.listed[name] = damaged(shard_bytes[name], "bit flip")  # the hub describes other bytes of the same size
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: downloading {name} failed (ValueError: the downloaded file does not match the "
                           f"hub's: {out / name}: sha256 ")
    assert f"set it aside as {name}.corrupt" in line and RETRY in line
    assert listing(out) == [f"{name}.corrupt"]
    assert (out / f"{name}.corrupt").read_bytes() == shard_bytes[name]


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "unreachable"])
def test_offline_every_local_byte_stays(hub, shard_bytes, tmp_path, offline):
    out = tmp_path / "shards"
    out.mkdir()
    files = {NAMES[0]: shard_bytes[NAMES[0]],
             NAMES[1]: damaged(shard_bytes[NAMES[1]], "truncated"),
             NAMES[2]: damaged(shard_bytes[NAMES[2]], "bad magic"),
             f"{NAMES[3]}.corrupt": b"<html>not a shard</html>"}
    for name, data in files.items():
        (out / name).write_bytes(data)
    if offline == "HF_HUB_OFFLINE":
        result = run(["3", "--dir", str(out)], hub.url, tmp_path, HF_HUB_OFFLINE="1")
        assert hub.requests == []
        why = "HF_HUB_OFFLINE=1 is set"
    else:
        hub.close()
        result = run(["3", "--dir", str(out)], hub.url, tmp_path)
        why = f"could not reach the hub at {hub.url}: ConnectError: "
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1  # one line, which names the files
    assert result.stderr.startswith(f"error: 3 of 4 files need downloading ({', '.join(NAMES[1:])}), but {why}")
    assert f"nothing in {out} was changed: {RETRY} once the hub can be reached: python " in result.stderr
    assert f"{out / NAMES[1]}: truncated" in result.stdout and f"{out / NAMES[2]}: bad magic" in result.stdout
    assert contents(out) == files


def test_offline_names_the_missing_file(shard_bytes, tmp_path):
    out = tmp_path / "shards"
    out.mkdir()
    for name in (NAMES[0], NAMES[1], NAMES[3]):
        (out / name).write_bytes(shard_bytes[name])
    result = run(["3", "--dir", str(out)], "http://127.0.0.1:9", tmp_path, HF_HUB_OFFLINE="1")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"error: 1 of 4 files need downloading ({NAMES[2]}), but HF_HUB_OFFLINE=1 is set; nothing "
                             f"in {out} was changed: {RETRY} once the hub can be reached: python "
                             f"data/cached_fineweb10B.py 3 --dir {out}\n")


def test_short_file_with_a_self_consistent_header(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[1]
    out.mkdir()
    short = damaged(shard_bytes[name], "short but self-consistent")
    assert len(short) == 8024  # 3,500 tokens where the hub has 4,000
    (out / NAMES[0]).write_bytes(shard_bytes[NAMES[0]])
    (out / name).write_bytes(short)
    # offline only the header can be checked, and the output says so
    quiet = run(["--verify", "1", "--dir", str(out)], hub.url, tmp_path, HF_HUB_OFFLINE="1")
    assert quiet.returncode == 0, quiet.stderr
    assert re.search(rf"{name} +3,500 tokens  header only \(offline\)", quiet.stdout)
    assert "not compared with the hub's sizes and sha256" in quiet.stdout
    offline = run(["1", "--dir", str(out)], hub.url, tmp_path, HF_HUB_OFFLINE="1")
    assert offline.returncode == 0 and "(checked by header only (HF_HUB_OFFLINE=1 is set))" in offline.stdout
    assert hub.requests == [] and (out / name).read_bytes() == short
    # online the hub's size tells
    checked = run(["--verify", "1", "--dir", str(out)], hub.url, tmp_path)
    assert checked.returncode == 1
    fault = f"{out / name}: 8,024 bytes with a self-consistent header, but the hub's file is 9,024 bytes"
    assert re.search(rf"{name} +PROBLEM: {re.escape(fault)}", checked.stdout)
    assert re.search(rf"{NAMES[0]} +3,000 tokens  size and sha256 match the hub", checked.stdout)
    assert (out / name).read_bytes() == short  # --verify changes no shard
    fixed = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert fixed.returncode == 0, fixed.stderr
    assert f"{fault}; downloading it again (this copy is set aside until then)" in fixed.stdout
    assert (out / name).read_bytes() == shard_bytes[name]
    assert listing(out) == sorted(NAMES[:2])


@pytest.mark.parametrize("mode, check, how", [
    (None, "size and sha256 match the hub", "checked against the hub's list (http"),
    ("no-lfs", "size matches the hub (it lists no sha256)", "checked against the hub's list (http"),
    (404, "header only (no hub list)", "checked each file by its header only (magic, version, size = 1024 + 2 x "
                                       "tokens): the hub's list of files is unavailable: ")])
def test_verify_says_which_check_it_did(hub, shard_bytes, tmp_path, mode, check, how):
    out = tmp_path / "shards"
    out.mkdir()
    for name in NAMES[:3]:
        (out / name).write_bytes(shard_bytes[name])
    hub.info = mode
    result = run(["--verify", "2", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    for name, tokens in zip(NAMES[:3], ("3,000", "4,000", "5,000")):
        assert re.search(rf"{name} +{tokens} tokens  {re.escape(check)}$", result.stdout, re.M)
    assert how in result.stdout
    assert hub.gets() == [] and len(hub.infos()) == 1


def test_mirror_without_the_list_api_checks_headers_and_sizes(hub, shard_bytes, tmp_path):
    out = tmp_path / "shards"
    out.mkdir()
    (out / NAMES[1]).write_bytes(damaged(shard_bytes[NAMES[1]], "bit flip"))  # only a sha256 could tell
    hub.info = 404
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "note: the hub's list of files is unavailable: " in result.stderr
    assert "checking files by header only (and downloads by the server's size)" in result.stderr
    assert [p for m, p, h in hub.requests if p.startswith(RESOLVE)] == [f"{RESOLVE}main/{NAMES[0]}"]
    assert (out / NAMES[0]).read_bytes() == shard_bytes[NAMES[0]]


def test_verify_reads_every_byte_and_its_command_repairs_what_it_finds(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[2]
    assert run(["2", "--dir", str(out)], hub.url, tmp_path).returncode == 0
    # One token changes but size and time stay: the download run trusts huggingface_hub's record (valid
    # while the modification time is unchanged) and reads nothing again...
    stat = (out / name).stat()
    (out / name).write_bytes(damaged(shard_bytes[name], "bit flip"))
    os.utime(out / name, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    hub.requests.clear()
    trusted = run(["2", "--dir", str(out)], hub.url, tmp_path)
    assert trusted.returncode == 0 and hub.gets() == []
    # ...while --verify reads every byte, and the command it prints replaces the file.
    write_shard(out / "fineweb_train_000009.bin", np.arange(2000))  # a shard the hub does not have
    checked = run(["--verify", "--dir", str(out)], hub.url, tmp_path)
    assert checked.returncode == 1
    sha = hashlib.sha256(shard_bytes[name]).hexdigest()
    assert re.search(rf"{name} +PROBLEM: {re.escape(str(out / name))}: sha256 [0-9a-f]{{16}}\.\.\. differs from the "
                     rf"hub's {sha[:16]}\.\.\.", checked.stdout)
    assert re.search(r"fineweb_train_000009\.bin +PROBLEM: .*: not a file of kjj0/fineweb10B-gpt2, yet training "
                     rf"would read it: move it out of {re.escape(str(out))}", checked.stdout)
    assert re.search(r"fineweb_train_000001\.bin +4,000 tokens  size and sha256 match the hub", checked.stdout)
    assert "8 problems:" in checked.stderr  # train 2 (sha256), 9 (not the hub's) and the gap 3..8
    command = re.search(r"to fetch missing and invalid files again: python \S+ (.*)", checked.stderr).group(1)
    assert command == f"9 --dir {out}"
    (out / "fineweb_train_000009.bin").unlink()
    repaired = run(["2", "--dir", str(out)], hub.url, tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    assert hub.gets() == [(name, None)]
    assert (out / name).read_bytes() == shard_bytes[name]
    assert run(["--verify", "2", "--dir", str(out)], hub.url, tmp_path).returncode == 0


def test_verify_finds_a_gap_without_n(shard_bytes, tmp_path, capsys):
    out = tmp_path / "shards"
    out.mkdir()
    for name in (NAMES[0], NAMES[1], NAMES[3]):  # train 1 and 3; 2 is missing
        (out / name).write_bytes(shard_bytes[name])
    assert dl.main(["--verify", "--dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"  {out / NAMES[2]}: missing (train shards must run 1..3 with no gap)" in err
    assert err.endswith(f"to fetch missing and invalid files again: python data/cached_fineweb10B.py 3 --dir {out}\n")
    (out / NAMES[2]).write_bytes(shard_bytes[NAMES[2]])
    assert dl.main(["--verify", "--dir", str(out)]) == 0


def test_verify_suggests_a_chunk_count_in_range(shard_bytes, tmp_path, capsys):
    out = tmp_path / "shards"
    out.mkdir()
    (out / NAMES[0]).write_bytes(shard_bytes[NAMES[0]])
    write_shard(out / "fineweb_train_000150.bin", np.arange(2000))  # no such chunk
    assert dl.main(["--verify", "--dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{out / 'fineweb_train_000150.bin'}: not a file of kjj0/fineweb10B-gpt2" in err
    assert err.endswith(f"again: python data/cached_fineweb10B.py 1 --dir {out}\n")
    assert [int(n) for n in re.findall(r"cached_fineweb10B\.py (\d+)", err)] == [1]
    assert dl.download_command(0, out).split()[2] == "1" and dl.download_command(150, out).split()[2] == "103"


@pytest.mark.parametrize("var, value", [
    ("HF_HUB_DOWNLOAD_TIMEOUT", "abc"), ("HF_HUB_DOWNLOAD_TIMEOUT", "-1"), ("HF_HUB_DOWNLOAD_TIMEOUT", ""),
    ("HF_HUB_DOWNLOAD_TIMEOUT", "²"), ("HF_HUB_ETAG_TIMEOUT", "1.5"),
    ("HF_ENDPOINT", "http://[bad"), ("HF_ENDPOINT", "http://127.0.0.1:99999"), ("HF_ENDPOINT", "ftp://mirror"),
    ("HF_ENDPOINT", "not a url"), ("HF_ENDPOINT", "https://hf mirror.com")])
def test_odd_environment_values_get_one_line(tmp_path, var, value):
    endpoint = value if var == "HF_ENDPOINT" else "http://127.0.0.1:9"
    extra = {} if var == "HF_ENDPOINT" else {var: value}
    for args in (["1", "--dir", str(tmp_path / "shards")], ["--verify", "--dir", str(tmp_path / "shards")]):
        result = run(args, endpoint, tmp_path, **extra)
        assert result.returncode == 2
        assert result.stderr.startswith(f"error: {var}={value!r} is not ") and result.stderr.count("\n") == 1
    assert not (tmp_path / "shards").exists()


def test_odd_endpoint_does_not_matter_offline(shard_bytes, tmp_path):
    out = tmp_path / "shards"
    out.mkdir()
    (out / NAMES[0]).write_bytes(shard_bytes[NAMES[0]])
    result = run(["--verify", "--dir", str(out)], "not a url", tmp_path, HF_HUB_OFFLINE="1")
    assert result.returncode == 0, result.stderr
    assert re.search(r"fineweb_val_000000\.bin +3,000 tokens  header only \(offline\)", result.stdout)


def test_connection_refused_is_reported(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again on exit: nothing listens there
    out = tmp_path / "shards"
    result = run(["1", "--dir", str(out)], f"http://127.0.0.1:{port}", tmp_path)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: 2 of 2 files need downloading ({NAMES[0]}, {NAMES[1]}), but could not "
                                    f"reach the hub at http://127.0.0.1:{port}: ConnectError")
    assert "check the network connection and HF_ENDPOINT" in result.stderr and RETRY in result.stderr
    assert not out.exists()  # nothing changed, not even a new directory


def test_silent_server_times_out(tmp_path):
    # The kernel accepts the connection, but nobody ever answers: the limit, not the machine's speed, decides.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        result = run(["1", "--dir", str(tmp_path / "shards")], f"http://127.0.0.1:{s.getsockname()[1]}",
                     tmp_path, HF_HUB_ETAG_TIMEOUT="1")
    assert result.returncode == 1
    assert "ReadTimeout" in result.stderr and "no answer within 1 s: HF_HUB_ETAG_TIMEOUT" in result.stderr


@pytest.mark.parametrize("arg", ["0", "104", "abc", "-3", "2.5", "²", "٣", "1_0", " 3", ""])
def test_bad_chunk_count_is_one_line(arg, capsys):
    with pytest.raises(SystemExit) as exit_info:
        dl.main([arg])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == f"error: N={arg!r} is not a chunk count: give a whole number in 1..103 (python cached_fineweb10B.py --help)\n"


def test_bad_chunk_count_from_the_command_line(tmp_path):
    result = run(["104"], "http://127.0.0.1:9", tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("error: N='104' is not a chunk count: give a whole number in 1..103 "
                             "(python cached_fineweb10B.py --help)\n")


@pytest.mark.parametrize("verify", [[], ["--verify"]])
def test_dir_that_is_a_file_or_empty(tmp_path, capsys, verify):
    (tmp_path / "afile").write_bytes(b"x")
    assert dl.main([*verify, "1", "--dir", str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err == (f"error: --dir {tmp_path / 'afile'} is a file, not a directory: give the "
                                       f"directory of the shards\n")
    assert dl.main([*verify, "1", "--dir", " "]) == 2
    assert capsys.readouterr().err == "error: --dir is empty: give the directory of the shards\n"
    assert (tmp_path / "afile").read_bytes() == b"x" and listing(tmp_path) == ["afile"]


def test_verify_good_directory_offline(shard_bytes, tmp_path):
    out = tmp_path / "shards"
    out.mkdir()
    for name in NAMES[:3]:
        (out / name).write_bytes(shard_bytes[name])
    result = run(["--verify", "--dir", str(out)], "http://127.0.0.1:9", tmp_path)  # nothing listens there
    assert result.returncode == 0, result.stderr
    assert re.search(r"fineweb_val_000000\.bin +3,000 tokens  header only \(offline\)", result.stdout)
    assert "not compared with the hub's sizes and sha256 (run --verify online to compare them)" in result.stdout
    assert re.search(r"fineweb_train_000002\.bin +5,000 tokens", result.stdout)
    assert "3 valid shards" in result.stdout and "train 9,000 in 2 shards" in result.stdout
    assert dl.main(["--verify", "2", "--dir", str(out)]) == 0
    assert dl.main(["--verify", "3", "--dir", str(out)]) == 1  # train 3 is missing


def test_verify_reports_every_problem(shard_bytes, tmp_path, capsys):
    out = tmp_path / "shards"
    out.mkdir()
    (out / NAMES[0]).write_bytes(shard_bytes[NAMES[0]])
    (out / NAMES[1]).write_bytes(shard_bytes[NAMES[1]][:HEADER_BYTES + 7])
    (out / NAMES[2]).write_bytes(b"\1" * 2000)
    assert dl.main(["--verify", "--dir", str(out)]) == 1
    captured = capsys.readouterr()
    assert re.search(r"fineweb_val_000000\.bin +3,000 tokens", captured.out)
    assert re.search(rf"{NAMES[1]} +PROBLEM: {out / NAMES[1]}: truncated", captured.out)
    assert re.search(rf"{NAMES[2]} +PROBLEM: {out / NAMES[2]}: bad magic number", captured.out)
    assert "1 valid shards" in captured.out
    assert "2 problems:" in captured.err and f"cached_fineweb10B.py 2 --dir {out}" in captured.err


@pytest.mark.parametrize("make", [False, True])
def test_verify_missing_or_empty_directory_says_how_to_download(tmp_path, capsys, make):
    out = tmp_path / "shards"
    if make:
        out.mkdir()
    assert dl.main(["--verify", "--dir", str(out)]) == 1
    assert capsys.readouterr().err == (f"error: no shards in {out}; download them with: python "
                                       f"data/cached_fineweb10B.py 20 --dir {out}\n")


def test_default_directory_is_next_to_the_script_from_any_cwd(tmp_path):
    result = run(["--verify"], "http://127.0.0.1:9", tmp_path, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr  # 0 if data were downloaded into the repo
    assert str(ROOT / "data" / "fineweb10B") in result.stdout + result.stderr


FULL_DISK = """
import errno, os
from huggingface_hub import file_download
real_http_get = file_download.http_get
class FullDisk:  # writes fail the way they do on a full disk
    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
file_download.http_get = lambda url, temp_file, **kw: real_http_get(url, FullDisk(), **kw)
"""


def test_full_disk_says_how_much_space_is_needed(hub, shard_bytes, tmp_path):
    out = tmp_path / "shards"
    out.mkdir()
    (out / f"{NAMES[1]}.corrupt").write_bytes(b"x" * 1500)  # set aside by an earlier run
    result = run(["2", "--dir", str(out)], hub.url, tmp_path, prelude=FULL_DISK)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: downloading {NAMES[0]} failed (OSError: [Errno 28] No space left on device; the "
                           f"disk is full: the 3 files still to download need about 27.1 KB more (about 200 MB per "
                           f"chunk), ")  # the sizes the hub lists: 7,024 + 9,024 + 11,024 bytes
    assert f"is free, and the set-aside copies ({out}/*.corrupt*) take 1.5 KB; free some space or pass --dir with a " \
           f"larger disk); the 0 finished files in {out} are kept: {RETRY}: python data/cached_fineweb10B.py 2 " \
           f"--dir {out}" in line
    assert listing(out) == [f"{NAMES[1]}.corrupt"]
    assert list((out / ".cache" / "huggingface" / "download").glob("*.incomplete")) == []


@pytest.mark.parametrize("train_chunks, verdict, disk", [
    (17, "NOT enough for the baseline's 3,250 steps (it needs at least 18 chunks", "3.6 GB"),
    (18, "enough for the baseline's 3,250 steps", "3.8 GB")])
def test_summary_says_whether_the_baseline_is_covered(tmp_path, train_chunks, verdict, disk):
    names = dl.shard_names(train_chunks)
    for name in names:  # sparse full-size files with a valid header: the summary reads only headers and sizes
        with open(tmp_path / name, "wb") as f:
            f.write(np.array([20240520, 1, 100_000_000], dtype="<i4").tobytes())
            f.truncate(dl.CHUNK_BYTES)
    text = "\n".join(dl.summary(tmp_path, names))
    assert f"cover {190 * train_chunks:,} steps of 524,288 tokens: {verdict}" in text
    assert f"train {100_000_000 * train_chunks:,} in {train_chunks} shards), {disk} on disk" in text


@pytest.mark.parametrize("tokens, steps", [(100_000_000, 190), (524_288 + 1, 0), (524_288 + 2, 1),
                                           (2 * 524_288 + 2, 2), (1025, 0)])
def test_steps_per_shard_follow_the_train_stream(tmp_path, tokens, steps):
    with open(tmp_path / dl.VAL_NAME, "wb") as f:  # the val shard counts no steps; a train shard of `tokens` does
        f.write(np.array([20240520, 1, 0], dtype="<i4").tobytes())
        f.truncate(HEADER_BYTES)
    with open(tmp_path / "fineweb_train_000001.bin", "wb") as f:
        f.write(np.array([20240520, 1, tokens], dtype="<i4").tobytes())
        f.truncate(HEADER_BYTES + 2 * tokens)
    text = "\n".join(dl.summary(tmp_path, dl.shard_names(1)))
    assert f"train tokens cover {steps:,} steps of 524,288 tokens" in text
