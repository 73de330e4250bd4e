"""Download the benchmark's FineWeb tokens from the Hugging Face hub, or check them (SPEC section 3).

    python data/cached_fineweb10B.py 20        # val + train chunks 1..20: 2B tokens, about 4 GB
    python data/cached_fineweb10B.py           # all 103 chunks
    python data/cached_fineweb10B.py --verify  # check what is on disk, without the network

Files come from the dataset repo kjj0/fineweb10B-gpt2 into data/fineweb10B/ next to this script.
Each file streams into <name>.part and is renamed only once it is whole and valid, so an
interrupted run never leaves a partial file under a shard's name; running the same command again
skips finished files without touching the network and resumes the .part with an HTTP Range request.
HF_ENDPOINT (a mirror) and HF_TOKEN work as huggingface_hub defines them.
"""
import argparse
import errno
import os
import re
import shlex
import shutil
import struct
import sys
from pathlib import Path

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
CHUNK_BYTES = HEADER_BYTES + 2 * CHUNK_TOKENS  # what a full chunk takes on disk: the basis of space estimates
BATCH_TOKENS = 524_288  # tokens per step of the baseline (SPEC section 3)
BASELINE_STEPS = 3250
DEFAULT_DIR = Path(__file__).resolve().parent / "fineweb10B"
VAL_NAME = "fineweb_val_000000.bin"

# Failures of the transfer itself: the cure is to re-run, unlike a local fault such as a full disk.
# HfHubHTTPError is also an OSError, so these must be caught before OSError.
NETWORK_ERRORS = (httpx.HTTPError, HfHubHTTPError, OfflineModeIsEnabled)


class TransferError(Exception):
    """The server's answer was not the file we asked for (short, wrong range, not a shard)."""


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


def script_command(argv):
    """How the user can type this command (with `argv`) from the current directory, for hints."""
    script = os.path.relpath(__file__)
    if script.startswith(".."):
        script = str(Path(__file__).resolve())
    return " ".join(["python", shlex.quote(script), *map(shlex.quote, argv)])


# -----------------------------------------------------------------------------
# Fetching one file


def _adjust_total(bar, remaining):
    """Replace one file's 200 MB estimate in the bytes bar by what is really left to transfer."""
    bar.total = max(bar.n, bar.total + remaining - CHUNK_BYTES)
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


def fetch(url, part, bar, open_file=open):
    """Stream `url` into `part`, resuming from what `part` already holds; return the file's size or None.

    Leaves `part` in place on any failure so the next call can resume it.
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
            offset, total = _response_span(response, offset)
            if total is not None:
                _adjust_total(bar, total - offset)
            # The file is opened only now, so an HTTP error leaves no empty .part behind.
            with open_file(part, "ab" if offset else "wb") as f:
                # Without a chunk size each network read is written at once: a cut loses nothing received.
                for data in response.iter_bytes():
                    f.write(data)
                    bar.update(len(data))
                f.flush()
                os.fsync(f.fileno())
    if junk:
        # The .part is at least as long as the remote file yet not a valid shard: start over.
        part.unlink()
        return fetch(url, part, bar, open_file)
    return total


def _could_be_shard_start(path):
    with open(path, "rb") as f:
        head = f.read(8)
    return len(head) < 8 or head == struct.pack("<2i", MAGIC, VERSION)


def fetch_shard(name, directory, bar):
    """Put a valid `name` into `directory`, by way of `name.part`; raise on any failure."""
    final, part = directory / name, directory / f"{name}.part"
    if part.exists():
        try:
            shard_tokens(part)  # whole already: an earlier run stopped between the last byte and the rename
            _adjust_total(bar, 0)
            os.replace(part, final)
            return
        except ShardError:
            if not _could_be_shard_start(part):
                part.unlink()  # resuming would only append the real file's tail to junk
    total = fetch(shard_url(name), part, bar)
    size = part.stat().st_size
    if total is not None and size != total:
        raise TransferError(f"the transfer ended after {size:,} of {total:,} bytes")
    try:
        shard_tokens(part)
    except ShardError as e:
        if total is not None:
            part.unlink()  # the server sent all it has and it is not a shard: resuming cannot help
        raise TransferError(f"the server's file is not a valid shard: {e}") from None
    os.replace(part, final)


# -----------------------------------------------------------------------------
# Downloading a set of files


def check_existing(names, directory):
    """Names still to fetch; reports and removes invalid files so they are fetched again."""
    todo = []
    for name in names:
        path = directory / name
        if path.exists():
            try:
                shard_tokens(path)
                continue
            except ShardError as e:
                print(f"{e}; downloading it again")
                path.unlink()
        todo.append(name)
    return todo


def space_needed(names, directory):
    """Bytes still to write for `names`, counting full-size chunks less what their .part files hold."""
    need = 0
    for name in names:
        part = directory / f"{name}.part"
        need += max(0, CHUNK_BYTES - (part.stat().st_size if part.exists() else 0))
    return need


def warn_if_low_space(todo, directory):
    need, free = space_needed(todo, directory), shutil.disk_usage(directory).free
    if need > free:
        print(f"warning: {len(todo)} files need about {human_bytes(need)} (about 200 MB per chunk), but only "
              f"{human_bytes(free)} is free on {directory}; the download will stop when the disk is full",
              file=sys.stderr)


def network_hint(error):
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403):
        return "the hub refused access: if you need a token, set HF_TOKEN to a valid Hugging Face token"
    if status == 404:
        return "the file was not found at that address: check HF_ENDPOINT if you use a mirror"
    if isinstance(error, (httpx.ConnectError, OfflineModeIsEnabled)):
        return "could not reach the server: check the network connection (and HF_ENDPOINT / HF_HUB_OFFLINE)"
    if isinstance(error, httpx.TimeoutException):
        return f"no answer within {hf_constants.HF_HUB_DOWNLOAD_TIMEOUT} s (HF_HUB_DOWNLOAD_TIMEOUT)"
    return None


def download(names, directory, command):
    """Fetch the missing or invalid `names` into `directory`; return an exit code."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"error: cannot create {directory}: {e.strerror or e}; pass --dir with a writable place",
              file=sys.stderr)
        return 1
    todo = check_existing(names, directory)
    if not todo:
        print(f"all {len(names)} files already present and valid in {directory}; nothing to download")
        return 0
    print(f"{len(names) - len(todo)} of {len(names)} files already present; "
          f"downloading {len(todo)} into {directory}")
    warn_if_low_space(todo, directory)
    done, current = 0, None
    try:
        with tqdm(total=len(names), initial=len(names) - len(todo), unit="file", desc="files", position=0) as files, \
             tqdm(total=len(todo) * CHUNK_BYTES, unit="B", unit_scale=True, desc="bytes", position=1) as bar:
            for current in todo:
                files.set_postfix_str(current)
                fetch_shard(current, directory, bar)
                files.update(1)
                done += 1
    except NETWORK_ERRORS + (TransferError,) as e:
        report_failure(current, e, network_hint(e), directory, len(names) - len(todo) + done, command)
        return 1
    except OSError as e:
        if e.errno == errno.ENOSPC:
            report_disk_full(current, e, todo[done:], directory, command)
        else:
            report_failure(current, e, "a local file could not be written", directory,
                           len(names) - len(todo) + done, command)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted while downloading {current}; run the same command again to resume:\n  {command}",
              file=sys.stderr)
        return 130
    return 0


def report_disk_full(name, error, left, directory, command):
    print(f"error: the disk is full ({error.strerror}) while writing {name} in {directory}.\n"
          f"The {len(left)} files still to download need about {human_bytes(space_needed(left, directory))} "
          f"more (about 200 MB per chunk); {human_bytes(shutil.disk_usage(directory).free)} is free.\n"
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


def verify(directory, chunks):
    """Check the shards in `directory` (and that val + train 1..chunks exist, if given); return an exit code."""
    rows = survey(directory) if directory.is_dir() else []
    if not rows:
        print(f"error: no shards in {directory}; download them with: {download_command(20, directory)}",
              file=sys.stderr)
        return 1
    present = {name for name, _, _ in rows}
    expected = shard_names(chunks) if chunks else [VAL_NAME]
    problems = [f"{directory / name}: missing" for name in expected if name not in present]
    for name, tokens, problem in rows:
        print(f"  {name:<28} {tokens:>14,} tokens" if problem is None else f"  {name:<28} PROBLEM: {problem}")
        if problem:
            problems.append(problem)
    for part in sorted(directory.glob("fineweb_*.bin.part")):
        print(f"  {part.name:<28} (an unfinished download; the download command resumes it)")
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
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of chunks") from None
    if not 1 <= n <= MAX_CHUNKS:
        raise argparse.ArgumentTypeError(f"{n} is out of range: the dataset has chunks 1..{MAX_CHUNKS}")
    return n


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="cached_fineweb10B.py",
        description=f"Download the benchmark's FineWeb GPT-2 tokens from the Hugging Face dataset {REPO_ID}: "
                    "the val shard plus train chunks 1..N, each 100M tokens (about 200 MB). 20 chunks "
                    f"(2B tokens, about 4 GB) cover the baseline's {BASELINE_STEPS} steps. Finished files are "
                    "skipped without network access; an interrupted download resumes when the same command is "
                    "run again.",
        epilog="Environment: HF_ENDPOINT (a mirror of the hub), HF_TOKEN (a Hugging Face token), "
               "HF_HUB_DOWNLOAD_TIMEOUT (seconds, default 10), as huggingface_hub defines them.")
    parser.add_argument("chunks", nargs="?", type=chunk_count, metavar="N",
                        help=f"number of train chunks, 1..{MAX_CHUNKS} (default: all {MAX_CHUNKS}); "
                             "with --verify: also check that val and train 1..N are present")
    parser.add_argument("--verify", action="store_true",
                        help="check the shards on disk (header and size) without the network, "
                             "print token counts and totals, exit non-zero on any problem")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"directory of the shards (default: {DEFAULT_DIR})")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    directory = args.dir.resolve()
    if args.verify:
        return verify(directory, args.chunks)
    names = shard_names(args.chunks or MAX_CHUNKS)
    code = download(names, directory, script_command(argv))
    if code == 0:
        print("\n".join(summary(survey(directory), directory)))
    return code


if __name__ == "__main__":
    sys.exit(main())
