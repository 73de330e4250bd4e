"""Download the benchmark's FineWeb tokens from the Hugging Face hub, or check them (RULES.md section 3).

    python data/cached_fineweb10B.py 20        # val + train chunks 1..20: 2B tokens, about 4 GB
    python data/cached_fineweb10B.py           # all 103 chunks
    python data/cached_fineweb10B.py 7         # repair: fetch only what is missing or bad in val + train 1..7
    python data/cached_fineweb10B.py --verify  # check what is on disk against the hub (header only offline)

Files come from the dataset repo kjj0/fineweb10B-gpt2 into data/fineweb10B/ next to this script.

What counts as a good file. Online, the hub's list of files (one small request, the paths-info API)
gives each file's size and, for LFS files, its sha256: a local file is good when its header is
valid, its size is the hub's size and its sha256 is the hub's. The sha256 of a file is computed once
and remembered in .sha256-checked.json (by size and modification time), so a second run reads no
file again; `--verify` always reads every byte. Offline (HF_HUB_OFFLINE=1, or the hub cannot be
reached), only the header check is possible (magic, version, size = 1024 + 2 x tokens); the script
says so, changes nothing on disk, and exits 0 only if nothing needs downloading.

No byte is deleted before a better copy is in place. A download streams into <name>.part and is
renamed to <name> only once it is whole and passes the checks above. A local file that may be the
start of the hub's file (valid header start, shorter than the hub's file) becomes the .part and is
resumed with an HTTP Range request. Anything else that is not good (a wrong header, a wrong size or
sha256, a second partial copy) is renamed to <name>.corrupt (or .corrupt.2, ...) and removed only
after <name> is whole and valid. HF_ENDPOINT (a mirror) and HF_TOKEN work as huggingface_hub
defines them.
"""
import argparse
import errno
import hashlib
import json
import os
import re
import shlex
import shutil
import struct
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


def endpoint_problem():
    """One line if HF_ENDPOINT is not an http(s) address (the HTTP library would crash on it), else None."""
    value = os.environ.get("HF_ENDPOINT")
    if not value:
        return None
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and not re.search(r"\s", value)
        parts.port  # raises ValueError for a port out of range or not a number
    except ValueError:
        ok = False
    if ok:
        return None
    return (f"HF_ENDPOINT={value!r} is not an http(s) address: set it to a mirror of the hub such as "
            f"https://hf-mirror.com, or unset it to use huggingface.co")


def _environment_problem():
    """One line about an environment value that huggingface_hub would crash on at import, or None."""
    for var in ("HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT"):
        value = os.environ.get(var)
        if value is None:
            continue
        if not re.fullmatch(r"\s*[0-9]+\s*", value):  # what int() takes, less signs, '_' and non-ASCII digits
            return (f"{var}={value!r} is not a whole number of seconds: set it to a number such as 30 "
                    f"(0 or unset means the default, 10)")
    try:
        urlsplit(os.environ.get("HF_ENDPOINT", "")).port  # huggingface_hub splits it at import
    except ValueError:
        return endpoint_problem()
    return None


if __name__ == "__main__" and _environment_problem():  # before huggingface_hub reads it and crashes
    print(f"error: {_environment_problem()}", file=sys.stderr)
    sys.exit(2)

# Make `data.shards` importable whatever the current directory is.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from huggingface_hub import constants as hf_constants, hf_hub_url  # noqa: E402
from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled  # noqa: E402
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status  # noqa: E402
from tqdm import tqdm  # noqa: E402

try:  # the HTTP library behind get_session(): httpx2 for huggingface_hub 2.x, httpx for 1.x
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

from data.shards import HEADER_BYTES, MAGIC, VERSION, ShardError, shard_tokens  # noqa: E402

REPO_ID, REPO_TYPE, REVISION = "kjj0/fineweb10B-gpt2", "dataset", "main"
MAX_CHUNKS = 103
CHUNK_TOKENS = 100_000_000
CHUNK_BYTES = HEADER_BYTES + 2 * CHUNK_TOKENS  # a full chunk on disk: the estimate when the hub's size is unknown
BATCH_TOKENS = 524_288  # tokens per step of the baseline (RULES.md section 3)
BASELINE_STEPS = 3250
DEFAULT_DIR = Path(__file__).resolve().parent / "fineweb10B"
VAL_NAME = "fineweb_val_000000.bin"
RECORD_NAME = ".sha256-checked.json"

# Failures of the transfer itself: the cure is to re-run, unlike a local fault such as a full disk.
# HfHubHTTPError is also an OSError, so these must be caught before OSError.
NETWORK_ERRORS = (httpx.HTTPError, HfHubHTTPError, OfflineModeIsEnabled)
# Failures that mean the hub could not be reached at all (as opposed to an answer we did not want).
UNREACHABLE = (httpx.TransportError, OfflineModeIsEnabled)


class TransferError(Exception):
    """The server's answer was not the file we asked for (short, wrong range, not a shard, wrong sha256)."""


def train_name(i):
    return f"fineweb_train_{i:06d}.bin"


def shard_names(chunks):
    """The files that make up `chunks` chunks: the val shard, then train shards 1..chunks."""
    return [VAL_NAME] + [train_name(i) for i in range(1, chunks + 1)]


def steps_in_shard(n_tokens, batch=BATCH_TOKENS):
    """Steps the train stream takes from one shard: every k >= 0 with k*batch + batch + 1 < n_tokens."""
    return max(0, (n_tokens - batch - 2) // batch + 1)


def human_bytes(n):
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def shard_url(name):
    # hf_hub_url applies HF_ENDPOINT, so a mirror or a test server stands in for huggingface.co.
    return hf_hub_url(REPO_ID, name, repo_type=REPO_TYPE, revision=REVISION)


def listing_url():
    return f"{hf_constants.ENDPOINT}/api/{REPO_TYPE}s/{REPO_ID}/paths-info/{REVISION}"


def script_command(argv):
    """How the user can type this command (with `argv`) from the current directory, for hints."""
    script = os.path.relpath(__file__)
    if script.startswith(".."):
        script = str(Path(__file__).resolve())
    return " ".join(["python", shlex.quote(script), *map(shlex.quote, argv)])


# -----------------------------------------------------------------------------
# What the hub says about its files, and what we checked before


@dataclass(frozen=True)
class HubFile:
    size: int
    sha256: str | None  # None when the hub lists none (a file not stored with LFS)


@dataclass
class Hub:
    """The hub's list of files, or why there is none. `reachable` False: do not touch the network again."""
    files: dict | None
    why: str = ""
    reachable: bool = True

    def expect(self, name):
        return None if self.files is None else self.files.get(name)

    def how(self):
        """How files were checked, for messages."""
        if self.files is None:
            return f"by header only ({self.why})"
        return "against the hub's list: header, size, and sha256 where the hub lists one"


def hub_offline():
    return bool(hf_constants.HF_HUB_OFFLINE)


def fetch_listing(names):
    """Ask the hub for the size and sha256 of `names` (one request); a Hub that says why on failure."""
    headers = {**build_hf_headers(), "Accept-Encoding": "identity"}
    try:
        response = get_session().post(listing_url(), data={"paths": list(names), "expand": False},
                                      headers=headers, timeout=hf_constants.HF_HUB_DOWNLOAD_TIMEOUT,
                                      follow_redirects=True)
        hf_raise_for_status(response)
        entries = response.json()
        files = {}
        for entry in entries:
            if entry.get("type", "file") != "file":
                continue
            lfs = entry.get("lfs") or {}
            sha = lfs.get("oid") or lfs.get("sha256")
            if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
                sha = None
            files[str(entry["path"])] = HubFile(int(entry["size"]), sha)
    except UNREACHABLE as e:
        hint = network_hint(e)
        return Hub(None, f"could not reach the hub at {hf_constants.ENDPOINT}: {type(e).__name__}: {e}"
                         + (f" ({hint})" if hint else ""), reachable=False)
    except NETWORK_ERRORS as e:
        return Hub(None, f"the hub's list of files is unavailable: {type(e).__name__}: {str(e).splitlines()[0]}")
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        return Hub(None, f"the hub's list of files could not be read: {type(e).__name__}: {e}")
    return Hub(files)


def get_hub(names):
    if hub_offline():
        return Hub(None, "HF_HUB_OFFLINE=1 is set", reachable=False)
    return fetch_listing(names)


class Record:
    """sha256 values already checked, by file name, size and modification time (.sha256-checked.json)."""

    def __init__(self, directory):
        self.path, self.entries = directory / RECORD_NAME, {}
        try:
            entries = json.loads(self.path.read_text())
            self.entries = entries if isinstance(entries, dict) else {}
        except (OSError, ValueError):
            pass  # no record yet, or an unreadable one: files are simply hashed again

    @staticmethod
    def _key(path):
        st = path.stat()
        return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}

    def checked(self, path, sha256):
        entry = self.entries.get(path.name)
        return isinstance(entry, dict) and entry == {**self._key(path), "sha256": sha256}

    def add(self, path, sha256):
        self.entries[path.name] = {**self._key(path), "sha256": sha256}
        self._save()

    def forget(self, name):
        if self.entries.pop(name, None) is not None:
            self._save()

    def _save(self):
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError:
            pass  # only an optimisation: the next run hashes again


def file_sha256(path, bar=None):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while data := f.read(1 << 23):
            digest.update(data)
            if bar is not None:
                bar.update(len(data))
    return digest.hexdigest()


# -----------------------------------------------------------------------------
# Judging one local file


def classify(path, expect):
    """('whole', tokens, None) or ('prefix' | 'damaged', None, fault) for the file at `path`.

    'whole': a valid shard of the hub's size (of any size when `expect` is None); its sha256 is
    checked separately. 'prefix': not whole, but it may be the start of the hub's file, so the
    download can resume from it. 'damaged': neither.
    """
    size = path.stat().st_size
    try:
        tokens, fault = shard_tokens(path), None
    except ShardError as e:
        tokens, fault = None, str(e)
    if fault is None and expect is not None and size != expect.size:
        fault = (f"{path}: {size:,} bytes with a self-consistent header, but the hub's file is "
                 f"{expect.size:,} bytes")
    if fault is None:
        return "whole", tokens, None
    return ("prefix" if could_be_prefix(path, size, expect) else "damaged"), None, fault


def could_be_prefix(path, size, expect):
    """Whether the file may be the first `size` bytes of the hub's file (judged from its first 12 bytes)."""
    if expect is not None:
        if size >= expect.size:
            return False
        start = struct.pack("<3i", MAGIC, VERSION, (expect.size - HEADER_BYTES) // 2)
    else:
        start = struct.pack("<2i", MAGIC, VERSION)
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:len(start)] != start[:len(head)]:
        return False
    if expect is None and len(head) == 12:  # the header's own promise must exceed what is there
        return size < HEADER_BYTES + 2 * struct.unpack("<i", head[8:12])[0]
    return True


def sha_fault(path, expect, record, bar=None, remember=True):
    """None when the sha256 matches the hub's (or the hub lists none); else what is wrong."""
    if expect is None or expect.sha256 is None or record.checked(path, expect.sha256):
        return None
    digest = file_sha256(path, bar)
    if digest == expect.sha256:
        if remember:
            record.add(path, digest)
        return None
    return f"{path}: sha256 {digest[:16]}... differs from the hub's {expect.sha256[:16]}..."


def set_aside(path, name):
    """Rename `path` to <name>.corrupt (or .corrupt.2, ...) in its directory; return the new path."""
    target, n = path.parent / f"{name}.corrupt", 2
    while target.exists():
        target, n = path.parent / f"{name}.corrupt.{n}", n + 1
    os.replace(path, target)
    return target


def set_aside_files(name, directory):
    return sorted(p for p in directory.glob(f"{name}.corrupt*")
                  if re.fullmatch(re.escape(name) + r"\.corrupt(\.\d+)?", p.name))


def say(text):
    tqdm.write(text, file=sys.stdout)


# -----------------------------------------------------------------------------
# Fetching one file


def _adjust_total(bar, remaining, estimate):
    """Replace one file's estimate in the bytes bar by what is really left to transfer."""
    bar.total = max(bar.n, bar.total + remaining - estimate)
    bar.refresh()


def _response_span(response, offset):
    """(offset, total size) the response delivers; offset drops to 0 when the server ignored the Range."""
    encoded = response.headers.get("Content-Encoding", "identity") != "identity"
    length = response.headers.get("Content-Length")
    if response.status_code != 206:
        return 0, (int(length) if length and not encoded else None)
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", "").strip())
    if not match or int(match.group(1)) != offset:
        raise TransferError(f"asked to resume at byte {offset:,} but the server answered "
                            f"Content-Range {response.headers.get('Content-Range')!r}")
    return offset, (None if match.group(3) == "*" else int(match.group(3)))


def fetch(url, part, bar, name, expect=None, estimate=CHUNK_BYTES, open_file=open):
    """Stream `url` into `part`, resuming from what `part` already holds; return the file's size or None.

    Leaves `part` in place on any failure so the next call can resume it. A .part the server cannot
    resume (a 416 answer) or will not resume (a 200 answer to a Range request) is set aside first.
    """
    offset = part.stat().st_size if part.exists() else 0
    # identity: the bytes on disk must be the resource's bytes, so that Range offsets and Content-Length agree
    headers = {**build_hf_headers(), "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    timeout = hf_constants.HF_HUB_DOWNLOAD_TIMEOUT  # seconds without progress before giving up
    with get_session().stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True) as response:
        junk = offset and response.status_code == 416
        if not junk:
            hf_raise_for_status(response)
            start, total = _response_span(response, offset)
            if expect is not None and total is not None and total != expect.size:
                raise TransferError(f"the server sends a file of {total:,} bytes, but the hub lists "
                                    f"{expect.size:,} bytes for it")
            if offset and start == 0:
                aside = set_aside(part, name)
                say(f"the server does not resume downloads: set the partial {part.name} aside as {aside.name} "
                    f"(removed once {name} is whole) and downloading it from the start")
            if total is not None:
                _adjust_total(bar, total - start, estimate)
                estimate = total - start
            # The file is opened only now, so an HTTP error leaves no empty .part behind.
            with open_file(part, "ab" if start else "wb") as f:
                # Without a chunk size each network read is written at once: a cut loses nothing received.
                for data in response.iter_bytes():
                    f.write(data)
                    bar.update(len(data))
                f.flush()
                os.fsync(f.fileno())
    if junk:
        # The .part is at least as long as the remote file yet not a valid shard: start over.
        aside = set_aside(part, name)
        say(f"{part.name} is at least as long as the server's file but not a valid shard: set it aside as "
            f"{aside.name} (removed once {name} is whole) and downloading it from the start")
        return fetch(url, part, bar, name, expect, estimate, open_file)
    return total


def prepare(name, directory, expect):
    """Make <name>.part the best start for the download and move every other copy of `name` aside."""
    final, part = directory / name, directory / f"{name}.part"
    if part.exists() and classify(part, expect)[0] == "damaged":
        aside = set_aside(part, name)
        say(f"{part.name} cannot be the start of {name}: set it aside as {aside.name} "
            f"(removed once {name} is whole)")
    if not final.exists():
        return
    kind = classify(final, expect)[0]
    if kind == "prefix" and not (part.exists() and part.stat().st_size >= final.stat().st_size):
        if part.exists():
            aside = set_aside(part, name)
            say(f"{part.name} is shorter than {name}: set it aside as {aside.name} (removed once {name} is whole)")
        os.replace(final, part)
        say(f"resuming {name} from its first {part.stat().st_size:,} bytes")
    else:
        aside = set_aside(final, name)
        say(f"set {name} aside as {aside.name} (removed once a good copy is in place)")


def fetch_shard(name, directory, bar, expect, record, estimate=CHUNK_BYTES):
    """Put a good `name` into `directory`, by way of `name.part`; raise on any failure."""
    final, part = directory / name, directory / f"{name}.part"
    prepare(name, directory, expect)
    for last_try in (False, True):
        resumed = part.exists() and part.stat().st_size > 0
        if part.exists() and classify(part, expect)[0] == "whole":
            # whole already: an earlier run stopped between the last byte and the rename
            _adjust_total(bar, 0, estimate)
            total = part.stat().st_size
        else:
            total = fetch(shard_url(name), part, bar, name, expect, estimate)
        estimate = 0  # the bar now counts this file's real size
        size = part.stat().st_size
        target = expect.size if expect is not None else total
        if target is not None and size < target:
            raise TransferError(f"the transfer ended after {size:,} of {target:,} bytes")
        try:
            shard_tokens(part)
            fault = None if target is None or size == target else f"{size:,} bytes, but the file has {target:,}"
        except ShardError as e:
            if target is None:  # we cannot tell a cut transfer from a bad file: keep it for resuming
                raise TransferError(f"the transfer ended with an incomplete shard: {e}") from None
            fault = f"not a valid shard: {e}"
        if fault:
            aside = set_aside(part, name)
            raise TransferError(f"the server's file is {fault}; set it aside as {aside.name}")
        fault = sha_fault(part, expect, record, remember=False)
        if fault:
            aside = set_aside(part, name)
            if resumed and not last_try:
                say(f"{fault}: the partial copy it resumed was not the start of the hub's file; set it aside "
                    f"as {aside.name} and downloading {name} from the start")
                continue
            raise TransferError(f"the downloaded file does not match the hub's: {fault}; set it aside as "
                                f"{aside.name}")
        break
    os.replace(part, final)
    if expect is not None and expect.sha256 is not None:
        record.add(final, expect.sha256)
    for old in set_aside_files(name, directory):
        old.unlink()
        say(f"removed {old.name} (set aside earlier) now that {name} is whole and valid")


# -----------------------------------------------------------------------------
# Downloading a set of files


def check_existing(names, directory, hub, record):
    """Names still to fetch, after reporting what is wrong with each local copy (changes nothing on disk)."""
    todo, hashing = [], []
    for name in names:
        path = directory / name
        if not path.exists():
            todo.append(name)
            continue
        expect = hub.expect(name)
        kind, _, fault = classify(path, expect)
        if kind == "whole" and expect is not None and expect.sha256 and not record.checked(path, expect.sha256):
            hashing.append(name)
        elif kind != "whole":
            todo.append(name)
            if not hub.reachable:
                print(f"{fault}")
            elif kind == "prefix":
                print(f"{fault}; it may be the start of the hub's file: resuming it")
            else:
                print(f"{fault}; downloading it again (this copy is set aside until then)")
    if hashing:
        total = sum((directory / name).stat().st_size for name in hashing)
        with tqdm(total=total, unit="B", unit_scale=True, desc="sha256") as bar:
            for name in hashing:
                fault = sha_fault(directory / name, hub.expect(name), record, bar)
                if fault:
                    todo.append(name)
                    say(f"{fault}; downloading it again (this copy is set aside until then)")
    return [name for name in names if name in todo]


def space_needed(names, directory, hub=None):
    """Bytes still to write for `names`: the hub's size (or a full chunk) less what their .part files hold."""
    need = 0
    for name in names:
        part = directory / f"{name}.part"
        expect = hub.expect(name) if hub else None
        full = expect.size if expect is not None else CHUNK_BYTES
        need += max(0, full - (part.stat().st_size if part.exists() else 0))
    return need


def set_aside_note(directory):
    corrupt = [p for p in directory.glob("fineweb_*.corrupt*") if p.is_file()]
    if not corrupt:
        return ""
    size = sum(p.stat().st_size for p in corrupt)
    return (f" The {len(corrupt)} set-aside copies ({directory}/*.corrupt*, {human_bytes(size)}) can be deleted "
            f"to make room if you do not need them.")


def warn_if_low_space(todo, directory, hub):
    need, free = space_needed(todo, directory, hub), shutil.disk_usage(directory).free
    if need > free:
        print(f"warning: {len(todo)} files need about {human_bytes(need)} (about 200 MB per chunk), but only "
              f"{human_bytes(free)} is free on {directory}; the download will stop when the disk is full."
              + set_aside_note(directory), file=sys.stderr)


def network_hint(error):
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403):
        return "the hub refused access: if you need a token, set HF_TOKEN to a valid Hugging Face token"
    if status == 404:
        return "the file was not found at that address: check HF_ENDPOINT if you use a mirror"
    if isinstance(error, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set: unset it to download"
    if isinstance(error, httpx.UnsupportedProtocol):
        return "HF_ENDPOINT must start with http:// or https://"
    if isinstance(error, httpx.ConnectError):
        return "could not reach the server: check the network connection (and HF_ENDPOINT)"
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {hf_constants.HF_HUB_DOWNLOAD_TIMEOUT} s (HF_HUB_DOWNLOAD_TIMEOUT)"
    return None


def download(names, directory, command):
    """Fetch the missing or bad `names` into `directory`; return an exit code."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: cannot create {directory}: {e.strerror or e}; pass --dir with a writable place",
              file=sys.stderr)
        return 1
    hub, record = get_hub(names), Record(directory)
    if hub.files is None and hub.reachable:
        print(f"note: {hub.why}; checking local files by their header only, and downloads by their header "
              f"and the server's size", file=sys.stderr)
    todo = check_existing(names, directory, hub, record)
    if not todo:
        print(f"all {len(names)} files already present and valid in {directory} (checked {hub.how()}); "
              f"nothing to download")
        return 0
    if not hub.reachable:
        print(f"error: {len(todo)} of {len(names)} files need downloading, but {hub.why}.\n"
              f"Nothing in {directory} was changed; run the same command again once the hub can be reached:\n"
              f"  {command}", file=sys.stderr)
        return 1
    print(f"{len(names) - len(todo)} of {len(names)} files already present; "
          f"downloading {len(todo)} into {directory}")
    warn_if_low_space(todo, directory, hub)
    estimates = {name: (hub.expect(name).size if hub.expect(name) else CHUNK_BYTES) for name in todo}
    done, current = 0, None
    try:
        with tqdm(total=len(names), initial=len(names) - len(todo), unit="file", desc="files", position=0) as files, \
             tqdm(total=sum(estimates.values()), unit="B", unit_scale=True, desc="bytes", position=1) as bar:
            for current in todo:
                files.set_postfix_str(current)
                fetch_shard(current, directory, bar, hub.expect(current), record, estimates[current])
                files.update(1)
                done += 1
    except NETWORK_ERRORS + (TransferError,) as e:
        report_failure(current, e, network_hint(e), directory, len(names) - len(todo) + done, command)
        return 1
    except OSError as e:
        if e.errno == errno.ENOSPC:
            report_disk_full(current, e, todo[done:], directory, command, hub)
        else:
            report_failure(current, e, "a local file could not be written", directory,
                           len(names) - len(todo) + done, command)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted while downloading {current}; run the same command again to resume:\n  {command}",
              file=sys.stderr)
        return 130
    return 0


def report_disk_full(name, error, left, directory, command, hub=None):
    print(f"error: the disk is full ({error.strerror}) while writing {name} in {directory}.\n"
          f"The {len(left)} files still to download need about {human_bytes(space_needed(left, directory, hub))} "
          f"more (about 200 MB per chunk); {human_bytes(shutil.disk_usage(directory).free)} is free."
          f"{set_aside_note(directory)}\n"
          f"Free some space, or pass --dir with a larger disk, then run the same command again "
          f"(it resumes):\n  {command}", file=sys.stderr)


def report_failure(name, error, hint, directory, kept, command):
    url = shard_url(name) if name else "?"
    lines = [f"error: downloading {name} failed: {type(error).__name__}: {error}".rstrip(),
             f"  from {url}"]
    if hint:
        lines.append(f"  ({hint})")
    lines.append(f"kept the {kept} finished files in {directory}.")
    lines.append(f"To retry, run the same command again; finished files are skipped and a partial file resumes "
                 f"where it stopped:\n  {command}")
    print("\n".join(lines), file=sys.stderr)


# -----------------------------------------------------------------------------
# What is on disk


def survey(directory):
    """[(name, tokens or None, problem or None)] for every shard file in `directory`, in name order."""
    rows = []
    for path in sorted(directory.glob("fineweb_*.bin"), key=lambda p: (p.name != VAL_NAME, p.name)):
        try:
            rows.append((path.name, shard_tokens(path), None))
        except ShardError as e:
            rows.append((path.name, None, str(e)))
    return rows


def download_command(chunks, directory):
    return script_command([str(chunks)] + ([] if directory == DEFAULT_DIR else ["--dir", str(directory)]))


def summary(rows, directory):
    """Lines describing the valid shards in `rows`: tokens, disk use and the steps their train tokens cover."""
    valid = [(name, n) for name, n, problem in rows if problem is None]
    train = [n for name, n in valid if name.startswith("fineweb_train_")]
    val = sum(n for name, n in valid if name.startswith("fineweb_val_"))
    disk = sum((directory / name).stat().st_size for name, _ in valid)
    steps = sum(steps_in_shard(n) for n in train)
    lines = [f"{len(valid)} valid shards in {directory}: {val + sum(train):,} tokens "
             f"(val {val:,}; train {sum(train):,} in {len(train)} shards), {human_bytes(disk)} on disk",
             f"train tokens cover {steps:,} steps of {BATCH_TOKENS:,} tokens"]
    if steps >= BASELINE_STEPS:
        lines[-1] += f": enough for the baseline's {BASELINE_STEPS:,} steps"
    else:
        chunks = -(-BASELINE_STEPS // steps_in_shard(CHUNK_TOKENS))
        lines[-1] += (f": NOT enough for the baseline's {BASELINE_STEPS:,} steps "
                      f"(it needs at least {chunks} chunks: {download_command(chunks, directory)})")
    return lines


def hub_checks(rows, directory, hub, record):
    """Compare the header-valid files in `rows` with the hub; return (rows, {name: check done})."""
    checks, out, hashing = {}, [], []
    for name, tokens, problem in rows:
        expect = hub.expect(name)
        if problem is None and hub.files is not None:
            if expect is None:
                problem = (f"{directory / name}: not a file of the hub's dataset {REPO_ID}, yet the training "
                           f"script would read it: move it out of {directory}")
            elif (directory / name).stat().st_size != expect.size:
                problem = classify(directory / name, expect)[2]
            elif expect.sha256 is None:
                checks[name] = "size matches the hub (it lists no sha256)"
            else:
                hashing.append(name)
        if problem is None and name not in checks and name not in hashing:
            checks[name] = f"header only ({'offline' if not hub.reachable else 'no hub list'})"
        out.append([name, tokens if problem is None else None, problem])
    if hashing:
        total = sum((directory / name).stat().st_size for name in hashing)
        with tqdm(total=total, unit="B", unit_scale=True, desc="sha256") as bar:
            for row in out:
                if row[0] in hashing:
                    path = directory / row[0]
                    record.forget(row[0])  # --verify always reads every byte
                    fault = sha_fault(path, hub.expect(row[0]), record, bar)
                    if fault:
                        row[1], row[2] = None, fault
                    else:
                        checks[row[0]] = "size and sha256 match the hub"
    return [tuple(row) for row in out], checks


def verify(directory, chunks):
    """Check the shards in `directory` (and that val + train 1..chunks exist, if given); return an exit code."""
    rows = survey(directory) if directory.is_dir() else []
    if not rows:
        print(f"error: no shards in {directory}; download them with: {download_command(20, directory)}",
              file=sys.stderr)
        return 1
    present = {name for name, _, _ in rows}
    expected = shard_names(chunks) if chunks else [VAL_NAME]
    hub = get_hub(sorted(present | set(expected)))
    try:
        rows, checks = hub_checks(rows, directory, hub, Record(directory))
    except KeyboardInterrupt:
        print("\ninterrupted while checking sha256 values; nothing was changed", file=sys.stderr)
        return 130
    problems = [f"{directory / name}: missing" for name in expected if name not in present]
    for name, tokens, problem in rows:
        print(f"  {name:<28} {tokens:>14,} tokens  {checks[name]}" if problem is None
              else f"  {name:<28} PROBLEM: {problem}")
        if problem:
            problems.append(problem)
    for part in sorted(directory.glob("fineweb_*.bin.part")):
        print(f"  {part.name:<28} (an unfinished download; the download command resumes it)")
    for aside in sorted(directory.glob("fineweb_*.bin.corrupt*")):
        print(f"  {aside.name:<28} (a damaged copy set aside; removed once "
              f"{aside.name.split('.corrupt')[0]} is downloaded whole)")
    if hub.files is None:
        print(f"checked each file by its header only (magic, version, size = 1024 + 2 x tokens): {hub.why}; "
              f"not compared with the hub's sizes and sha256"
              + ("" if hub.reachable else " (run --verify online to compare them)"))
    else:
        print(f"checked against the hub's list ({hf_constants.ENDPOINT}): header, size, and sha256 where listed")
    print("\n".join(summary(rows, directory)))
    if problems:
        # Suggest the chunk count the user evidently wants, so the hint does not shrink their set.
        highest = max((int(n[len("fineweb_train_"):-4]) for n in present
                       if re.fullmatch(r"fineweb_train_\d{6}\.bin", n)), default=0)
        chunks = chunks or min(max(highest, 1), MAX_CHUNKS)
        print(f"{len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems) +
              f"\nto fetch missing and invalid files again: {download_command(chunks, directory)}",
              file=sys.stderr)
        return 1
    return 0


# -----------------------------------------------------------------------------
# Command line


def chunk_count(text):
    # int() would also take '٣', ' 3 ' or '1_0'; a count is plain ASCII digits
    if not re.fullmatch(r"[0-9]+", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of chunks (digits 0-9 only)")
    n = int(text)
    if not 1 <= n <= MAX_CHUNKS:
        raise argparse.ArgumentTypeError(f"{n} is out of range: the dataset has chunks 1..{MAX_CHUNKS}")
    return n


def directory_arg(text):
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: give the directory of the shards")
    return Path(text)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="cached_fineweb10B.py",
        description=f"Download the benchmark's FineWeb GPT-2 tokens from the Hugging Face dataset {REPO_ID}: "
                    "the val shard plus train chunks 1..N, each 100M tokens (about 200 MB). 20 chunks "
                    f"(2B tokens, about 4 GB) cover the baseline's {BASELINE_STEPS} steps. Files already present "
                    "and matching the hub's size and sha256 are skipped; an interrupted download resumes when "
                    "the same command is run again; a damaged file is set aside (<name>.corrupt) and replaced. "
                    "To repair one bad shard, run with N = its train index (1 for the val shard).",
        epilog="Environment: HF_ENDPOINT (a mirror of the hub), HF_TOKEN (a Hugging Face token), "
               "HF_HUB_DOWNLOAD_TIMEOUT (seconds, default 10), HF_HUB_OFFLINE=1 (no network: local header "
               "checks only, nothing changed), as huggingface_hub defines them.")
    parser.add_argument("chunks", nargs="?", type=chunk_count, metavar="N",
                        help=f"number of train chunks, 1..{MAX_CHUNKS} (default: all {MAX_CHUNKS}); "
                             "with --verify: also check that val and train 1..N are present")
    parser.add_argument("--verify", action="store_true",
                        help="check the shards on disk and change none of them: header and size, and online also "
                             "the hub's size and sha256 (reads every byte); print per file which check was "
                             "done, token counts and totals; exit non-zero on any problem")
    parser.add_argument("--dir", type=directory_arg, default=DEFAULT_DIR,
                        help=f"directory of the shards (default: {DEFAULT_DIR})")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    problem = _environment_problem() or (None if hub_offline() else endpoint_problem())
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        directory = args.dir.resolve()
        if directory.exists() and not directory.is_dir():
            print(f"error: --dir {directory} is a file, not a directory: pass --dir with the directory of the "
                  f"shards", file=sys.stderr)
            return 2
        if args.verify:
            return verify(directory, args.chunks)
        names = shard_names(args.chunks or MAX_CHUNKS)
        code = download(names, directory, script_command(argv))
        if code == 0:
            print("\n".join(summary(survey(directory), directory)))
        return code
    except KeyboardInterrupt:
        print("\ninterrupted; run the same command again to continue", file=sys.stderr)
        return 130
    except OSError as e:  # a local file or directory we cannot read or change
        where = f"{e.filename}: " if e.filename else ""
        print(f"error: {where}{e.strerror or e}; check the permissions and the disk of {args.dir}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
