"""data/cached_fineweb10B.py against a loopback stand-in for the Hugging Face hub.

The downloader runs as a user runs it (a subprocess, HF_ENDPOINT pointing at the stand-in), so the
real huggingface_hub client builds the URLs and headers and its HTTP session does the transfers.
"""
import errno
import functools
import os
import re
import socket
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
RESOLVE = "/datasets/kjj0/fineweb10B-gpt2/resolve/main/"
NAMES = ["fineweb_val_000000.bin"] + [f"fineweb_train_{i:06d}.bin" for i in (1, 2, 3)]
RETRY = "run the same command again"


class FakeHub:
    """Serves shards the way the hub does: /resolve/ redirects to a CDN path that honours Range.

    `faults[name]` makes that file misbehave: an int is the HTTP status to answer, "cut" sends the
    full Content-Length but closes after half the bytes, on the first GET only; "no-range" ignores
    Range headers, as some proxies and CDNs do; "short-206" answers a Range request with a
    Content-Range up to the end of the file but sends (and declares in Content-Length) only half of it.
    """

    def __init__(self, files):
        self.files, self.faults, self.requests = files, {}, []
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
    return sorted(p.name for p in folder.iterdir())


def test_fresh_download_writes_the_hubs_bytes(hub, shard_bytes, tmp_path):
    out = tmp_path / "shards"
    result = run(["2", "--dir", str(out)], hub.url, tmp_path, HF_TOKEN="hf_stand_in_token")
    assert result.returncode == 0, result.stderr
    assert listing(out) == sorted(NAMES[:3])
    for name in NAMES[:3]:
        assert (out / name).read_bytes() == shard_bytes[name]
    assert [name for name, _ in hub.gets()] == NAMES[:3]
    # HF_TOKEN reaches the hub as huggingface_hub sends it
    resolves = [h for m, p, h in hub.requests if p.startswith(RESOLVE)]
    assert resolves and all(h.get("Authorization") == "Bearer hf_stand_in_token" for h in resolves)
    train = 4000 + 5000
    assert f"3 valid shards in {out}: {3000 + train:,} tokens (val 3,000; train {train:,} in 2 shards)" \
        in result.stdout
    assert "cover 0 steps of 524,288 tokens: NOT enough for the baseline's 3,250 steps" in result.stdout
    assert "100%" in result.stderr  # the progress bars


def test_second_call_skips_valid_files_without_network(hub, shard_bytes, tmp_path):
    out = tmp_path / "shards"
    assert run(["2", "--dir", str(out)], hub.url, tmp_path).returncode == 0
    stamps = {name: (out / name).stat().st_mtime_ns for name in NAMES[:3]}
    hub.requests.clear()
    again = run(["2", "--dir", str(out)], hub.url, tmp_path)
    assert again.returncode == 0, again.stderr
    assert hub.requests == []
    assert "all 3 files already present and valid" in again.stdout
    assert {name: (out / name).stat().st_mtime_ns for name in NAMES[:3]} == stamps
    # asking for one chunk more fetches only that one
    more = run(["3", "--dir", str(out)], hub.url, tmp_path)
    assert more.returncode == 0, more.stderr
    assert hub.gets() == [(NAMES[3], None)]
    assert (out / NAMES[3]).read_bytes() == shard_bytes[NAMES[3]]


@pytest.mark.parametrize("damage, fault", [("truncate", "truncated"), ("magic", "bad magic number")])
def test_invalid_local_file_is_reported_and_fetched_again(hub, shard_bytes, tmp_path, damage, fault):
    out = tmp_path / "shards"
    assert run(["2", "--dir", str(out)], hub.url, tmp_path).returncode == 0
    bad = out / NAMES[1]
    data = bytearray(shard_bytes[NAMES[1]])
    bad.write_bytes(data[:-10] if damage == "truncate" else b"\0\0\0\0" + data[4:])
    hub.requests.clear()
    result = run(["2", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{bad}: {fault}" in result.stdout and "downloading it again" in result.stdout
    assert hub.gets() == [(NAMES[1], None)]
    assert bad.read_bytes() == shard_bytes[NAMES[1]]


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


def test_junk_partial_file_is_restarted(hub, shard_bytes, tmp_path):
    # A .part longer than the remote file cannot be resumed (the server answers 416).
    out, data = tmp_path / "shards", shard_bytes[NAMES[0]]
    out.mkdir()
    (out / f"{NAMES[0]}.part").write_bytes(data + b"extra")
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.gets(NAMES[0]) == [(NAMES[0], f"bytes={len(data) + 5}-"), (NAMES[0], None)]
    assert (out / NAMES[0]).read_bytes() == shard_bytes[NAMES[0]]
    assert listing(out) == sorted(NAMES[:2])


def test_partial_file_with_a_wrong_header_is_not_resumed(hub, shard_bytes, tmp_path):
    out, name = tmp_path / "shards", NAMES[0]
    out.mkdir()
    (out / f"{name}.part").write_bytes(b"<html>" + b"\0" * 100)
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.gets(name) == [(name, None)]
    assert (out / name).read_bytes() == shard_bytes[name]


def test_partial_file_when_the_server_ignores_range(hub, shard_bytes, tmp_path):
    # A server that answers a Range request with the whole file (200) must not get appended to the .part.
    out, name = tmp_path / "shards", NAMES[0]
    out.mkdir()
    (out / f"{name}.part").write_bytes(shard_bytes[name][:8] + b"\xff" * 92)  # a plausible start, wrong bytes
    hub.faults[name] = "no-range"
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.gets(name) == [(name, "bytes=100-")]
    assert (out / name).read_bytes() == shard_bytes[name]


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


def test_complete_partial_file_is_kept_without_network(hub, shard_bytes, tmp_path):
    # A run that stopped between the last byte and the rename left a whole, valid .part.
    out, name = tmp_path / "shards", NAMES[0]
    out.mkdir()
    (out / f"{name}.part").write_bytes(shard_bytes[name])
    (out / NAMES[1]).write_bytes(shard_bytes[NAMES[1]])
    result = run(["1", "--dir", str(out)], hub.url, tmp_path)
    assert result.returncode == 0, result.stderr
    assert hub.requests == []
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
    assert f"downloading {NAMES[0]} failed: ConnectError" in result.stderr
    assert "could not reach the server" in result.stderr and RETRY in result.stderr
    assert not (out / NAMES[0]).exists()


def test_silent_server_times_out(tmp_path):
    # The kernel accepts the connection, but nobody ever answers.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        result = run(["1", "--dir", str(tmp_path / "shards")], f"http://127.0.0.1:{s.getsockname()[1]}",
                     tmp_path, HF_HUB_DOWNLOAD_TIMEOUT="1")
    assert result.returncode == 1
    assert "ReadTimeout" in result.stderr and "no answer within 1 s" in result.stderr


@pytest.mark.parametrize("arg", ["0", "104", "abc", "-3", "2.5"])
def test_bad_chunk_count_is_a_usage_error(arg, capsys):
    with pytest.raises(SystemExit) as exit_info:
        dl.main([arg])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: cached_fineweb10B.py") and "argument N" in err


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
    assert re.search(r"fineweb_val_000000\.bin +3,000 tokens", result.stdout)
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


def test_full_disk_says_how_much_space_is_needed(hub, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(dl, "shard_url", lambda name: hub.url + RESOLVE + name)
    monkeypatch.setattr(dl, "fetch", functools.partial(dl.fetch, open_file=FullDisk))
    out = tmp_path / "shards"
    assert dl.main(["2", "--dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"the disk is full (No space left on device) while writing {NAMES[0]}" in err
    assert "need about 600.0 MB more (about 200 MB per chunk)" in err  # 3 files still to come
    assert RETRY in err
    assert not (out / NAMES[0]).exists()


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
