"""tools.board: the message board on a local directory and on a Hugging Face bucket (a fake of HfApi's bucket
methods with their real signatures), claims and their expiry, the result markers checked against artifacts."""
from __future__ import annotations

import datetime
import inspect
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import pytest
from huggingface_hub import HfApi
from huggingface_hub._buckets import BucketFile, BucketFolder
from huggingface_hub.errors import HfHubHTTPError

from tools_logtext import ROOT, SCRIPT, curve, log_text, write
from tools import board

def http_error(status, message):
    import httpx2
    request = httpx2.Request("GET", "https://huggingface.co/api/buckets/team/ws/tree/board%2F")
    return HfHubHTTPError(message, response=httpx2.Response(status, request=request))


def connect_error():
    import httpx2
    return httpx2.ConnectError("[Errno -3] Temporary failure in name resolution")


T0 = datetime.datetime(2026, 12, 6, 18, 30, 5, tzinfo=datetime.timezone.utc)


def at(minutes=0, seconds=0):
    return T0 + datetime.timedelta(minutes=minutes, seconds=seconds)


class FakeHfApi:
    """HfApi's three bucket methods over a dict {path: bytes}. The listing comes in a shuffled order (never trust it);
    `fail` (an exception) makes every call raise it, as an unreachable hub does."""

    def __init__(self, seed=0):
        self.files, self.fail, self.calls = {}, None, []
        self.rng = random.Random(seed)
        self.on_batch = None  # a hook: another writer acting between our batch and our read-back

    def _enter(self, what):
        self.calls.append(what)
        if self.fail is not None:
            raise self.fail

    def list_bucket_tree(
        self,
        bucket_id: str,
        prefix: str | None = None,
        *,
        recursive: bool | None = None,
        token: str | bool | None = None,
    ) -> Iterable[BucketFile | BucketFolder]:
        self._enter("list")
        paths = [p for p in self.files if p.startswith(prefix or "")]
        self.rng.shuffle(paths)
        items = [BucketFile(type="file", path=p, size=len(self.files[p]), xetHash="0" * 64) for p in paths]
        items.append(BucketFolder(type="directory", path=(prefix or "") + "sub", uploadedAt=None))
        return iter(items)

    def batch_bucket_files(
        self,
        bucket_id: str,
        *,
        add: list[tuple[str | Path | bytes, str]] | None = None,
        copy: list[tuple[str, str, str, str]] | None = None,
        delete: list[str] | None = None,
        token: str | bool | None = None,
    ):
        self._enter("batch")
        assert copy is None and delete is None and len(add) == 1  # one message per batch call
        for source, dest in add:
            self.files[dest] = source if isinstance(source, bytes) else Path(source).read_bytes()  # overwrites
        if self.on_batch:
            self.on_batch(self)

    def download_bucket_files(
        self,
        bucket_id: str,
        files: list[tuple[str | BucketFile, str | Path]],
        *,
        raise_on_missing_files: bool = False,
        token: str | bool | None = None,
    ) -> None:
        self._enter("download")
        for remote, local in files:
            path = remote.path if isinstance(remote, BucketFile) else remote
            if path not in self.files:
                if raise_on_missing_files:
                    raise http_error(404, f"not found: {path}")
                continue
            Path(local).write_bytes(self.files[path])


def test_the_fake_has_the_real_signatures():
    for name in ("list_bucket_tree", "batch_bucket_files", "download_bucket_files"):
        assert inspect.signature(getattr(FakeHfApi, name)) == inspect.signature(getattr(HfApi, name)), name


class Env:
    """One board, local or bucket, driven through main() as a user would."""

    def __init__(self, kind, tmp_path, capsys):
        self.kind, self.tmp, self.capsys = kind, tmp_path, capsys
        self.api = FakeHfApi() if kind == "bucket" else None
        self.where = (["--bucket", "team/ws", "--spool", str(tmp_path / "spool")] if kind == "bucket"
                      else ["--board", str(tmp_path / "board")])

    def __call__(self, *argv, agent="agent-01", now=T0, code=0):
        capsys = self.capsys
        capsys.readouterr()
        got = board.main(self.where + (["--agent", agent] if agent else []) + list(argv), api=self.api, now=now)
        out, err = capsys.readouterr()
        assert got == code, (out, err)
        return out, err

    def names(self):
        if self.kind == "bucket":
            return sorted(p[len("board/"):] for p in self.api.files)
        return sorted(os.listdir(self.tmp / "board"))

    def text(self, name):
        if self.kind == "bucket":
            return self.api.files["board/" + name].decode()
        return (self.tmp / "board" / name).read_text()


@pytest.fixture(params=["local", "bucket"])
def env(request, tmp_path, capsys, monkeypatch):
    for var in ("AGENT_ID", "BOARD_DIR", "BOARD_BUCKET", "BOARD_SPOOL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return Env(request.param, tmp_path, capsys)


# --- the format --------------------------------------------------------------------------------------------------

def test_names_and_their_order():
    names = [board.message_name("agent-01", T0, n) for n in (1, 2, 3, 10, 999)]
    assert names == ["20261206-183005_agent-01.md", "20261206-183005_agent-01~002.md", "20261206-183005_agent-01~003.md",
                     "20261206-183005_agent-01~010.md", "20261206-183005_agent-01~999.md"]
    assert sorted(names) == names  # the suffix sorts after the plain name
    assert all(board.NAME_RE.fullmatch(n) for n in names)
    with pytest.raises(board.BoardError, match="posted 999 messages in the second 20261206-183005; wait a second"):
        board.message_name("agent-01", T0, 1000)


def test_render_and_parse():
    text = board.render("agent-01", "agent", T0, ["artifacts/x_agent-01", 'a "quoted", ref'], "Hello\n\nworld\n",
                        {"claim": "Muon lr 0.03: wd 0.1"})
    assert text == ('---\nagent: agent-01\ntype: agent\ntimestamp: 2026-12-06T18:30:05Z\n'
                    'refs: ["artifacts/x_agent-01", "a \\"quoted\\", ref"]\nclaim: "Muon lr 0.03: wd 0.1"\n---\n'
                    'Hello\n\nworld\n')
    meta, body = board.parse(text)
    assert meta == {"agent": "agent-01", "type": "agent", "timestamp": "2026-12-06T18:30:05Z",
                    "refs": ["artifacts/x_agent-01", 'a "quoted", ref'], "claim": "Muon lr 0.03: wd 0.1"}
    assert body == "Hello\n\nworld\n"
    m = board.Message("20261206-183005_agent-01.md", text)
    assert m.error is None and m.time == T0 and m.summary() == "Hello"
    meta, _ = board.parse("---\nagent: a\ntype: user\ntimestamp: 2026-12-06T18:30:05Z\nrefs: []\nnote: 'it''s'\n---\n")
    assert meta["note"] == "it's" and meta["refs"] == []


@pytest.mark.parametrize("text, why", [
    ("hello", "no frontmatter (the first line is not ---)"),
    ("---\nagent: a\n", "the frontmatter does not end (no second --- line): a file cut while it was written?"),
    ("---\nagent a\n---\n", "frontmatter line 2: 'agent a' is not `key: value`"),
    ("---\nagent: a\nagent: b\n---\n", "frontmatter line 3: agent given twice"),
    ("---\nagent: a\ntype: agent\n---\n", "the frontmatter has no timestamp"),
    ("---\nagent: a\ntype: bot\ntimestamp: x\n---\n", "type 'bot' is not one of agent, system, user"),
    ("---\nagent: a\ntype: agent\ntimestamp: x\nrefs: [1]\n---\n", "refs must be a [list] of strings"),
    ("---\nagent: a\ntype: agent\ntimestamp: x\nrefs: [\"a\"\n---\n",
     "frontmatter line 5: refs: '[\"a\"' is not a quoted string or a [list] of quoted strings"),
    ("---\nagent: a\ntype: agent\ntimestamp: x\nn: 'a\n---\n", "frontmatter line 5: n: unterminated quote"),
    ("---\nagent: [\"a\"]\ntype: agent\ntimestamp: x\n---\n", "agent must be a string"),
])
def test_parse_refuses(text, why):
    with pytest.raises(ValueError) as e:
        board.parse(text)
    assert str(e.value) == why


def test_message_errors():
    ok = board.render("b", "agent", T0, body="x")
    assert board.Message("20261206-183005_a.md", ok).error == "the file name says agent a, the frontmatter b"
    bad = ok.replace("2026-12-06T18:30:05Z", "yesterday")
    assert board.Message("20261206-183005_b.md", bad).error == "timestamp 'yesterday' is not YYYY-MM-DDTHH:MM:SSZ"
    with pytest.raises(board.BoardError, match="type 'bot': one of agent, system, user"):
        board.render("a", "bot", T0)
    with pytest.raises(board.BoardError, match="ref 'a\\\\nb': a file, a directory or a message name, on one line"):
        board.render("a", "agent", T0, ["a\nb"])
    with pytest.raises(board.BoardError, match="a post holds at most 1048576"):
        board.render("a", "agent", T0, body="x" * (1 << 20))


# --- the same behaviour on both backends -------------------------------------------------------------------------

def test_post_list_read(env):
    out, _ = env("post", "first message\nsecond line", "-r", "artifacts/a_agent-01,notes.md", "-r", "x.md")
    where = "bucket team/ws (board/)" if env.kind == "bucket" else f"directory {env.tmp / 'board'}"
    assert out == f"posted 20261206-183005_agent-01.md to {where}\n"
    env("post", "-t", "user", "from the user", agent="human")
    env("post", "again in the same second")
    env("post", "and once more")
    names = ["20261206-183005_agent-01.md", "20261206-183005_agent-01~002.md", "20261206-183005_agent-01~003.md",
             "20261206-183005_human.md"]
    assert env.names() == names
    assert board.parse(env.text(names[0]))[0]["refs"] == ["artifacts/a_agent-01", "notes.md", "x.md"]
    out, _ = env("list")
    assert [line.split()[0] for line in out.splitlines()] == names
    assert out.splitlines()[3].split(None, 2)[1:] == ["user", "from the user"]
    out, _ = env("list", "-n", "2")
    assert [line.split()[0] for line in out.splitlines()] == names[2:]
    out, _ = env("list", "-f", "1")
    assert out.split()[0] == names[0]
    out, _ = env("read")
    assert out == f"=== {names[3]}\n" + env.text(names[3]).rstrip("\n") + "\n"
    out, _ = env("read", names[1][:-3])  # the name without .md
    assert out.startswith(f"=== {names[1]}\n---\nagent: agent-01\n") and "again in the same second" in out
    out, _ = env("read", "-a", "--json")
    assert [m["name"] for m in json.loads(out)] == names
    assert json.loads(out)[0]["body"] == "first message\nsecond line\n"
    out, _ = env("info")
    assert f"messages: 4, first {names[0]}, last {names[3]}" in out and "agent: agent-01" in out
    if env.kind == "bucket":
        assert f"spool: {env.tmp / 'spool'} (0 waiting)" in out


def test_post_from_stdin(env, monkeypatch):
    import io
    monkeypatch.setattr(sys, "stdin", io.StringIO("# Plan\n\nfrom a file\n"))
    env("post")
    name, = env.names()
    assert board.parse(env.text(name))[1] == "# Plan\n\nfrom a file\n"


def test_bad_input(env, monkeypatch):
    import io
    monkeypatch.setattr(sys, "stdin", io.StringIO("  \n"))
    _, err = env("post", code=2)
    assert err == "error: empty message: nothing posted\n"
    _, err = env("post", "x", agent=None, code=2)
    assert err == "error: no agent id: set AGENT_ID or pass --agent ID (letters, digits, '-' and '_')\n"
    _, err = env("post", "x", agent="a b", code=2)
    assert err.startswith("error: agent id 'a b': letters, digits")
    env("post", "hello")
    _, err = env("read", "20261206-183005_agent-0", code=2)
    assert err == "error: no message 20261206-183005_agent-0.md on the board (did you mean 20261206-183005_agent-01.md?)\n"
    _, err = env("read", "nothing", code=2)
    assert err == "error: no message nothing.md on the board; python -m tools.board list shows the names\n"
    with pytest.raises(SystemExit) as e:
        env("post", "-t", "bot", "x")
    assert e.value.code == 2
    assert env.names() == ["20261206-183005_agent-01.md"]  # nothing else was written


def test_no_stdin(env, monkeypatch):
    monkeypatch.setattr(sys, "stdin", None)
    _, err = env("post", code=2)
    assert err == "error: no message: give the BODY as an argument or on stdin (< file)\n"


def test_agent_from_the_environment(env, monkeypatch):
    monkeypatch.setenv("AGENT_ID", "agent-env")
    env("post", "hi", agent=None)
    assert env.names() == ["20261206-183005_agent-env.md"]


def test_a_broken_message_is_listed_not_fatal(env):
    env("post", "fine")
    broken = "20261206-183006_agent-02.md"
    if env.kind == "bucket":
        env.api.files["board/" + broken] = b"---\nagent: agent-02\n"
        env.api.files["board/not-a-message.txt"] = b"x"
    else:
        (env.tmp / "board" / broken).write_text("---\nagent: agent-02\n")
        (env.tmp / "board" / "not-a-message.txt").write_text("x")
    out, _ = env("list")
    assert out.splitlines()[1] == (f"{broken:<42} ?      [broken: the frontmatter does not end (no second --- line): a "
                                   "file cut while it was written?]")
    assert len(out.splitlines()) == 2


def test_claims_expire_two_hours_after_the_last_post(env):
    env("claim", "Muon lr 0.03 with wd 0.1", "plan: 4 runs")
    env("claim", "SOAP on the head", agent="agent-02", now=at(10))
    name = "20261206-183005_agent-01.md"
    meta, body = board.parse(env.text(name))
    assert meta["claim"] == "Muon lr 0.03 with wd 0.1" and body == "Claim: Muon lr 0.03 with wd 0.1\n\nplan: 4 runs\n"
    out, _ = env("claims", now=at(30))
    lines = out.splitlines()
    assert lines[1].split()[:5] == ["agent-01", "30m", "30m", "1h30m", "open"]
    assert lines[1].endswith(name) and "Muon lr 0.03 with wd 0.1" in lines[1]
    assert lines[2].split()[:5] == ["agent-02", "20m", "20m", "1h40m", "open"]
    _, err = env("claim", "muon LR 0.03  with wd 0.1", now=at(40), code=2)
    assert err == f"error: you have this claim open already: {name} (any post of yours keeps it open)\n"
    env("post", "progress: run 1 of 4 done", now=at(100))  # any post by the owner keeps its claims open
    out, _ = env("claims", now=at(100 + 119))
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["agent-01"]  # agent-02's expired at 10 + 120
    out, _ = env("claims", now=at(220))
    assert out == "no open claims (-a lists the expired and released ones)\n"
    out, _ = env("claims", "-a", now=at(220))
    assert [line.split()[4] for line in out.splitlines()[1:]] == ["expired", "expired"]
    rows = json.loads(env("claims", "-a", "--json", now=at(30))[0])
    assert rows[0]["expires"] == "2026-12-06T22:10:05Z" and rows[0]["last"] == "2026-12-06T20:10:05Z"  # its last post
    # another agent's posts do not keep it open, nor does a post of the owner after it expired
    env("post", "me too", agent="agent-02", now=at(230))
    env("claim", "Adam betas", now=at(240))
    out, _ = env("claims", now=at(240 + 119))
    assert [line.split()[-1] for line in out.splitlines()[1:]] == ["20261206-223005_agent-01.md"]


def test_release(env):
    env("claim", "one")
    env("claim", "two", now=at(1))
    _, err = env("release", agent="agent-02", code=2)
    assert err == "error: agent-02 has no open claim\n"
    _, err = env("release", "20261206-183005_agent-02.md", code=2)
    assert err == ("error: 20261206-183005_agent-02.md is not an open claim of agent-01 (open: 20261206-183005_agent-01.md, "
                   "20261206-183105_agent-01.md)\n")
    env("release", "20261206-183005_agent-01", "-m", "did not help: 3300 steps", now=at(2))
    out, _ = env("claims", now=at(3))
    assert [line.split()[-1] for line in out.splitlines()[1:]] == ["20261206-183105_agent-01.md"]
    env("release", now=at(4))
    assert env("claims", now=at(5))[0].startswith("no open claims")
    out, _ = env("claims", "-a", now=at(5))
    assert [line.split()[4] for line in out.splitlines()[1:]] == ["released", "released"]
    meta, body = board.parse(env.text("20261206-183205_agent-01.md"))
    assert meta["release"] == ["20261206-183005_agent-01.md"] and body == "Released: one\n\ndid not help: 3300 steps\n"


def test_claim_needs_a_direction(env):
    _, err = env("claim", "  ", code=2)
    assert err.startswith("error: claim what? give the direction as one argument")


# --- result markers ----------------------------------------------------------------------------------------------

RUNS = [curve(round(3.2760 + o, 5)) for o in (-0.0002, 0.0002, -0.0001, 0.0001)]  # passes 0.005 from step 3075


def artifact(root, name, runs=RUNS, steps=None, results=True, logs=True):
    """artifacts/<name>/ with the script, logs of `runs` and a results.json written by tools.results."""
    from tools import results as tr
    d = root / "artifacts" / name
    d.mkdir(parents=True)
    write(d / "train_gpt_simple.py", SCRIPT)
    write(d / "a.txt", log_text(runs))
    if results:
        assert tr.main([str(d / "a.txt"), "--agent-id", "agent-01", "--experiment", "x", "--optimizer", "Muon"]) == 0
        if steps is not None:
            data = json.loads((d / "results.json").read_text())
            data["steps_to_3_28"] = steps
            (d / "results.json").write_text(json.dumps(data))
    if not logs:
        os.remove(d / "a.txt")
    return d


def test_results(env, tmp_path):
    root = tmp_path / "ws"
    artifact(root, "good_agent-01")
    artifact(root, "better_agent-02", runs=[curve(round(3.2750 + o, 5)) for o in (-0.0002, 0.0002, -0.0001, 0.0001)])
    artifact(root, "wrong_agent-03")
    artifact(root, "nologs_agent-04", logs=False)
    artifact(root, "weak_agent-05", runs=[curve(3.2790)], results=False)
    env("post", "**Leaderboard result:** 3075 steps · Muon wd 0.05 · n=4", "-r", "artifacts/good_agent-01/")
    env("post", "negative: lr 0.05 diverged, no marker")
    env("post", "Summary\n  **Leaderboard result:** 3000 steps · see artifacts/wrong_agent-03/", agent="agent-03")
    env("post", "**Leaderboard result:** 2900 steps · artifacts/nologs_agent-04", agent="agent-04")
    env("post", "**Leaderboard result:** 2000 steps", agent="agent-05")
    env("post", "**Leaderboard result:** 3250 steps · artifacts/weak_agent-05", agent="agent-05", now=at(1))
    env("post", "**Leaderboard result:** 2950 steps, 4 runs", "-r", "artifacts/better_agent-02", agent="agent-02",
        now=at(2))
    env("post", "**Leaderboard result:** 3100 steps", "-r", "artifacts/good_agent-01,artifacts/x", now=at(3))
    env("post", "**Leaderboard result:** 3050 steps", "-r", "artifacts/missing_agent-09", agent="agent-09", now=at(4))
    out, _ = env("results", "--root", str(root), code=1)
    rows = [line.split(None, 4) for line in out.splitlines()[1:]]
    assert [r[2] for r in rows] == ["3075", "3000", "2900", "2000", "3250", "2950", "3100", "3050"]
    text = out.splitlines()
    assert "NEW BEST  verified: artifacts/good_agent-01: mean 3.27740 over n = 4, margin 0.00520 >= 0.005" in text[1]
    assert text[2].endswith("unverified: the marker says 3000 steps, artifacts/wrong_agent-03/results.json 3075 "
                            "(would be a new best)")
    assert text[3].endswith("unverified: artifacts/nologs_agent-04: no training logs beside results.json (*.txt, "
                            "*.log): the claim cannot be checked (would be a new best)")
    assert text[4].endswith("unverified: names no artifact: add -r artifacts/<approach>_<agent>/ to the post "
                            "(would be a new best)")
    assert text[5].endswith("unverified: artifacts/weak_agent-05: no results.json (write it from the logs with "
                            "python -m tools.results)")
    assert "NEW BEST  verified: artifacts/better_agent-02: mean 3.27740 over n = 4, margin 0.00520" in text[6]
    assert text[7].endswith("unverified: names 2 artifacts (artifacts/good_agent-01, artifacts/x): which one holds "
                            "the result?")
    assert text[8].endswith(f"unverified: artifacts/missing_agent-09: no such directory under {root}")
    rows = json.loads(env("results", "--root", str(root), "--json", code=1)[0])
    assert [r["new_best"] for r in rows] == [True, False, False, False, False, True, False, False]


def test_results_not_significant(env, tmp_path):
    root = tmp_path / "ws"
    d = artifact(root, "ported_agent-01")
    data = json.loads((d / "results.json").read_text())
    os.makedirs(d / "public_logs")
    os.rename(d / "a.txt", d / "public_logs" / "a.txt")
    data.update(evidence="public", public_source="records/x", hardware="8xH100", steps_to_3_28=3000,
                claim_holds=False, mean_val_loss=3.278, std_val_loss=0.000183)
    (d / "results.json").write_text(json.dumps(data))
    env("post", "**Leaderboard result:** 3000 steps · ported", "-r", "artifacts/ported_agent-01")
    out, _ = env("results", "--root", str(root), code=1)
    assert out.splitlines()[1].endswith("unverified: not significant: at step 3000 the mean 3.27800 over n = 4 has "
                                        "margin 0.00400 < bar 0.005 (would be a new best)")


def test_no_results(env):
    env("post", "nothing measured yet")
    out, _ = env("results")
    assert out == "no result markers on the board (a post's line **Leaderboard result:** <steps> steps · ...)\n"


# --- the local directory -----------------------------------------------------------------------------------------

CHILD = """
import datetime, sys
from tools import board
d, agent, tag, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
now = datetime.datetime(2026, 12, 6, 18, 30, 5, tzinfo=datetime.timezone.utc)
print("ready", flush=True)
sys.stdin.readline()  # the barrier: both shells start posting together
for i in range(n):
    assert board.main(["--board", d, "--agent", agent, "post", f"{tag} {i}"], now=now) == 0
"""


def test_two_shells_post_at_once(tmp_path):
    d, n = str(tmp_path / "board"), 40
    env = dict(os.environ, PYTHONPATH=ROOT)
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, d, agent, tag, str(n)], cwd=ROOT, env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for agent, tag in (("agent-01", "A"), ("agent-01", "B"), ("agent-02", "C"))]
    for p in procs:
        assert p.stdout.readline() == "ready\n"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, _ = p.communicate()
        assert p.returncode == 0
        assert out.count("posted ") == n
    names = sorted(os.listdir(d))
    assert len(names) == 3 * n and all(board.NAME_RE.fullmatch(x) for x in names)  # no temporary file left
    bodies = sorted(board.parse((tmp_path / "board" / x).read_text())[1] for x in names)
    assert bodies == sorted(f"{tag} {i}\n" for tag in "ABC" for i in range(n))  # none lost, none overwritten
    mine = [x for x in names if "agent-01" in x]
    assert mine[0] == "20261206-183005_agent-01.md" and mine[-1] == f"20261206-183005_agent-01~{2 * n:03d}.md"


def test_without_hard_links(tmp_path, monkeypatch, capsys):
    import errno

    def no_link(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)
    d = str(tmp_path / "board")
    for i in range(3):
        assert board.main(["--board", d, "--agent", "a", "post", f"m{i}"], now=T0) == 0
    assert sorted(os.listdir(d)) == ["20261206-183005_a.md", "20261206-183005_a~002.md", "20261206-183005_a~003.md"]
    assert board.parse((tmp_path / "board" / "20261206-183005_a~003.md").read_text())[1] == "m2\n"


def test_board_from_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BOARD_DIR", str(tmp_path / "b"))
    monkeypatch.delenv("BOARD_BUCKET", raising=False)
    assert board.main(["--agent", "a", "post", "x"], now=T0) == 0
    assert os.listdir(tmp_path / "b") == ["20261206-183005_a.md"]


def test_unwritable_board(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert board.main(["--board", str(tmp_path / "file"), "--agent", "a", "post", "x"], now=T0) == 2
    assert capsys.readouterr().err.startswith(f"error: cannot write to the board {tmp_path / 'file'}: ")


# --- the bucket --------------------------------------------------------------------------------------------------

@pytest.fixture
def bucket(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return Env("bucket", tmp_path, capsys)


@pytest.mark.parametrize("error", [http_error(503, "503 Service Unavailable"), connect_error(),
                                   ConnectionError("no route to host"), OSError("Network is unreachable")])
def test_offline_posts_are_spooled_then_pushed(bucket, error):
    bucket("post", "before")
    bucket.api.fail = error
    out, err = bucket("post", "offline one", now=at(1))
    assert out == "spooled 20261206-183105_agent-01.md: it goes to bucket team/ws (board/) with the next command that reaches it\n"
    assert err.count("\n") == 2 and err.startswith(f"board: bucket team/ws unreachable ({type(error).__name__}: ")
    bucket("post", "offline two", now=at(1))
    assert sorted(x for x in os.listdir(bucket.tmp / "spool") if x.endswith(".md")) == [
        "20261206-183105_agent-01.md", "20261206-183105_agent-01~002.md"]
    out, err = bucket("list", now=at(2))  # offline: the cache and the spool
    assert [line.split()[0] for line in out.splitlines()] == ["20261206-183005_agent-01.md", "20261206-183105_agent-01.md",
                                                             "20261206-183105_agent-01~002.md"]
    assert "note: offline: 1 message(s) from the cache" in err
    assert bucket.names() == ["20261206-183005_agent-01.md"]
    # another agent posts under the spooled name meanwhile
    bucket.api.fail = None
    bucket.api.files["board/20261206-183105_agent-01.md"] = board.render("agent-01", "agent", at(1), body="other").encode()
    out, err = bucket("list", now=at(3))
    assert "note: pushed the spooled 20261206-183105_agent-01.md as 20261206-183105_agent-01~002.md" in err
    assert "note: pushed the spooled 20261206-183105_agent-01~002.md as 20261206-183105_agent-01~003.md" in err
    assert bucket.names() == ["20261206-183005_agent-01.md", "20261206-183105_agent-01.md",
                              "20261206-183105_agent-01~002.md", "20261206-183105_agent-01~003.md"]
    assert board.parse(bucket.text("20261206-183105_agent-01~003.md"))[1] == "offline two\n"
    assert not [x for x in os.listdir(bucket.tmp / "spool") if x.endswith(".md")]
    assert len(out.splitlines()) == 4


def test_an_overwrite_in_the_same_moment_is_sent_again(bucket):
    def other_writer(api):  # another shell of the same agent writes the same name right after us
        api.on_batch = None
        api.files["board/20261206-183005_agent-01.md"] = board.render("agent-01", "agent", T0, body="theirs").encode()

    bucket.api.on_batch = other_writer
    out, _ = bucket("post", "ours")
    assert out.startswith("posted 20261206-183005_agent-01~002.md")
    assert board.parse(bucket.text("20261206-183005_agent-01~002.md"))[1] == "ours\n"
    assert bucket.api.calls == ["list", "batch", "download", "list", "batch", "download"]


def test_one_message_per_batch_and_a_listing_first(bucket):
    bucket("post", "a")
    bucket("post", "b")
    assert bucket.api.calls == ["list", "batch", "download", "list", "batch", "download"]


def test_bucket_from_the_environment(tmp_path, monkeypatch, capsys):
    api = FakeHfApi()
    monkeypatch.setenv("BOARD_BUCKET", "team/ws")
    monkeypatch.setenv("BOARD_SPOOL", str(tmp_path / "spool"))
    monkeypatch.setenv("AGENT_ID", "a")
    assert board.main(["post", "x"], api=api, now=T0) == 0
    assert list(api.files) == ["board/20261206-183005_a.md"]
    assert board.main(["--board", str(tmp_path / "b"), "post", "y"], api=api, now=T0) == 0  # --board wins
    assert os.listdir(tmp_path / "b") == ["20261206-183005_a.md"]


def test_bad_bucket_id_and_unwritable_spool(tmp_path, capsys):
    assert board.main(["--bucket", "nope", "--agent", "a", "post", "x"], api=FakeHfApi(), now=T0) == 2
    assert capsys.readouterr().err == "error: bucket 'nope': an id such as username/my-bucket\n"
    api = FakeHfApi()
    api.fail = ConnectionError("down")
    (tmp_path / "f").write_text("")
    assert board.main(["--bucket", "t/w", "--spool", str(tmp_path / "f"), "--agent", "a", "post", "x"], api=api,
                      now=T0) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith(f"error: the bucket is unreachable and the spool {tmp_path / 'f'} cannot "
                                           "be written (") and err.endswith("the message was NOT posted\n")


def test_reading_downloads_what_is_not_cached_in_one_call(bucket):
    for i in range(5):
        bucket("post", f"m{i}", now=at(i))
    bucket.api.calls.clear()
    other = FakeHfApi()
    other.files = dict(bucket.api.files)
    bucket.api = other  # another machine: an empty cache
    bucket.tmp.joinpath("spool", ".cache").rename(bucket.tmp / "old-cache")
    out, _ = bucket("read", "-a")
    assert out.count("=== ") == 5 and other.calls == ["list", "download"]
    other.calls.clear()
    bucket("read", "-a")
    assert other.calls == ["list"]  # messages never change: the cache holds them


def test_counts_must_be_positive(env):
    with pytest.raises(SystemExit) as e:
        env("list", "-n", "0")
    assert e.value.code == 2 and "argument -n: '0': a count >= 1" in env.capsys.readouterr().err


def test_an_unreadable_board(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert board.main(["--board", str(tmp_path / "file"), "list"], now=T0) == 2
    assert capsys.readouterr().err == f"error: cannot read the board {tmp_path / 'file'}: Not a directory\n"


def test_a_spooled_post_is_pushed_once(bucket, monkeypatch):
    bucket.api.fail = ConnectionError("down")
    bucket("post", "offline")
    bucket.api.fail = None
    real_rename = os.rename

    def other_shell_first(src, dst):  # another shell takes the spooled message just before this one
        if ".pushing-" in str(dst) and not other_shell_first.done:
            other_shell_first.done = True
            real_rename(src, str(dst).replace(".pushing-", ".pushing-other-"))
        return real_rename(src, dst)

    other_shell_first.done = False
    monkeypatch.setattr(os, "rename", other_shell_first)
    bucket("list", now=at(1))
    assert bucket.api.calls.count("batch") == 0  # this shell did not send it: the other one does
    assert [x for x in os.listdir(bucket.tmp / "spool") if x.endswith(".md")] == [
        f".pushing-other-{os.getpid()}-20261206-183005_agent-01.md"]


def test_a_failed_push_stays_in_the_spool(bucket):
    bucket.api.fail = ConnectionError("down")
    bucket("post", "offline")
    calls = []
    bucket.api.fail = None
    original = bucket.api.batch_bucket_files

    def batch(*args, **kwargs):
        calls.append(1)
        raise ConnectionError("dropped")

    bucket.api.batch_bucket_files = batch
    _, err = bucket("list", now=at(1))
    assert calls == [1] and "unreachable (ConnectionError: dropped)" in err
    assert sorted(x for x in os.listdir(bucket.tmp / "spool") if not x.startswith(".")) == ["20261206-183005_agent-01.md"]
    bucket.api.batch_bucket_files = original
    _, err = bucket("list", now=at(2))
    assert "note: pushed the spooled 20261206-183005_agent-01.md" in err
    assert bucket.names() == ["20261206-183005_agent-01.md"]


def test_a_push_cut_short_goes_back_to_the_spool(bucket):
    spool = bucket.tmp / "spool"
    spool.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    text = board.render("agent-01", "agent", T0, body="from a shell that died while pushing")
    (spool / f".pushing-{int(dead.stdout)}-20261206-183005_agent-01.md").write_text(text)
    (spool / f".pushing-{os.getpid()}-20261206-183006_agent-01.md").write_text(text)  # alive: still pushing
    _, err = bucket("list", now=at(1))
    assert "note: pushed the spooled 20261206-183005_agent-01.md" in err
    assert bucket.names() == ["20261206-183005_agent-01.md"]
    assert sorted(os.listdir(spool)) == [".cache", f".pushing-{os.getpid()}-20261206-183006_agent-01.md"]
