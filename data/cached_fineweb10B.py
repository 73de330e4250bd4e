"""Download the benchmark's FineWeb GPT-2 tokens from the Hugging Face hub, or check them (docs/data.md).

hf_hub_download moves the bytes (retries, resuming a cut connection, xet, HF_ENDPOINT, HF_TOKEN, progress). This
script adds the benchmark's part: which files, the checks (shard header; the hub's size and sha256), setting a bad
copy aside as <name>.corrupt until a good one is in place, --verify, and one line per failure.
"""
import argparse
import errno
import os
import re
import shlex
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

def environment_problem(offline=False):
    """One line about an HF_* value that huggingface_hub would crash on, else None."""
    for var in ("HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT"):
        if not re.fullmatch(r"\s*[0-9]+\s*", os.environ.get(var, "0")):  # what int() takes, less signs, '_', '²'
            return f"{var}={os.environ[var]!r} is not a whole number of seconds: set it to a number such as 30"
    value = os.environ.get("HF_ENDPOINT", "")
    try:
        urlsplit(value).port  # huggingface_hub splits HF_ENDPOINT at import: a bad port crashes it even offline
        ok = offline or not value or re.fullmatch(r"https?://[^\s/?#]+\S*", value)
    except ValueError:
        ok = False
    return None if ok else (f"HF_ENDPOINT={value!r} is not an http(s) address: set it to a mirror of the hub such as "
                            f"https://hf-mirror.com, or unset it to use huggingface.co")

def fail(message, code=1):
    """Print one error line (what is wrong, with the file and the fix) and return the exit code."""
    print(f"error: {message}", file=sys.stderr)
    return code

if __name__ == "__main__" and environment_problem(offline=True):  # before huggingface_hub reads it and crashes
    sys.exit(fail(environment_problem(offline=True), 2))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `data.shards` from any current directory

import httpx2  # noqa: E402  (huggingface_hub's HTTP library)
from huggingface_hub import HfApi, constants as hf_constants, hf_hub_download  # noqa: E402
from huggingface_hub._local_folder import read_download_metadata, write_download_metadata  # noqa: E402
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled  # noqa: E402
from huggingface_hub.utils import tqdm  # noqa: E402
from huggingface_hub.utils.sha import sha_fileobj  # noqa: E402
from data.shards import HEADER_BYTES, ShardError, shard_tokens  # noqa: E402

REPO_ID, REPO_TYPE, REVISION, MAX_CHUNKS = "kjj0/fineweb10B-gpt2", "dataset", "main", 103
CHUNK_BYTES = HEADER_BYTES + 2 * 100_000_000  # one 100M-token chunk on disk: the estimate where the hub lists no size
BATCH_TOKENS, BASELINE_STEPS = 524_288, 3250  # tokens per step and steps of the baseline (RULES.md section 3)
DEFAULT_DIR, VAL_NAME = Path(__file__).resolve().parent / "fineweb10B", "fineweb_val_000000.bin"
RECORD_DIR = Path(".cache") / "huggingface" / "download"  # huggingface_hub's record: <name>.metadata holds the sha256
SPARE = re.compile(r"(fineweb_.*\.bin)\.(corrupt(\.\d+)?|part)")  # set aside (.part: left by the old downloader)

def shard_names(chunks):
    """The files of `chunks` chunks: the val shard, then train shards 1..chunks."""
    return [VAL_NAME] + [f"fineweb_train_{i:06d}.bin" for i in range(1, chunks + 1)]

def human_bytes(n):
    return next((f"{n / s:.1f} {u}" for u, s in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)) if n >= s), f"{n} bytes")

def download_command(chunks, directory):
    """The command, as typed from the current directory, that fetches val + train 1..chunks (kept in 1..103)."""
    script = min(os.path.relpath(__file__), str(Path(__file__).resolve()), key=lambda p: p.startswith(".."))
    extra = [] if directory == DEFAULT_DIR else ["--dir", str(directory)]
    return shlex.join(["python", script, str(min(max(chunks, 1), MAX_CHUNKS)), *extra])

def first_line(error):
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"

class Hub:
    """The hub's list {name: (size, sha256 or None)} (`listed`), or why not (`reachable` False: stay off the network)."""
    def __init__(self, offline=False):
        self.files, self.listed, self.commit, self.why = {}, False, None, "HF_HUB_OFFLINE=1 is set"
        self.reachable, timeout = not (offline or hf_constants.is_offline_mode()), hf_constants.HF_HUB_ETAG_TIMEOUT
        try:  # one request: the size and LFS sha256 of every file, and the commit they belong to
            if self.reachable:
                info = HfApi().dataset_info(REPO_ID, revision=REVISION, timeout=timeout, files_metadata=True)
                self.files = {s.rfilename: (s.size, s.lfs.sha256 if s.lfs else None) for s in info.siblings or ()}
                self.listed, self.commit = True, info.sha
        except (httpx2.TransportError, OfflineModeIsEnabled) as e:
            self.reachable, self.why = False, f"could not reach the hub at {hf_constants.ENDPOINT}: {first_line(e)} (" + (
                f"no answer within {timeout} s: HF_HUB_ETAG_TIMEOUT" if isinstance(e, httpx2.TimeoutException)
                else "check the network connection and HF_ENDPOINT") + ")"
        except (HfHubHTTPError, httpx2.HTTPError, ValueError, KeyError, TypeError, AttributeError) as e:
            self.why = f"the hub's list of files is unavailable: {first_line(e)}"

def fault_of(path, hub, trust_record=True):
    """None when `path` is a good copy (header; the hub's size and sha256 where listed), else what is wrong."""
    try:
        shard_tokens(path)
    except ShardError as e:
        return str(e)
    (size, sha), have, record = hub.files.get(path.name, (None, None)), path.stat().st_size, \
        path.parent / RECORD_DIR / f"{path.name}.metadata"  # huggingface_hub's, kept while the file is unchanged
    if have != (size or have):
        return f"{path}: {have:,} bytes with a self-consistent header, but the hub's file is {size:,} bytes"
    meta = sha and trust_record and record.is_file() and read_download_metadata(path.parent, path.name)
    if sha is None or getattr(meta, "etag", None) == sha:
        return None
    with open(path, "rb") as f, tqdm.wrapattr(f, "read", total=have, desc=f"sha256 {path.name}", leave=False) as r:
        digest = sha_fileobj(r).hex()
    if digest != sha:
        record.unlink(missing_ok=True)  # a stale record (the file changed without a new time): trust it no more
        return f"{path}: sha256 {digest[:16]}... differs from the hub's {sha[:16]}..."
    if hub.commit:  # the next run need not read the file again
        write_download_metadata(path.parent, path.name, hub.commit, sha)

def spares(directory, name=None):
    return sorted(p for p in directory.glob("fineweb_*.bin.*") if (m := SPARE.fullmatch(p.name)) and name in (None, m[1]))

def set_aside(path):
    target, n = path.with_name(f"{path.name}.corrupt"), 2
    while target.exists():
        target, n = path.with_name(f"{path.name}.corrupt.{n}"), n + 1
    return os.replace(path, target) or target.name

def fetch(name, directory, hub):
    """Put a good `name` into `directory` with huggingface_hub; a copy already there is set aside first."""
    if (directory / name).exists():  # huggingface_hub would delete it: keep these bytes until a good copy is in
        tqdm.write(f"set {name} aside as {set_aside(directory / name)} until a good copy is in place", file=sys.stdout)
    hf_hub_download(REPO_ID, name, repo_type=REPO_TYPE, revision=hub.commit or REVISION, local_dir=directory)
    fault = fault_of(directory / name, hub, trust_record=False)  # huggingface_hub checks only the size it got
    if fault:
        raise ValueError(f"the downloaded file does not match the hub's: {fault}; set it aside as "
                         f"{set_aside(directory / name)}")
    for old in spares(directory, name):
        old.unlink()
        tqdm.write(f"removed {old.name} (set aside earlier) now that {name} is whole and valid", file=sys.stdout)

def download(names, directory, command):
    """Fetch the missing or bad `names` into `directory`; return an exit code."""
    hub, todo = Hub(), []
    if not hub.listed and hub.reachable:
        print(f"note: {hub.why}; checking files by header only (and downloads by the server's size)", file=sys.stderr)
    for name in names:
        fault = fault_of(directory / name, hub) if (directory / name).exists() else "missing"
        todo += [name] if fault else []
        if fault and fault != "missing":
            print(fault + ("; downloading it again (this copy is set aside until then)" if hub.reachable else ""))
    if not todo:
        how = "against the hub's list: header, size, and sha256" if hub.listed else f"by header only ({hub.why})"
        print(f"all {len(names)} files already present and valid in {directory} (checked {how}); nothing to download")
        return 0
    if not hub.reachable:
        shown = ", ".join(todo[:3]) + (f" and {len(todo) - 3} more" if len(todo) > 3 else "")
        return fail(f"{len(todo)} of {len(names)} files need downloading ({shown}), but {hub.why}; nothing in "
                    f"{directory} was changed: run the same command again once the hub can be reached: {command}")
    print(f"{len(names) - len(todo)} of {len(names)} files already present; downloading {len(todo)} into {directory}")
    with tqdm(total=len(todo), desc="files", unit="file") as bar:  # closed before the error line below
        for i, name in enumerate(todo):
            try:
                fetch(name, directory, hub)
                bar.update()
            except (OSError, httpx2.HTTPError, HfHubHTTPError, ValueError, RuntimeError) as e:  # RuntimeError: hf_xet
                cause, left = (e.__cause__ if isinstance(e, LocalEntryNotFoundError) and e.__cause__ else e), todo[i:]
                break
        else:
            return 0
    return fail(f"downloading {name} failed ({first_line(cause)}{advice(cause, left, directory, hub)}); the "
                f"{len(names) - len(left)} finished files in {directory} are kept: run the same command again: {command}")

def advice(cause, left, directory, hub):
    """What to do about a failed download, from its cause (`left`: the files still to fetch)."""
    status = getattr(getattr(cause, "response", None), "status_code", None)
    if status in (401, 403, 404):
        return "; not found there: check HF_ENDPOINT" if status == 404 else "; set HF_TOKEN to a valid token"
    if getattr(cause, "errno", None) != errno.ENOSPC and "No space left" not in str(cause):  # hf_xet: in its text
        return ""
    need, aside = sum(hub.files.get(n, (CHUNK_BYTES,))[0] for n in left), sum(p.stat().st_size for p in spares(directory))
    return (f"; the disk is full: the {len(left)} files still to download need about {human_bytes(need)} more (about "
            f"200 MB per chunk), {human_bytes(shutil.disk_usage(directory).free)} is free" + (f", and the set-aside "
            f"copies ({directory}/*.corrupt*) take {human_bytes(aside)}" if aside else "") + "; free some space or "
            "pass --dir with a larger disk")

def summary(directory, names):
    """Lines on the valid shards `names`: tokens, disk use and the steps of the train stream they cover."""
    tokens = {name: shard_tokens(directory / name) for name in names}
    train = [n for name, n in tokens.items() if name.startswith("fineweb_train_")]
    steps = sum(max(0, (n - BATCH_TOKENS - 2) // BATCH_TOKENS + 1) for n in train)  # k*batch + batch + 1 < n
    val, chunks = sum(tokens.values()) - sum(train), -(-BASELINE_STEPS // 190)  # a 100M-token chunk has 190 steps
    return [f"{len(names)} valid shards in {directory}: {sum(tokens.values()):,} tokens (val {val:,}; train "
            f"{sum(train):,} in {len(train)} shards), {human_bytes(sum((directory / n).stat().st_size for n in names))} "
            f"on disk", f"train tokens cover {steps:,} steps of {BATCH_TOKENS:,} tokens: " + (
                f"enough for the baseline's {BASELINE_STEPS:,} steps" if steps >= BASELINE_STEPS else
                f"NOT enough for the baseline's {BASELINE_STEPS:,} steps (it needs at least {chunks} chunks: "
                f"{download_command(chunks, directory)})")]

def verify(directory, chunks):
    """Check every shard in `directory`, and that val + train 1..chunks (default 1..the highest) are there."""
    present = sorted((p.name for p in directory.glob("fineweb_*.bin")), key=lambda n: (n != VAL_NAME, n))
    if not present:
        return fail(f"no shards in {directory}; download them with: {download_command(20, directory)}")
    hub, good, highest = Hub(), [], max(i for i, name in enumerate(shard_names(MAX_CHUNKS)) if name in present or not i)
    gap = "" if chunks else f" (train shards must run 1..{highest} with no gap)"  # without N: no gap below the highest
    problems = [f"{directory / n}: missing{gap if n != VAL_NAME else ''}" for n in shard_names(chunks or highest)
                if n not in present]
    for name in present:
        problem = fault_of(directory / name, hub, trust_record=False)  # --verify reads every byte
        if not problem and name not in (hub.files if hub.listed else shard_names(MAX_CHUNKS)):
            problem = f"{directory / name}: not a file of {REPO_ID}, yet training would read it: move it out of {directory}"
        check = f"header only ({'no hub list' if hub.reachable else 'offline'})" if not hub.listed else \
            "size and sha256 match the hub" if hub.files.get(name, (0, 0))[1] else "size matches the hub (it lists no sha256)"
        print(f"  {name:<28} PROBLEM: {problem}" if problem else
              f"  {name:<28} {shard_tokens(directory / name):>14,} tokens  {check}")
        problems, good = problems + [problem] * bool(problem), good + [name] * (not problem)
    for spare in spares(directory):
        print(f"  {spare.name:<28} (a copy set aside; removed once {SPARE.fullmatch(spare.name)[1]} is whole)")
    print(f"checked against the hub's list ({hf_constants.ENDPOINT}): header, size, and sha256 where listed" if hub.listed
          else f"checked each file by its header only (magic, version, size = 1024 + 2 x tokens): {hub.why}; not "
          f"compared with the hub's sizes and sha256{'' if hub.reachable else ' (run --verify online to compare them)'}")
    print("\n".join(summary(directory, good)))
    if problems:
        print(f"{len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems) + "\nto fetch missing and "
              f"invalid files again: {download_command(chunks or highest, directory)}", file=sys.stderr)
    return 1 if problems else 0

def main(argv=None):
    parser = argparse.ArgumentParser(prog="cached_fineweb10B.py", epilog="More in docs/data.md.", description=(
        f"Download (or check) the val shard and train chunks 1..N of {REPO_ID}: 100M tokens, about 200 MB each."))
    parser.error = lambda message: parser.exit(2, f"error: {message} (python {parser.prog} --help)\n")  # one line
    parser.add_argument("chunks", nargs="?", metavar="N", help="val + train 1..N, N in 1..103 (default 103)")
    parser.add_argument("--verify", action="store_true", help="check the shards (and that 1..N has no gap); change none")
    parser.add_argument("--dir", default=str(DEFAULT_DIR), help=f"shard directory (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    if args.chunks is not None and not (re.fullmatch(r"[0-9]+", args.chunks) and 1 <= int(args.chunks) <= MAX_CHUNKS):
        parser.error(f"N={args.chunks!r} is not a chunk count: give a whole number in 1..{MAX_CHUNKS}")  # not '٣', '1_0'
    directory = Path(args.dir).resolve()
    problem = environment_problem(offline=hf_constants.is_offline_mode()) or (
        "--dir is empty: give the directory of the shards" if not args.dir.strip() else
        f"--dir {directory} is a file, not a directory: give the directory of the shards" if directory.is_file() else "")
    if problem:
        return fail(problem, 2)
    try:
        if args.verify:
            return verify(directory, int(args.chunks or 0))
        names = shard_names(int(args.chunks or MAX_CHUNKS))
        code = download(names, directory, download_command(len(names) - 1, directory))
        if code == 0:  # every shard there, as the training script will see them
            print("\n".join(summary(directory, [p.name for p in sorted(directory.glob("fineweb_*.bin"))
                                                 if not fault_of(p, Hub(offline=True))])))
        return code
    except KeyboardInterrupt:  # huggingface_hub removes the partial file it was writing
        return fail("interrupted: run the same command again to go on", 130)
    except OSError as e:  # a local file or directory that cannot be read or changed
        return fail(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}; check the permissions and the disk "
                    f"of {directory}")

if __name__ == "__main__":
    sys.exit(main())
