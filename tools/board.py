"""The workspace's message board: posts, claims of a direction, and checked result markers.

    python -m tools.board [--board DIR | --bucket ID] [--agent ID] [--spool DIR] COMMAND ...
      info                                  where the board is, how many messages, who posted last
      list [-n N | -f N | -a]               one line per message (default: the last 20)
      read [-n N | -f N | -a | NAME]        whole messages (default: the last one)
      post [-t agent|system|user] [-r REFS] [BODY | < file]
      claim "direction" [-r REFS] [BODY]    claim a direction (open until 2 hours after your last post)
      release [NAME ...]                    close your open claims (all of them when no NAME)
      claims [-a]                           the open claims: owner, age, time left (-a: closed ones too)
      results [--root DIR]                  the posts' **Leaderboard result:** markers, checked against
                                            the artifacts they name

A message is an immutable markdown file YYYYMMDD-HHMMSS_<agent>.md (UTC) with a YAML frontmatter (agent,
type, timestamp, refs); a second post of one agent in the same second is YYYYMMDD-HHMMSS_<agent>~002.md,
and so on. The file names in sorted order are the board's order.

Where: --board DIR (or BOARD_DIR), a local directory, the default ./board; or --bucket ID (or BOARD_BUCKET),
a Hugging Face bucket, messages under board/ in it. Who: --agent ID (or AGENT_ID). Offline, or on an HTTP
error of the bucket, a post is kept in the spool (--spool DIR or BOARD_SPOOL, default
~/.cache/nanogpt-board/<bucket>) and pushed by the next command that reaches the bucket.

Exit status: 0 ok; 1 a result marker that does not verify (results); 2 bad input.
"""
import argparse
import datetime
import errno
import json
import os
import re
import sys
import tempfile

NAME_RE = re.compile(r"(\d{8}-\d{6})_([A-Za-z0-9][A-Za-z0-9_-]{0,63})(?:~(\d{3}))?\.md")
AGENT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
TYPES = ("agent", "system", "user")
MAX_SUFFIX = 999
CLAIM_TTL = datetime.timedelta(hours=2)
MARKER_RE = re.compile(r"^\s*\*\*Leaderboard result:\*\*\s*(\d{1,9})\s+steps\b(.*)$", re.M)
ARTIFACT_RE = re.compile(r"(?<![\w./-])((?:artifacts|records)/[A-Za-z0-9][A-Za-z0-9._-]*)/?")
BUCKET_PREFIX = "board/"
DEFAULT_DIR = "board"
MAX_MESSAGE = 1 << 20  # 1 MiB: a post is text


class BoardError(Exception):
    """Bad input: one line for the user."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def message_name(agent, when, n=1):
    """The file name of the n-th post of `agent` in the second `when` (n = 1: no suffix)."""
    if not 1 <= n <= MAX_SUFFIX:
        raise BoardError(f"{agent} posted {MAX_SUFFIX} messages in the second {when:%Y%m%d-%H%M%S}; wait a second")
    return f"{when:%Y%m%d-%H%M%S}_{agent}" + (f"~{n:03d}" if n > 1 else "") + ".md"


def check_agent(agent):
    if not agent:
        raise BoardError("no agent id: set AGENT_ID or pass --agent ID (letters, digits, '-' and '_')")
    if not AGENT_RE.fullmatch(agent):
        raise BoardError(f"agent id {agent!r}: letters, digits, '-' and '_', starting with a letter or digit, at most "
                         "64 characters")
    return agent


# --- the message format ------------------------------------------------------------------------------------------

def _scalar(value):
    """A frontmatter value as we write it: a JSON string (a valid YAML double-quoted scalar) when it needs quoting."""
    return value if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:+-]*", value) else json.dumps(value, ensure_ascii=False)


def render(agent, type_, when, refs=(), body="", extra=None):
    """The text of a message. `extra`: more frontmatter fields ({name: str or list of str})."""
    if type_ not in TYPES:
        raise BoardError(f"type {type_!r}: one of {', '.join(TYPES)}")
    refs = list(refs)
    for ref in refs:
        if not ref.strip() or "\n" in ref:
            raise BoardError(f"ref {ref!r}: a file, a directory or a message name, on one line")
    lines = ["---", f"agent: {agent}", f"type: {type_}", f"timestamp: {when:%Y-%m-%dT%H:%M:%SZ}",
             "refs: " + json.dumps(refs, ensure_ascii=False)]
    for key, value in (extra or {}).items():
        lines.append(f"{key}: " + (json.dumps(value, ensure_ascii=False) if isinstance(value, list) else _scalar(value)))
    text = "\n".join(lines) + "\n---\n" + body.rstrip("\n") + "\n"
    if len(text.encode()) > MAX_MESSAGE:
        raise BoardError(f"the message is {len(text.encode())} bytes; a post holds at most {MAX_MESSAGE} (post a "
                         "summary and put the rest in an artifact, named with -r)")
    return text


class Message:
    def __init__(self, name, text):
        self.name, self.text = name, text
        self.meta, self.body, self.error = {}, "", None
        try:
            self.meta, self.body = parse(text)
        except ValueError as e:
            self.error = str(e)
        m = NAME_RE.fullmatch(name)
        self.agent = self.meta.get("agent") or (m[2] if m else "?")
        self.type = self.meta.get("type", "?")
        self.refs = self.meta.get("refs", [])
        self.time = None
        if not self.error:
            try:
                self.time = datetime.datetime.strptime(self.meta["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
                    tzinfo=datetime.timezone.utc)
            except ValueError:
                self.error = f"timestamp {self.meta['timestamp']!r} is not YYYY-MM-DDTHH:MM:SSZ"
        if not self.error and m and m[2] != self.agent:
            self.error = f"the file name says agent {m[2]}, the frontmatter {self.agent}"

    def summary(self, width=72):
        first = next((line.strip() for line in self.body.splitlines() if line.strip()), "")
        return first if len(first) <= width else first[:width - 3] + "..."


def parse(text):
    """(meta, body) of a message; ValueError says what is wrong. Reads what render() writes: `key: value` lines
    between two `---` lines; a value is a JSON string or list (YAML's flow forms) or a plain scalar."""
    lines = text.split("\n")
    if lines[0].rstrip("\r") != "---":
        raise ValueError("no frontmatter (the first line is not ---)")
    try:
        end = next(i for i, line in enumerate(lines[1:], 1) if line.rstrip("\r") == "---")
    except StopIteration:
        raise ValueError("the frontmatter does not end (no second --- line): a file cut while it was written?") from None
    meta = {}
    for i, line in enumerate(lines[1:end], 2):
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_-]*):(?:\s+(.*))?", line)
        if not m:
            raise ValueError(f"frontmatter line {i}: {line[:60]!r} is not `key: value`")
        key, raw = m[1], (m[2] or "").strip()
        if key in meta:
            raise ValueError(f"frontmatter line {i}: {key} given twice")
        if raw.startswith(("[", '"')):
            try:
                value = json.loads(raw)
            except ValueError:
                raise ValueError(f"frontmatter line {i}: {key}: {raw[:60]!r} is not a quoted string or a [list] of "
                                 "quoted strings") from None
        elif raw.startswith("'"):
            if not (len(raw) > 1 and raw.endswith("'")):
                raise ValueError(f"frontmatter line {i}: {key}: unterminated quote")
            value = raw[1:-1].replace("''", "'")
        else:
            value = raw
        meta[key] = value
    for key in ("agent", "type", "timestamp"):
        if key not in meta:
            raise ValueError(f"the frontmatter has no {key}")
        if not isinstance(meta[key], str):
            raise ValueError(f"{key} must be a string")
    if meta["type"] not in TYPES:
        raise ValueError(f"type {meta['type']!r} is not one of {', '.join(TYPES)}")
    refs = meta.get("refs", [])
    if refs == "":
        refs = []
    if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
        raise ValueError("refs must be a [list] of strings")
    meta["refs"] = refs
    return meta, "\n".join(lines[end + 1:])


# --- backends ----------------------------------------------------------------------------------------------------

def _create(directory, name, data):
    """Create directory/name with `data`, never overwriting: False when the name exists. The content is written to
    a hidden temporary file first and linked to its name (atomic: a reader never sees half a message); where the
    file system has no hard links, the file is created with O_CREAT | O_EXCL and written."""
    path = os.path.join(directory, name)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS):
                raise
    finally:
        os.unlink(tmp)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return True


def _put_new(directory, agent, when, text, taken=()):
    """Write `text` under the first free name of (agent, when) in `directory`; returns the name."""
    n = 1
    while True:
        name = message_name(agent, when, n)
        if name not in taken and _create(directory, name, text.encode()):
            return name
        n += 1


class LocalBoard:
    def __init__(self, directory):
        self.directory = directory
        self.where = f"directory {directory}"
        self.notes = []

    def names(self):
        try:
            return sorted(n for n in os.listdir(self.directory) if NAME_RE.fullmatch(n))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise BoardError(f"cannot read the board {self.directory}: {e.strerror or e}") from None

    def read(self, name):
        with open(os.path.join(self.directory, name), encoding="utf-8", errors="replace") as f:
            return f.read(MAX_MESSAGE + 1)

    def post(self, agent, when, text):
        try:
            os.makedirs(self.directory, exist_ok=True)
            return _put_new(self.directory, agent, when, text)
        except OSError as e:
            raise BoardError(f"cannot write to the board {self.directory}: {e.strerror or e}") from None


def _network_errors():
    from huggingface_hub.errors import HfHubHTTPError
    errors = [OSError, HfHubHTTPError, ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx", "requests"):
        try:
            errors.append(__import__(module).exceptions.RequestException if module == "requests"
                          else __import__(module).HTTPError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


class BucketBoard:
    """A board in a Hugging Face bucket, under board/. Buckets overwrite in place and a batch is not a transaction,
    so a post lists the names first, writes one message per batch call, and reads it back; listing order is never
    trusted (names are sorted here). Messages read are cached (they never change); posts that could not be sent
    wait in the spool and are pushed first by the next call that reaches the bucket."""

    def __init__(self, bucket, api, spool, cache):
        self.bucket, self.api, self.spool, self.cache = bucket, api, spool, cache
        self.where = f"bucket {bucket} ({BUCKET_PREFIX})"
        self.online = True
        self.notes = []
        self._errors = _network_errors()
        self._listing = None
        self._pushed = False

    def _offline(self, e):
        if self.online:
            what = f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}".rstrip(": ")
            print(f"board: bucket {self.bucket} unreachable ({what}); working offline: posts go to the spool "
                  f"{self.spool} and are pushed by the next command that reaches the bucket", file=sys.stderr)
        self.online = False

    def spooled(self):
        try:
            return sorted(n for n in os.listdir(self.spool) if NAME_RE.fullmatch(n))
        except OSError:
            return []

    def _remote(self):
        """The sorted message names in the bucket (raises a network error)."""
        if self._listing is None:
            items = self.api.list_bucket_tree(self.bucket, prefix=BUCKET_PREFIX, recursive=True)
            names = set()
            for item in items:
                path = getattr(item, "path", "")
                name = path[len(BUCKET_PREFIX):] if path.startswith(BUCKET_PREFIX) else path
                if getattr(item, "type", "file") == "file" and NAME_RE.fullmatch(name):
                    names.add(name)
            self._listing = sorted(names)
        return self._listing

    def _upload(self, name, text):
        """Send one message under a free name (listing first, reading back after); returns the name it got."""
        data = text.encode()
        m = NAME_RE.fullmatch(name)
        when = datetime.datetime.strptime(m[1], "%Y%m%d-%H%M%S")
        n = int(m[3] or 1)
        while True:
            taken = set(self._remote())
            name = message_name(m[2], when, n)
            while name in taken:
                n += 1
                name = message_name(m[2], when, n)
            self.api.batch_bucket_files(self.bucket, add=[(data, BUCKET_PREFIX + name)])
            self._listing = None
            if self._fetch(name, force=True) == data:
                return name
            n += 1  # another writer took the name in the same moment: send ours again under the next one

    def _push_spool(self):
        if self._pushed or not self.online:
            return
        self._pushed = True
        self._recover()
        for name in self.spooled():
            path = os.path.join(self.spool, name)
            mine = os.path.join(self.spool, f".pushing-{os.getpid()}-{name}")
            try:  # taken out of the spool first, so that two shells never push the same message
                os.rename(path, mine)
            except FileNotFoundError:
                continue  # another shell is pushing it
            with open(mine, "rb") as f:
                text = f.read().decode("utf-8", errors="replace")
            try:
                got = self._upload(name, text)
            except self._errors as e:
                os.rename(mine, path)
                self._offline(e)
                return
            os.unlink(mine)
            self.notes.append(f"pushed the spooled {name}" + (f" as {got}" if got != name else ""))

    def _recover(self):
        """Put back into the spool what a shell that died while pushing had taken out of it."""
        try:
            names = os.listdir(self.spool)
        except OSError:
            return
        for entry in names:
            m = re.fullmatch(r"\.pushing-(\d+)-(.+)", entry)
            if not m or not NAME_RE.fullmatch(m[2]):
                continue
            try:
                os.kill(int(m[1]), 0)
                continue  # still pushing
            except ProcessLookupError:
                pass
            except (PermissionError, OverflowError):
                continue
            try:
                os.rename(os.path.join(self.spool, entry), os.path.join(self.spool, m[2]))
            except OSError:
                pass

    def _fetch(self, name, force=False):
        """The bytes of a message, from the cache or the bucket (raises a network error)."""
        local = os.path.join(self.cache, name)
        if force or not os.path.exists(local):
            os.makedirs(self.cache, exist_ok=True)
            tmp = os.path.join(self.cache, f".part-{os.getpid()}-{name}")
            self.api.download_bucket_files(self.bucket, [(BUCKET_PREFIX + name, tmp)], raise_on_missing_files=True)
            os.replace(tmp, local)
        with open(local, "rb") as f:
            return f.read(MAX_MESSAGE + 1)

    def prefetch(self, names):
        """Download the messages of `names` that are not cached yet, in one call."""
        if not self.online:
            return
        listed = set(self._listing or ())
        missing = [n for n in names if n in listed and not os.path.exists(os.path.join(self.cache, n))]
        if not missing:
            return
        os.makedirs(self.cache, exist_ok=True)
        parts = [(n, os.path.join(self.cache, f".part-{os.getpid()}-{n}")) for n in missing]
        try:
            self.api.download_bucket_files(self.bucket, [(BUCKET_PREFIX + n, tmp) for n, tmp in parts])
        except self._errors as e:
            self._offline(e)
            return
        for n, tmp in parts:
            if os.path.exists(tmp):
                os.replace(tmp, os.path.join(self.cache, n))

    def names(self):
        self._push_spool()
        remote = []
        if self.online:
            try:
                remote = self._remote()
            except self._errors as e:
                self._offline(e)
        if not self.online:
            try:
                remote = sorted(n for n in os.listdir(self.cache) if NAME_RE.fullmatch(n))
            except OSError:
                remote = []
            self.notes.append(f"offline: {len(remote)} message(s) from the cache {self.cache}, and the spooled ones")
        spooled = self.spooled()
        return sorted(set(remote) | set(spooled))

    def read(self, name):
        path = os.path.join(self.spool, name)
        if name not in (self._listing or ()) and os.path.exists(path):
            with open(path, "rb") as f:
                return f.read(MAX_MESSAGE + 1).decode("utf-8", errors="replace")
        if self.online:
            try:
                return self._fetch(name).decode("utf-8", errors="replace")
            except self._errors as e:
                self._offline(e)
        local = os.path.join(self.cache, name)
        if os.path.exists(local):
            with open(local, "rb") as f:
                return f.read(MAX_MESSAGE + 1).decode("utf-8", errors="replace")
        raise OSError(f"{name}: not in the cache and the bucket is unreachable")

    def post(self, agent, when, text):
        self._push_spool()
        if self.online:
            try:
                return self._upload(message_name(agent, when), text)
            except self._errors as e:
                self._offline(e)
        try:
            os.makedirs(self.spool, exist_ok=True)
            taken = set(self._listing or ())
            name = _put_new(self.spool, agent, when, text, taken)
        except OSError as e:
            raise BoardError(f"the bucket is unreachable and the spool {self.spool} cannot be written "
                             f"({e.strerror or e}): the message was NOT posted") from None
        self.notes.append(f"spooled {name} in {self.spool}: not on the board yet")
        return name


def _cache_root():
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "nanogpt-board")


def open_board(args, api=None):
    bucket = args.bucket if args.bucket is not None else (None if args.board else os.environ.get("BOARD_BUCKET"))
    if bucket:
        if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", bucket):
            raise BoardError(f"bucket {bucket!r}: an id such as username/my-bucket")
        if api is None:
            from huggingface_hub import HfApi
            api = HfApi()
        slug = bucket.replace("/", "--")
        spool = args.spool or os.environ.get("BOARD_SPOOL") or os.path.join(_cache_root(), slug, "spool")
        return BucketBoard(bucket, api, spool, os.path.join(_cache_root(), slug, "messages")
                           if not args.spool else os.path.join(args.spool, ".cache"))
    return LocalBoard(args.board or os.environ.get("BOARD_DIR") or DEFAULT_DIR)


# --- reading the board -------------------------------------------------------------------------------------------

def load(board, names=None):
    """[Message] of `names` (default: all), in board order."""
    out = []
    names = board.names() if names is None else names
    if hasattr(board, "prefetch"):
        board.prefetch(names)
    for name in names:
        try:
            out.append(Message(name, board.read(name)))
        except OSError as e:
            m = Message(name, "")
            m.error = f"cannot read: {e.strerror or e}"
            out.append(m)
    return out


def pick(names, first=None, last=None, every=False, default_last=20):
    if every:
        return names
    if first is not None:
        return names[:first]
    return names[-(last if last is not None else default_last):] if (last or default_last) else []


def ago(delta):
    s = int(delta.total_seconds())
    sign, s = ("-" if s < 0 else ""), abs(s)
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m"
    if s < 86400:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d{s % 86400 // 3600}h"


# --- claims ------------------------------------------------------------------------------------------------------

def claims(messages, now):
    """Every claim, in board order: {name, agent, direction, time, last, expires, status, released_by}. A claim is
    open until its owner releases it, or until CLAIM_TTL after the owner's last post since the claim (any post; a
    post that comes after a gap of CLAIM_TTL or more is too late: the claim expired in the gap)."""
    out = []
    for i, m in enumerate(messages):
        if m.error or "claim" not in m.meta or m.time is None:
            continue
        later = sorted((x for x in messages[i + 1:] if not x.error and x.agent == m.agent and x.time is not None),
                       key=lambda x: x.time)
        last = m.time
        for x in later:  # a post after the claim had expired does not bring it back
            if x.time >= last + CLAIM_TTL:
                break
            last = max(last, x.time)
        later = [x for x in later if x.time <= last]
        release = next((x for x in later if m.name in _release_names(x)), None)
        expires = last + CLAIM_TTL
        status = ("released" if release is not None and release.time <= now else
                  "open" if now < expires else "expired")
        out.append({"name": m.name, "agent": m.agent, "direction": str(m.meta["claim"]), "time": m.time,
                    "last": last, "expires": expires, "status": status,
                    "released_by": release.name if release is not None else None})
    return out


def _release_names(m):
    value = m.meta.get("release")
    return value if isinstance(value, list) else [value] if value else []


# --- result markers ----------------------------------------------------------------------------------------------

def markers(messages):
    """[(message, steps, line)] of the posts with a **Leaderboard result:** line, in board order (the first marker
    of a post counts)."""
    out = []
    for m in messages:
        if m.error:
            continue
        found = MARKER_RE.search(m.body)
        if found:
            out.append((m, int(found[1]), found[0].strip()))
    return out


def named_artifacts(message, line):
    """The artifact directories a marked post names: in its refs, then in the marker line."""
    found = []
    for text in list(message.refs) + [line]:
        for m in ARTIFACT_RE.finditer(text.replace("\\", "/")):
            name = m[1].rstrip(".")  # the full stop of a sentence is not part of the name
            if name not in found:
                found.append(name)
    return found


def check_marker(root, message, steps, line):
    """(verified, why, artifact): the marker against the results.json and logs of the artifact it names."""
    from tools import results
    from tools.logs import fmt
    from tools.stats import at_step
    dirs = named_artifacts(message, line)
    if not dirs:
        return False, "names no artifact: add -r artifacts/<approach>_<agent>/ to the post", None
    if len(dirs) > 1:
        return False, f"names {len(dirs)} artifacts ({', '.join(dirs)}): which one holds the result?", None
    rel = dirs[0]
    directory = os.path.join(root, rel)
    if not os.path.isdir(directory):
        return False, f"{rel}: no such directory under {root}", rel
    if not os.path.isfile(os.path.join(directory, "results.json")):
        return False, f"{rel}: no results.json (write it from the logs with python -m tools.results)", rel
    out = results.verify(directory)
    data = out["data"]
    rec = out["recomputed"]
    if rec is not None and not rec["files"]:
        return False, f"{rel}: no training logs beside results.json (*.txt, *.log): the claim cannot be checked", rel
    if out["problems"]:
        field, msg = out["problems"][0]
        more = f" (and {len(out['problems']) - 1} more: python -m tools.results --check {rel})" \
            if len(out["problems"]) > 1 else ""
        return False, f"{rel}: {field}: {msg}{more}", rel
    claimed = data["steps_to_3_28"]
    if claimed != steps:
        return False, f"the marker says {steps} steps, {rel}/results.json {claimed}", rel
    a = out["recomputed"]["analysis"]
    at = at_step(a, steps)
    if not at.passed:
        return False, (f"not significant: at step {steps} the mean {fmt(at.mean)} over n = {at.n} has margin "
                       f"{fmt(at.margin)} < bar {a['bar']}"), rel
    return True, f"{rel}: mean {fmt(at.mean)} over n = {at.n}, margin {fmt(at.margin)} >= {a['bar']}", rel


def result_rows(messages, root):
    rows, best = [], None
    for m, steps, line in markers(messages):
        ok, why, artifact = check_marker(root, m, steps, line)
        new_best = best is None or steps < best
        rows.append({"name": m.name, "agent": m.agent, "steps": steps, "verified": ok, "why": why,
                     "artifact": artifact, "new_best": ok and new_best, "line": line,
                     "unverified_best": not ok and new_best})
        if ok and new_best:
            best = steps
    return rows


# --- commands ----------------------------------------------------------------------------------------------------

def _print_notes(board):
    for note in board.notes:
        print(f"note: {note}", file=sys.stderr)
    board.notes = []


def cmd_info(board, args, now):
    names = board.names()
    print(f"board: {board.where}")
    print(f"messages: {len(names)}" + (f", first {names[0]}, last {names[-1]}" if names else ""))
    if isinstance(board, BucketBoard):
        print(f"spool: {board.spool} ({len(board.spooled())} waiting)")
    print(f"agent: {args.agent or os.environ.get('AGENT_ID') or '(not set: AGENT_ID or --agent)'}")
    return 0


def _messages_for(board, args, default_last):
    names = board.names()
    if getattr(args, "name", None):
        name = args.name if args.name.endswith(".md") else args.name + ".md"
        if name not in names:
            close = [n for n in names if n.startswith(args.name.rsplit(".md", 1)[0])][:3]
            raise BoardError(f"no message {name} on the board" + (f" (did you mean {', '.join(close)}?)" if close else
                                                                     "; python -m tools.board list shows the names"))
        return load(board, [name])
    return load(board, pick(names, args.first, args.last, args.all, default_last))


def cmd_list(board, args, now):
    msgs = _messages_for(board, args, 20)
    if args.json:
        print(json.dumps([{"name": m.name, "agent": m.agent, "type": m.type, "timestamp": m.meta.get("timestamp"),
                           "refs": m.refs, "error": m.error, "summary": m.summary()} for m in msgs], indent=1))
        return 0
    if not msgs:
        print(f"no messages on {board.where}")
    for m in msgs:
        what = f"[broken: {m.error}]" if m.error else m.summary()
        print(f"{m.name:<42} {m.type:<6} {what}")
    return 0


def cmd_read(board, args, now):
    msgs = _messages_for(board, args, 1)
    if args.json:
        print(json.dumps([{"name": m.name, "meta": m.meta, "body": m.body, "error": m.error} for m in msgs], indent=1))
        return 0
    for i, m in enumerate(msgs):
        if i:
            print()
        print(f"=== {m.name}" + (f"  [broken: {m.error}]" if m.error else ""))
        print(m.text.rstrip("\n"))
    return 0


def _body(args):
    if args.body is not None:
        return args.body
    if sys.stdin is None or sys.stdin.isatty():
        raise BoardError("no message: give the BODY as an argument or on stdin (< file)")
    return sys.stdin.read()


def _refs(items):
    refs = []
    for item in items or []:
        refs += [r.strip() for r in item.split(",") if r.strip()]
    return refs


def _send(board, args, now, body, type_="agent", extra=None):
    agent = check_agent(args.agent or os.environ.get("AGENT_ID"))
    text = render(agent, type_, now, _refs(args.refs), body, extra)
    name = board.post(agent, now, text)
    _print_notes(board)
    print(f"posted {name} to {board.where}" if not (isinstance(board, BucketBoard) and not board.online)
          else f"spooled {name}: it goes to {board.where} with the next command that reaches it")
    return name


def cmd_post(board, args, now):
    body = _body(args)
    if not body.strip():
        raise BoardError("empty message: nothing posted")
    _send(board, args, now, body, args.type)
    return 0


def cmd_claim(board, args, now):
    direction = " ".join(args.direction.split())
    if not direction:
        raise BoardError("claim what? give the direction as one argument: claim \"Muon lr 0.03 with wd 0.1\"")
    agent = check_agent(args.agent or os.environ.get("AGENT_ID"))
    mine = [c for c in claims(load(board), now) if c["agent"] == agent and c["status"] == "open"
            and c["direction"].lower() == direction.lower()]
    if mine:
        raise BoardError(f"you have this claim open already: {mine[0]['name']} (any post of yours keeps it open)")
    body = f"Claim: {direction}" + (f"\n\n{args.body}" if args.body else "")
    _send(board, args, now, body, "agent", {"claim": direction})
    return 0


def cmd_release(board, args, now):
    agent = check_agent(args.agent or os.environ.get("AGENT_ID"))
    mine = [c for c in claims(load(board), now) if c["agent"] == agent and c["status"] == "open"]
    if args.names:
        wanted = [n if n.endswith(".md") else n + ".md" for n in args.names]
        unknown = [n for n in wanted if n not in {c["name"] for c in mine}]
        if unknown:
            raise BoardError(f"{unknown[0]} is not an open claim of {agent} (open: "
                             f"{', '.join(c['name'] for c in mine) or 'none'})")
    else:
        wanted = [c["name"] for c in mine]
        if not wanted:
            raise BoardError(f"{agent} has no open claim")
    directions = {c["name"]: c["direction"] for c in mine}
    body = "Released: " + "; ".join(directions[n] for n in wanted) + (f"\n\n{args.body}" if args.body else "")
    _send(board, args, now, body, "agent", {"release": wanted})
    return 0


def cmd_claims(board, args, now):
    rows = [c for c in claims(load(board), now) if args.all or c["status"] == "open"]
    if args.json:
        print(json.dumps([{**c, "time": f"{c['time']:%Y-%m-%dT%H:%M:%SZ}", "last": f"{c['last']:%Y-%m-%dT%H:%M:%SZ}",
                           "expires": f"{c['expires']:%Y-%m-%dT%H:%M:%SZ}"} for c in rows], indent=1))
        return 0
    if not rows:
        print("no open claims" + ("" if args.all else " (-a lists the expired and released ones)"))
        return 0
    print(f"{'owner':<16} {'age':>7} {'last post':>9} {'left':>7}  {'status':<8} {'direction':<40} claim")
    for c in rows:
        left = ago(c["expires"] - now) if c["status"] == "open" else "-"
        print(f"{c['agent']:<16} {ago(now - c['time']):>7} {ago(now - c['last']):>9} {left:>7}  {c['status']:<8} "
              f"{c['direction'][:40]:<40} {c['name']}")
    return 0


def cmd_results(board, args, now):
    rows = result_rows(load(board), args.root)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0 if all(r["verified"] for r in rows) else 1
    if not rows:
        print("no result markers on the board (a post's line **Leaderboard result:** <steps> steps · ...)")
        return 0
    print(f"{'message':<42} {'agent':<16} {'steps':>6}  {'best':<9} check")
    for r in rows:
        best = "NEW BEST" if r["new_best"] else ""
        check = "verified: " + r["why"] if r["verified"] else "unverified: " + r["why"]
        if r["unverified_best"]:
            check += " (would be a new best)"
        print(f"{r['name']:<42} {r['agent']:<16} {r['steps']:>6}  {best:<9} {check}")
    return 0 if all(r["verified"] for r in rows) else 1


def _count(text):
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a count >= 1")
    return int(text)


def build_parser():
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--board", metavar="DIR", default=argparse.SUPPRESS,
                       help="a local board directory (default: BOARD_DIR, else ./board)")
    where.add_argument("--bucket", metavar="ID", default=argparse.SUPPRESS,
                       help="a Hugging Face bucket id such as user/workspace (default: BOARD_BUCKET)")
    common.add_argument("--agent", metavar="ID", default=argparse.SUPPRESS, help="who posts (default: AGENT_ID)")
    common.add_argument("--spool", metavar="DIR", default=argparse.SUPPRESS,
                        help="with a bucket: where unsent posts wait (default: BOARD_SPOOL, else ~/.cache)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON")
    ap = argparse.ArgumentParser(prog="python -m tools.board", description=__doc__, parents=[common],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    sub.add_parser("info", parents=[common], help="where the board is and what it holds")
    for name, what in (("list", "one line per message"), ("read", "whole messages")):
        p = sub.add_parser(name, parents=[common], help=what)
        g = p.add_mutually_exclusive_group()
        g.add_argument("-n", dest="last", type=_count, metavar="N", help="the last N")
        g.add_argument("-f", dest="first", type=_count, metavar="N", help="the first N")
        g.add_argument("-a", dest="all", action="store_true", help="all")
        if name == "read":
            g.add_argument("name", nargs="?", metavar="NAME", help="one message by its file name")
    p = sub.add_parser("post", parents=[common], help="post a message (BODY or stdin)")
    p.add_argument("-t", dest="type", choices=TYPES, default="agent")
    p.add_argument("-r", dest="refs", action="append", metavar="REFS", help="files, artifacts or messages it refers "
                   "to (comma-separated, repeatable)")
    p.add_argument("body", nargs="?", metavar="BODY")
    p = sub.add_parser("claim", parents=[common], help="claim a direction")
    p.add_argument("direction")
    p.add_argument("body", nargs="?", metavar="BODY", help="more text (a plan)")
    p.add_argument("-r", dest="refs", action="append", metavar="REFS")
    p = sub.add_parser("release", parents=[common], help="close your open claims")
    p.add_argument("names", nargs="*", metavar="NAME")
    p.add_argument("-m", dest="body", metavar="TEXT", help="a note (why, what came of it)")
    p.add_argument("-r", dest="refs", action="append", metavar="REFS")
    p = sub.add_parser("claims", parents=[common], help="the open claims")
    p.add_argument("-a", dest="all", action="store_true", help="the expired and released ones too")
    p = sub.add_parser("results", parents=[common], help="the result markers, checked")
    p.add_argument("--root", default=".", help="the workspace root that holds artifacts/ and records/ (default .)")
    return ap


COMMANDS = {"info": cmd_info, "list": cmd_list, "read": cmd_read, "post": cmd_post, "claim": cmd_claim,
            "release": cmd_release, "claims": cmd_claims, "results": cmd_results}


def main(argv=None, api=None, now=None):
    args = build_parser().parse_args(argv)
    for key, default in (("board", None), ("bucket", None), ("agent", None), ("spool", None), ("json", False),
                         ("refs", None), ("name", None), ("first", None), ("last", None), ("all", False)):
        if not hasattr(args, key):
            setattr(args, key, default)
    now = now or utcnow()
    try:
        board = open_board(args, api)
        code = COMMANDS[args.command](board, args, now)
    except BoardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    _print_notes(board)
    return code


if __name__ == "__main__":
    sys.exit(main())
