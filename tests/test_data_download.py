"""data/cached_fineweb10B.py against a loopback stand-in for the Hugging Face hub.

The downloader runs as a user runs it (a subprocess, HF_ENDPOINT pointing at the stand-in), so the
real huggingface_hub client builds the URLs and headers and its HTTP session does the transfers.
The stand-in also answers the hub's paths-info API, which gives each file's size and LFS sha256.
"""
import errno
import functools
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
from urllib.parse import parse_qs

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from data import cached_fineweb10B as dl  # noqa: E402
from data.shards import HEADER_BYTES, shard_tokens, write_shard  # noqa: E402

SCRIPT = ROOT / "data" / "cached_fineweb10B.py"
RESOLVE = "/datasets/kjj0/fineweb10B-gpt2/resolve/main/"
LISTING = "/api/datasets/kjj0/fineweb10B-gpt2/paths-info/main"
NAMES = ["fineweb_val_000000.bin"] + [f"fineweb_train_{i:06d}.bin" for i in (1, 2, 3)]
RETRY = "run the same command again"


class FakeHub:
    """Serves shards the way the hub does: /resolve/ redirects to a CDN path that honours Range.

    `faults[name]` makes that file misbehave: an int is the HTTP status to answer, "cut" sends the
    full Content-Length but closes after half the bytes, on the first GET only; "no-range" ignores
    Range headers, as some proxies and CDNs do; "short-206" answers a Range request with a
    Content-Range up to the end of the file but sends (and declares in Content-Length) only half of it.

    The list of files (POST to the paths-info API) describes `listed[name]` where set, else the
    served bytes; `listing` = an int answers that HTTP status instead, "no-lfs" lists no sha256.
    """

    def __init__(self, files):
        self.files, self.faults, self.requests = files, {}, []
        self.listed, self.listing = {}, None
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hub.handle(self, body=True)

            def do_HEAD(self):
                hub.handle(self, body=False)

            def do_POST(self):
                hub.list_files(self)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def handle(self, req, body):
        self.requests.append((req.command, req.path, req.headers))  # case-insensitive lookup
        if req.path.startswith(RESOLVE):
            name = req.path[len(RESOLVE):]
            fault = self.faults.get(name)
            if isinstance(fault, int):
                return self.error(req, fault, body)
            if name not in self.files:
                return self.error(req, 404, body, code="EntryNotFound")
            req.send_response(302)
            req.send_header("Location", f"/cdn/{name}")
            req.send_header("Content-Length", "0")
            req.send_header("X-Repo-Commit", "0" * 40)
            return req.end_headers()
        if req.path.startswith("/cdn/") and req.path[5:] in self.files:
            return self.serve(req, req.path[5:], body)
        self.error(req, 404, body)

    def list_files(self, req):
        form = parse_qs(req.rfile.read(int(req.headers.get("Content-Length", 0))).decode())
        self.requests.append((req.command, req.path, req.headers))
        if req.path != LISTING:
            return self.error(req, 404, True)
        if isinstance(self.listing, int):
            return self.error(req, self.listing, True)
        entries = []
        for path in form.get("paths", []):
            if path in self.files:
                data = self.listed.get(path, self.files[path])
                entry = {"type": "file", "path": path, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}
                if self.listing != "no-lfs":
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                entries.append(entry)
        payload = json.dumps(entries).encode()
        req.send_response(200)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)

    def listings(self):
        return [p for m, p, h in self.requests if m == "POST"]

    def error(self, req, status, body, code=None):
        payload = b'{"error": "stand-in hub error"}'
        req.send_response(status)
        if code:
            req.send_header("X-Error-Code", code)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        if body:
            req.wfile.write(payload)

    def serve(self, req, name, body):
        data, start = self.files[name], 0
        match = re.fullmatch(r"bytes=(\d+)-", req.headers.get("Range", ""))
        if self.faults.get(name) == "no-range":
            match = None
        if match:
            start = int(match.group(1))
            if start >= len(data):
                req.send_response(416)
                req.send_header("Content-Range", f"bytes */{len(data)}")
                req.send_header("Content-Length", "0")
                return req.end_headers()
            req.send_response(206)
            req.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            req.send_response(200)
        end = len(data)
        if match and self.faults.get(name) == "short-206":
            end = start + (len(data) - start) // 2
        req.send_header("Content-Length", str(end - start))
        req.send_header("Accept-Ranges", "bytes")
        req.send_header("ETag", f'"{hash(data)}"')
        req.end_headers()
        if not body:
            return
        if self.faults.get(name) == "cut" and req.command == "GET":
            del self.faults[name]
            req.wfile.write(data[start:start + (len(data) - start) // 2])
            req.wfile.flush()
            req.close_connection = True
            return
        req.wfile.write(data[start:end])

    def gets(self, name=None):
        """The CDN GETs made so far (optionally for one file) as (name, Range header or None)."""
        return [(p[5:], h.get("Range")) for m, p, h in self.requests
                if m == "GET" and p.startswith("/cdn/") and (name is None or p[5:] == name)]


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


def run(args, endpoint, tmp_path, cwd=ROOT, **env_extra):
    """Run the downloader as a user would; returns the CompletedProcess (text output)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_") and "proxy" not in k.lower()}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf_home"), NO_PROXY="127.0.0.1,localhost",
               HF_HUB_DISABLE_TELEMETRY="1", **env_extra)
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def listing(folder):
    """The files in `folder`, less the record of checked sha256 values."""
    return sorted(p.name for p in folder.iterdir() if p.name != dl.RECORD_NAME)


def contents(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.fixture(autouse=True)
def offline_in_process(monkeypatch):
    """Calls of dl.main inside pytest never reach the real hub unless a test points them at the stand-in."""
    monkeypatch.setattr(dl.hf_constants, "HF_HUB_OFFLINE", True)


def test_fresh_download_writes_the_hubs_bytes(hub, shard_bytes, tmp_path):
    out = tmp_path / "shards"
    result = run(["2", "--dir", str(out)], hub.url, tmp_path, HF_TOKEN="hf_stand_in_token")
    assert result.returncode == 0, result.stderr
    assert listing(out) == sorted(NAMES[:3])
    for name in NAMES[:3]:
        assert (out / name).read_bytes() == shard_bytes[name]
    assert [name for name, _ in hub.gets()] == NAMES[:3]
    assert hub.listings() == [LISTING]  # one request for the sizes and sha256 of all three
    # HF_TOKEN reaches the hub as huggingface_hub sends it
    resolves = [h for m, p, h in hub.requests if p.startswith(RESOLVE) or p == LISTING]
    assert len(resolves) == 4 and all(h.get("Authorization") == "Bearer hf_stand_in_token" for h in resolves)
    record = json.loads((out / dl.RECORD_NAME).read_text())
    assert {name: entry["sha256"] for name, entry in record.items()} == \
        {name: hashlib.sha256(shard_bytes[name]).hexdigest() for name in NAMES[:3]}
    train = 4000 + 5000
    assert f"3 valid shards in {out}: {3000 + train:,} tokens (val 3,000; train {train:,} in 2 shards)" \
        in result.stdout
    assert "cover 0 steps of 524,288 tokens: NOT enough for the baseline's 3,250 steps" in result.stdout
    assert "100%" in result.stderr  # the progress bars


def test_second_call_skips_valid_files_with_one_listing_request(hub, shard_bytes, tmp_path):
    out = tmp_path / "shards"
    assert run(["2", "--dir", str(out)], hub.url, tmp_path).returncode == 0
    stamps = {name: (out / name).stat().st_mtime_ns for name in NAMES[:3]}
    hub.requests.clear()
    again = run(["2", "--dir", str(out)], hub.url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert [(m, p) for m, p, h in hub.requests] == [("POST", LISTING)]  # sizes and sha256, no file transfer
    assert "all 3 files already present and valid" in again.stdout
    assert "checked against the hub's list: header, size, and sha256" in again.stdout
    assert "sha256" not in again.stderr  # no progress bar: the sha256 values checked at download are remembered
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


@pytest.mark.parametrize("damage, fault, action, get", [
    ("truncate", "truncated", "resuming it", "bytes=9014-"),  # 4,000 tokens = 9,024 bytes, less 10
    ("magic", "bad magic number", "downloading it again", None)])
def test_invalid_local_file_is_reported_and_fetched_again(hub, shard_bytes, tmp_path, damage, fault, action, get):
    out = tmp_path / "shards"
    assert run(["2", "--dir", str(out)], hub.url, tmp_path).returncode == 0
    bad = out / NAMES[1]
    data = bytearray(shard_bytes[NAMES[1]])
    bad.write_bytes(data[:-10] if damage == "truncate" else b"\0\0\0\0" + data[4:])
    hub.requests.clear()
    result = run(["2", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{bad}: {fault}" in result.stdout and action in result.stdout
    assert hub.gets() == [(NAMES[1], get)]
    assert bad.read_bytes() == shard_bytes[NAMES[1]]
    assert listing(out) == sorted(NAMES[:3])  # nothing set aside is left once the file is whole


def test_cut_transfer_leaves_no_shard_and_the_next_call_resumes(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[1]
    hub.faults[name] = "cut"
    first = run(["2", "--dir", str(out)], hub.url, tmp_path)
    assert first.returncode == 1
    assert f"downloading {name} failed" in first.stderr and RETRY in first.stderr
    assert f"cached_fineweb10B.py 2 --dir {out}" in first.stderr
    assert not (out / name).exists()
    half = len(shard_bytes[name]) // 2
    assert (out / f"{name}.part").read_bytes() == shard_bytes[name][:half]
    assert (out / NAMES[0]).read_bytes() == shard_bytes[NAMES[0]]  # finished before the cut: kept
    assert not (out / NAMES[2]).exists()

    hub.requests.clear()
    second = run(["2", "--dir", str(out)], hub.url, tmp_path)
    assert second.returncode == 0, second.stderr
    assert hub.gets() == [(name, f"bytes={half}-"), (NAMES[2], None)]
    assert listing(out) == sorted(NAMES[:3])
    for n in NAMES[:3]:
        assert (out / n).read_bytes() == shard_bytes[n]


@pytest.mark.parametrize("listed", [True, False])
def test_junk_partial_file_is_restarted(hub, shard_bytes, tmp_path, listed):
    # A .part longer than the remote file cannot be resumed. With the hub's list the downloader knows
    # before asking; without it (a mirror without the list API) a header that promises more tokens
    # than the .part holds makes it look like a start, and the server answers 416.
    out, data = tmp_path / "shards", shard_bytes[NAMES[0]]
    out.mkdir()
    junk = bytearray(data + b"extra")
    junk[8:12] = struct.pack("<i", 99_999)
    (out / f"{NAMES[0]}.part").write_bytes(junk)
    if not listed:
        hub.listing = 404
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    first = [] if listed else [(NAMES[0], f"bytes={len(data) + 5}-")]
    assert hub.gets(NAMES[0]) == first + [(NAMES[0], None)]
    assert f"set it aside as {NAMES[0]}.corrupt" in result.stdout
    assert f"removed {NAMES[0]}.corrupt (set aside earlier)" in result.stdout
    assert (out / NAMES[0]).read_bytes() == shard_bytes[NAMES[0]]
    assert listing(out) == sorted(NAMES[:2])
    if not listed:
        assert "note: the hub's list of files is unavailable: " in result.stderr


def test_partial_file_with_a_wrong_header_is_not_resumed(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[0]
    out.mkdir()
    (out / f"{name}.part").write_bytes(b"<html>" + b"\0" * 100)
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.gets(name) == [(name, None)]
    assert (out / name).read_bytes() == shard_bytes[name]
    assert listing(out) == sorted(NAMES[:2])


def test_partial_file_when_the_server_ignores_range(hub, shard_bytes, tmp_path):
    # A server that answers a Range request with the whole file (200) must not get appended to the .part.
    out, name = tmp_path / "shards", NAMES[0]
    out.mkdir()
    (out / f"{name}.part").write_bytes(shard_bytes[name][:12] + b"\xff" * 88)  # a plausible start, wrong bytes
    hub.faults[name] = "no-range"
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.gets(name) == [(name, "bytes=100-")]
    assert "the server does not resume downloads" in result.stdout
    assert (out / name).read_bytes() == shard_bytes[name]
    assert listing(out) == sorted(NAMES[:2])


def test_short_resumed_transfer_is_caught_and_kept_for_resuming(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[0]
    out.mkdir()
    data = shard_bytes[name]
    (out / f"{name}.part").write_bytes(data[:2000])
    hub.faults[name] = "short-206"
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 1
    have = 2000 + (len(data) - 2000) // 2
    assert f"the transfer ended after {have:,} of {len(data):,} bytes" in result.stderr and RETRY in result.stderr
    assert not (out / name).exists()
    assert (out / f"{name}.part").read_bytes() == data[:have]  # kept: the next call resumes from there


def test_complete_partial_file_is_kept_without_a_transfer(hub, shard_bytes, tmp_path):
    # A run that stopped between the last byte and the rename left a whole, valid .part.
    out, name = tmp_path / "shards", NAMES[0]
    out.mkdir()
    (out / f"{name}.part").write_bytes(shard_bytes[name])
    (out / NAMES[1]).write_bytes(shard_bytes[NAMES[1]])
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.gets() == [] and hub.listings() == [LISTING]
    assert listing(out) == sorted(NAMES[:2])
    assert (out / name).read_bytes() == shard_bytes[name]


@pytest.mark.parametrize("status, hint", [(500, "500"), (404, "not found"), (401, "HF_TOKEN")])
def test_hub_error_names_the_file_and_keeps_finished_files(hub, shard_bytes, tmp_path, status, hint):
    out, name = tmp_path / "shards", NAMES[2]
    hub.faults[name] = status
    result = run(["3", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 1
    assert f"downloading {name} failed" in result.stderr and hint in result.stderr
    assert "kept the 2 finished files" in result.stderr and RETRY in result.stderr
    assert listing(out) == sorted(NAMES[:2])  # no final file, no empty .part for the failed one, nothing after it
    assert all(shard_tokens(out / n) > 0 for n in NAMES[:2])


def test_connection_refused_is_reported(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again on exit: nothing listens there
    out = tmp_path / "shards"
    result = run(["1", "--dir", str(out)], f"http://127.0.0.1:{port}", tmp_path)
    assert result.returncode == 1
    assert f"2 of 2 files need downloading, but could not reach the hub at http://127.0.0.1:{port}: " \
           f"ConnectError" in result.stderr
    assert "check the network connection" in result.stderr and RETRY in result.stderr
    assert listing(out) == []


def test_silent_server_times_out(tmp_path):
    # The kernel accepts the connection, but nobody ever answers.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        result = run(["1", "--dir", str(tmp_path / "shards")], f"http://127.0.0.1:{s.getsockname()[1]}",
                     tmp_path, HF_HUB_DOWNLOAD_TIMEOUT="1")
    assert result.returncode == 1
    assert "ReadTimeout" in result.stderr and "no answer within 1 s" in result.stderr


@pytest.mark.parametrize("arg", ["0", "104", "abc", "-3", "2.5", "²", "٣", "1_0", " 3", ""])
def test_bad_chunk_count_is_a_usage_error(arg, capsys):
    with pytest.raises(SystemExit) as exit_info:
        dl.main([arg])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: cached_fineweb10B.py") and "argument N" in err


@pytest.mark.parametrize("verify", [[], ["--verify"]])
def test_dir_that_is_a_file_or_empty(tmp_path, capsys, verify):
    (tmp_path / "afile").write_bytes(b"x")
    assert dl.main([*verify, "1", "--dir", str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err == (f"error: --dir {tmp_path / 'afile'} is a file, not a directory: pass --dir "
                                       f"with the directory of the shards\n")
    with pytest.raises(SystemExit) as exit_info:
        dl.main([*verify, "1", "--dir", ""])
    assert exit_info.value.code == 2 and "argument --dir: an empty path" in capsys.readouterr().err
    assert (tmp_path / "afile").read_bytes() == b"x" and listing(tmp_path) == ["afile"]


def test_bad_chunk_count_from_the_command_line(tmp_path):
    result = run(["104"], "http://127.0.0.1:9", tmp_path)
    assert result.returncode == 2
    assert "usage:" in result.stderr and "104 is out of range" in result.stderr


def test_verify_good_directory(shard_bytes, tmp_path):
    out = tmp_path / "shards"
    out.mkdir()
    for name in NAMES[:3]:
        (out / name).write_bytes(shard_bytes[name])
    result = run(["--verify", "--dir", str(out)], "http://127.0.0.1:9", tmp_path)
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
    (out / f"{NAMES[3]}.part").write_bytes(b"")
    assert dl.main(["--verify", "--dir", str(out)]) == 1
    captured = capsys.readouterr()
    assert re.search(r"fineweb_val_000000\.bin +3,000 tokens", captured.out)
    assert re.search(rf"{NAMES[1]} +PROBLEM: {out / NAMES[1]}: truncated", captured.out)
    assert re.search(rf"{NAMES[2]} +PROBLEM: {out / NAMES[2]}: bad magic number", captured.out)
    assert re.search(rf"{NAMES[3]}\.part +\(an unfinished download", captured.out)
    assert "1 valid shards" in captured.out
    assert "2 problems:" in captured.err and f"cached_fineweb10B.py 2 --dir {out}" in captured.err


@pytest.mark.parametrize("make", [False, True])
def test_verify_missing_or_empty_directory_says_how_to_download(tmp_path, capsys, make):
    out = tmp_path / "shards"
    if make:
        out.mkdir()
    assert dl.main(["--verify", "--dir", str(out)]) == 1
    assert f"no shards in {out}; download them with: python " in capsys.readouterr().err


def test_default_directory_is_next_to_the_script_from_any_cwd(tmp_path):
    result = run(["--verify"], "http://127.0.0.1:9", tmp_path, cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr  # 0 if data were downloaded into the repo
    assert str(ROOT / "data" / "fineweb10B") in result.stdout + result.stderr


class FullDisk:
    """A file whose writes fail the way they do on a full disk."""

    def __init__(self, path, mode):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))


def test_full_disk_says_how_much_space_is_needed(hub, shard_bytes, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(dl.hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(dl, "shard_url", lambda name: hub.url + RESOLVE + name)
    monkeypatch.setattr(dl, "listing_url", lambda: hub.url + LISTING)
    monkeypatch.setattr(dl, "fetch", functools.partial(dl.fetch, open_file=FullDisk))
    out = tmp_path / "shards"
    out.mkdir()
    (out / f"{NAMES[1]}.corrupt").write_bytes(b"x" * 1500)  # set aside by an earlier run
    assert dl.main(["2", "--dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"the disk is full (No space left on device) while writing {NAMES[0]}" in err
    # the 3 files still to come, at the sizes the hub lists: 7,024 + 9,024 + 11,024 bytes
    assert "need about 27.1 KB more (about 200 MB per chunk)" in err
    assert f"The 1 set-aside copies ({out}/*.corrupt*, 1.5 KB) can be deleted" in err
    assert RETRY in err
    assert listing(out) == [f"{NAMES[1]}.corrupt"]


def test_steps_per_shard_follow_the_train_stream():
    assert dl.steps_in_shard(100_000_000) == 190
    assert dl.steps_in_shard(524_288 + 1) == 0  # pos + batch + 1 must be < n
    assert dl.steps_in_shard(524_288 + 2) == 1
    assert dl.steps_in_shard(2 * 524_288 + 2) == 2
    assert dl.steps_in_shard(0) == 0


@pytest.mark.parametrize("train_chunks, verdict, disk", [
    (17, "NOT enough for the baseline's 3,250 steps (it needs at least 18 chunks", "3.6 GB"),
    (18, "enough for the baseline's 3,250 steps", "3.8 GB")])
def test_summary_says_whether_the_baseline_is_covered(tmp_path, train_chunks, verdict, disk):
    names = [dl.VAL_NAME] + [dl.train_name(i) for i in range(1, train_chunks + 1)]
    for name in names:  # sparse full-size files: the summary reads only their sizes
        with open(tmp_path / name, "wb") as f:
            f.truncate(dl.CHUNK_BYTES)
    text = "\n".join(dl.summary([(name, 100_000_000, None) for name in names], tmp_path))
    assert f"cover {190 * train_chunks:,} steps of 524,288 tokens: {verdict}" in text
    assert f"train {100_000_000 * train_chunks:,} in {train_chunks} shards), {disk} on disk" in text


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


@pytest.mark.parametrize("how", ["truncated", "bad magic", "short but self-consistent", "bit flip"])
@pytest.mark.parametrize("index", [0, 2])
def test_repair_command_replaces_only_the_bad_shard(hub, shard_bytes, tmp_path, how, index):
    # For a bad shard the training script names `python data/cached_fineweb10B.py N`: N = the train
    # shard's index, 1 for the val shard. That fetches the bad file alone and leaves the others be.
    out, name = tmp_path / "shards", NAMES[index]
    assert run(["3", "--dir", str(out)], hub.url, tmp_path).returncode == 0
    bad = damaged(shard_bytes[name], how)
    (out / name).write_bytes(bad)
    stamps = {n: (out / n).stat().st_mtime_ns for n in NAMES if n != name}
    hub.requests.clear()
    result = run([str(max(index, 1)), "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{out / name}: " in result.stdout  # what was wrong with it
    assert hub.gets() == [(name, f"bytes={len(bad)}-" if how == "truncated" else None)]
    assert (out / name).read_bytes() == shard_bytes[name]
    assert {n: (out / n).stat().st_mtime_ns for n in NAMES if n != name} == stamps
    assert listing(out) == sorted(NAMES)
    assert (f"removed {name}.corrupt (set aside earlier)" in result.stdout) == (how != "truncated")


def test_set_aside_copy_stays_until_the_replacement_is_whole(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[1]
    out.mkdir()
    (out / NAMES[0]).write_bytes(shard_bytes[NAMES[0]])
    bad = damaged(shard_bytes[name], "bad magic")
    (out / name).write_bytes(bad)
    hub.faults[name] = "cut"
    first = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert first.returncode == 1 and RETRY in first.stderr
    assert f"set {name} aside as {name}.corrupt" in first.stdout
    half = len(shard_bytes[name]) // 2
    assert (out / f"{name}.corrupt").read_bytes() == bad  # the user's bytes, still there
    assert (out / f"{name}.part").read_bytes() == shard_bytes[name][:half]
    assert listing(out) == sorted([NAMES[0], f"{name}.corrupt", f"{name}.part"])
    shown = run(["--verify", "--dir", str(out)], hub.url, tmp_path)
    assert re.search(rf"{name}\.corrupt +\(a damaged copy set aside; removed once {name} is downloaded whole\)",
                     shown.stdout)
    assert re.search(rf"{name}\.part +\(an unfinished download; the download command resumes it\)", shown.stdout)
    assert listing(out) == sorted([NAMES[0], f"{name}.corrupt", f"{name}.part"])

    second = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert second.returncode == 0, second.stderr
    assert hub.gets(name)[-1] == (name, f"bytes={half}-")
    assert f"removed {name}.corrupt (set aside earlier) now that {name} is whole and valid" in second.stdout
    assert listing(out) == sorted(NAMES[:2])
    assert (out / name).read_bytes() == shard_bytes[name]


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "unreachable"])
def test_offline_every_local_byte_stays(hub, shard_bytes, tmp_path, offline):
    out = tmp_path / "shards"
    out.mkdir()
    files = {NAMES[0]: shard_bytes[NAMES[0]],
             NAMES[1]: damaged(shard_bytes[NAMES[1]], "truncated"),
             NAMES[2]: damaged(shard_bytes[NAMES[2]], "bad magic"),
             f"{NAMES[3]}.part": b"<html>not a shard</html>"}
    for name, data in files.items():
        (out / name).write_bytes(data)
    if offline == "HF_HUB_OFFLINE":
        result = run(["3", "--dir", str(out)], hub.url, tmp_path, HF_HUB_OFFLINE="1")
        assert hub.requests == []
        why = "HF_HUB_OFFLINE=1 is set"
    else:
        hub.close()
        result = run(["3", "--dir", str(out)], hub.url, tmp_path)
        why = f"could not reach the hub at {hub.url}: ConnectError"
    assert result.returncode == 1
    assert f"error: 3 of 4 files need downloading, but {why}" in result.stderr
    assert f"Nothing in {out} was changed; {RETRY}" in result.stderr
    assert f"{out / NAMES[1]}: truncated" in result.stdout and f"{out / NAMES[2]}: bad magic" in result.stdout
    assert contents(out) == files


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
                                       "tokens): the hub's list of files is unavailable: HfHubHTTPError")])
def test_verify_says_which_check_it_did(hub, shard_bytes, tmp_path, mode, check, how):
    out = tmp_path / "shards"
    out.mkdir()
    for name in NAMES[:3]:
        (out / name).write_bytes(shard_bytes[name])
    hub.listing = mode
    result = run(["--verify", "2", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    for name, tokens in zip(NAMES[:3], ("3,000", "4,000", "5,000")):
        assert re.search(rf"{name} +{tokens} tokens  {re.escape(check)}$", result.stdout, re.M)
    assert how in result.stdout
    assert hub.gets() == [] and hub.listings() == [LISTING]


def test_verify_reads_every_byte_and_its_command_repairs_what_it_finds(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[2]
    assert run(["2", "--dir", str(out)], hub.url, tmp_path).returncode == 0
    # One token changes but size and time stay: the download run trusts its record of checked sha256
    # values (keyed by size and modification time) and reads nothing again...
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
    assert re.search(r"fineweb_train_000009\.bin +PROBLEM: .*: not a file of the hub's dataset kjj0/fineweb10B-gpt2, "
                     rf"yet the training script would read it: move it out of {re.escape(str(out))}", checked.stdout)
    assert re.search(r"fineweb_train_000001\.bin +4,000 tokens  size and sha256 match the hub", checked.stdout)
    assert "2 problems:" in checked.stderr
    command = re.search(r"to fetch missing and invalid files again: python \S+ (.*)", checked.stderr).group(1)
    assert command == f"9 --dir {out}"
    (out / "fineweb_train_000009.bin").unlink()
    repaired = run(["2", "--dir", str(out)], hub.url, tmp_path)
    assert repaired.returncode == 0, repaired.stderr
    assert hub.gets() == [(name, None)]
    assert (out / name).read_bytes() == shard_bytes[name]
    assert run(["--verify", "2", "--dir", str(out)], hub.url, tmp_path).returncode == 0


def test_download_that_does_not_match_the_hubs_sha256_is_set_aside(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[0]
    hub.listed[name] = damaged(shard_bytes[name], "bit flip")  # the list describes other bytes of the same size
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 1
    assert f"downloading {name} failed: TransferError: the downloaded file does not match the hub's: " in result.stderr
    assert f"set it aside as {name}.corrupt" in result.stderr and RETRY in result.stderr
    assert listing(out) == [f"{name}.corrupt"]
    assert (out / f"{name}.corrupt").read_bytes() == shard_bytes[name]


def test_resumed_copy_with_a_wrong_start_is_downloaded_again_from_the_start(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[0]
    out.mkdir()
    start = bytearray(shard_bytes[name][:3000])
    start[2000] ^= 0xFF  # a plausible header, but one wrong byte
    (out / f"{name}.part").write_bytes(start)
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.gets(name) == [(name, "bytes=3000-"), (name, None)]
    assert "the partial copy it resumed was not the start of the hub's file" in result.stdout
    assert (out / name).read_bytes() == shard_bytes[name]
    assert listing(out) == sorted(NAMES[:2])


def test_truncated_shard_and_a_shorter_partial_file(hub, shard_bytes, tmp_path):
    # Two starts of the same file: the longer is resumed, the shorter set aside until the file is whole.
    out, name = tmp_path / "shards", NAMES[0]
    out.mkdir()
    (out / name).write_bytes(shard_bytes[name][:3000])
    (out / f"{name}.part").write_bytes(shard_bytes[name][:2000])
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.gets(name) == [(name, "bytes=3000-")]
    assert f"{name}.part is shorter than {name}: set it aside as {name}.corrupt" in result.stdout
    assert f"removed {name}.corrupt" in result.stdout
    assert (out / name).read_bytes() == shard_bytes[name]
    assert listing(out) == sorted(NAMES[:2])


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
