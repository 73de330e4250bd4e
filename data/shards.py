"""The benchmark's token shard format (RULES.md section 3), for tools, tests and synthetic data.

A shard is a header of 256 little-endian int32 values ([0] magic 20240520, [1] version 1,
[2] token count) followed by that many uint16 GPT-2 tokens, so its size is exactly
1024 + 2 * count bytes. The training script has its own reader; this module writes shards
and checks them without loading the tokens.
"""
import os
import struct

import numpy as np

MAGIC, VERSION = 20240520, 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4


class ShardError(ValueError):
    """A file that is not a whole, valid shard; the message names the file and the fault."""


def write_shard(path, tokens):
    """Write `tokens` (ints in 0..65535) as a shard at `path`; returns the token count.

    Writes to `path + ".tmp"` first and renames, so a crash never leaves a partial file
    under the final name.
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be one-dimensional, got shape {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() > 65535):
        raise ValueError("tokens must lie in 0..65535 to be stored as uint16")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = MAGIC, VERSION, tokens.size
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2").tobytes())
    os.replace(tmp, path)
    return int(tokens.size)


def shard_tokens(path):
    """Return the token count of the shard at `path`, or raise ShardError saying what is wrong."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError as e:
        raise ShardError(f"{path}: cannot read: {e.strerror or e}") from None
    if len(head) < 12 or size < HEADER_BYTES:
        raise ShardError(f"{path}: truncated: {size} bytes, shorter than the {HEADER_BYTES}-byte header")
    magic, version, count = struct.unpack("<3i", head)
    if magic != MAGIC:
        raise ShardError(f"{path}: bad magic number {magic} (expected {MAGIC}): not a shard of this benchmark")
    if version != VERSION:
        raise ShardError(f"{path}: unsupported version {version} (expected {VERSION})")
    if count < 0:
        raise ShardError(f"{path}: negative token count {count} in header")
    expected = HEADER_BYTES + 2 * count
    if size != expected:
        kind = "truncated" if size < expected else "too long"
        raise ShardError(f"{path}: {kind}: {size} bytes, but the header's {count} tokens need exactly {expected}")
    return count


def read_shard(path):
    """Return the tokens of a valid shard as a uint16 numpy array (raises ShardError)."""
    count = shard_tokens(path)
    return np.fromfile(path, dtype="<u2", count=count, offset=HEADER_BYTES)
