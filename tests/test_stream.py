"""The token stream of train_gpt_simple.py (RULES.md 3.4): exact tokens per step and rank,
shard switching, the val slice, steps_in_shard, and the shard header checks."""
import os

import numpy as np
import pytest
import torch

import train_gpt_simple as tgs
from data.shards import write_shard
from tools import launch_check

BATCH, SEQ = 128, 16

# Shard lengths chosen around the switching rule (batch 128): 700 gives 5 steps and skips a
# 60-token tail; 129 = batch + 1 gives no step at all; 300 gives 2 steps; 258 = 2 * batch + 2
# gives 2 steps with no token to spare.
LENGTHS = {"fineweb_train_000001.bin": 700, "fineweb_train_000002.bin": 129,
           "fineweb_train_000003.bin": 300, "fineweb_train_000010.bin": 258}


def shard_values(index, length):
    """Tokens that say where they come from: shard index * 4096 + position."""
    return index * 4096 + np.arange(length)


@pytest.fixture
def train_dir(tmp_path):
    names = sorted(LENGTHS)
    for name in reversed(names):  # written in reverse name order: the reader must sort
        write_shard(tmp_path / name, shard_values(names.index(name) + 1, LENGTHS[name]))
    write_shard(tmp_path / "fineweb_val_000000.bin", np.arange(5000) % 60000)  # not matched by the pattern
    return tmp_path


def expected_stream(shards, batch, world_size):
    """RULES.md 3.4, written independently: per step, per rank, (inputs, targets) as numpy."""
    local = batch // world_size
    steps, per_shard = [], []
    for tokens in shards:
        pos, count = 0, 0
        while True:
            if pos + batch + 1 >= len(tokens):  # move to the next shard; the tail is skipped
                break
            steps.append([(tokens[pos + r * local: pos + r * local + local],
                           tokens[pos + r * local + 1: pos + r * local + local + 1]) for r in range(world_size)])
            pos += batch
            count += 1
        per_shard.append(count)
    return steps, per_shard


def test_reference_stream_is_what_the_spec_says():
    # the hand-computed stream of the fixture shards, so the reference itself is pinned down
    shards = [shard_values(i + 1, LENGTHS[n]) for i, n in enumerate(sorted(LENGTHS))]
    steps, per_shard = expected_stream(shards, BATCH, 2)
    assert per_shard == [5, 0, 2, 2]
    first_of_third = steps[5]  # the first step after the switch past the 129-token shard
    assert first_of_third[0][0][0] == 3 * 4096 and first_of_third[1][0][0] == 3 * 4096 + 64
    last = steps[-1]
    assert last[1][1][-1] == 4 * 4096 + 256  # the last target is the last token of the 258-token shard


@pytest.mark.parametrize("world_size", [1, 2, 4, 8])
def test_exact_tokens_of_every_step_and_rank(train_dir, world_size):
    names = sorted(LENGTHS)
    shards = [shard_values(i + 1, LENGTHS[n]) for i, n in enumerate(names)]
    steps, _ = expected_stream(shards, BATCH, world_size)
    assert len(steps) == 9
    pattern = str(train_dir / "fineweb_train_*.bin")
    local = BATCH // world_size
    for rank in range(world_size):
        gen = tgs.distributed_data_generator(pattern, BATCH, rank, world_size, SEQ, device="cpu")
        for s, step in enumerate(steps):
            inputs, targets = next(gen)
            assert inputs.dtype == torch.int32 and targets.dtype == torch.int64
            assert inputs.shape == targets.shape == (local // SEQ, SEQ)
            want_in, want_tg = step[rank]
            np.testing.assert_array_equal(inputs.numpy(), want_in.reshape(-1, SEQ), err_msg=f"step {s} rank {rank}")
            np.testing.assert_array_equal(targets.numpy(), want_tg.reshape(-1, SEQ), err_msg=f"step {s} rank {rank}")
        with pytest.raises(ValueError, match="ran out of tokens") as e:
            next(gen)
        assert pattern in str(e.value)


def test_ranks_together_cover_the_batch_contiguously(train_dir):
    pattern = str(train_dir / "fineweb_train_*.bin")
    gens = [tgs.distributed_data_generator(pattern, BATCH, r, 4, SEQ, device="cpu") for r in range(4)]
    single = tgs.distributed_data_generator(pattern, BATCH, 0, 1, SEQ, device="cpu")
    for _ in range(9):
        parts = [next(g) for g in gens]
        whole_in, whole_tg = next(single)
        assert torch.equal(torch.cat([p[0] for p in parts]), whole_in)
        assert torch.equal(torch.cat([p[1] for p in parts]), whole_tg)


def test_running_out_of_shards_and_no_shards(tmp_path):
    write_shard(tmp_path / "fineweb_train_000001.bin", np.arange(BATCH + 1))  # too short for one step
    pattern = str(tmp_path / "fineweb_train_*.bin")
    with pytest.raises(ValueError, match="ran out of tokens") as e:
        next(tgs.distributed_data_generator(pattern, BATCH, 0, 1, SEQ, device="cpu"))
    assert pattern in str(e.value) and "download more" in str(e.value)
    empty = str(tmp_path / "nothing_*.bin")
    with pytest.raises(ValueError, match="ran out of tokens"):
        next(tgs.distributed_data_generator(empty, BATCH, 0, 1, SEQ, device="cpu"))


@pytest.mark.parametrize("world_size", [1, 2, 4, 8])
def test_val_slice_of_each_rank(tmp_path, world_size):
    val_tokens = 4 * BATCH
    tokens = (np.arange(val_tokens + 50) * 7) % 65521  # distinct values
    write_shard(tmp_path / "fineweb_val_000000.bin", tokens)
    pattern = str(tmp_path / "fineweb_val_*.bin")
    local = val_tokens // world_size
    got_in, got_tg = [], []
    for rank in range(world_size):
        inputs, targets = next(tgs.distributed_data_generator(pattern, val_tokens, rank, world_size, SEQ, device="cpu"))
        assert inputs.shape == (local // SEQ, SEQ) and inputs.dtype == torch.int32 and targets.dtype == torch.int64
        np.testing.assert_array_equal(inputs.numpy().ravel(), tokens[rank * local: rank * local + local])
        np.testing.assert_array_equal(targets.numpy().ravel(), tokens[rank * local + 1: rank * local + local + 1])
        got_in.append(inputs.numpy().ravel())
        got_tg.append(targets.numpy().ravel())
    np.testing.assert_array_equal(np.concatenate(got_in), tokens[:val_tokens])
    np.testing.assert_array_equal(np.concatenate(got_tg), tokens[1:val_tokens + 1])


def test_val_shard_needs_val_tokens_plus_two(tmp_path):
    # the generator's rule (pos + batch + 1 >= len moves on) needs len >= batch + 2, which is
    # what main() checks up front (val_have < val_tokens + 2)
    val_tokens = 2 * BATCH
    for extra, ok in ((1, False), (2, True)):
        path = tmp_path / f"v{extra}" / "fineweb_val_000000.bin"
        path.parent.mkdir()
        write_shard(path, np.arange(val_tokens + extra))
        gen = tgs.distributed_data_generator(str(path), val_tokens, 0, 1, SEQ, device="cpu")
        if ok:
            inputs, targets = next(gen)
            assert targets.numpy().ravel()[-1] == val_tokens
        else:
            with pytest.raises(ValueError):
                next(gen)


def test_steps_in_shard_counts_the_generators_steps(tmp_path):
    batch, seq = 8, 4
    for n in range(0, 5 * batch + 3):
        path = tmp_path / f"shard_{n:03d}.bin"
        write_shard(path, np.arange(n))
        gen = tgs.distributed_data_generator(str(path), batch, 0, 1, seq, device="cpu")
        taken = 0
        with pytest.raises(ValueError):
            while True:
                next(gen)
                taken += 1
        assert tgs.steps_in_shard(n, batch) == taken, n
    # the spec's figure: a 100M-token shard gives 190 steps of 524,288
    assert tgs.steps_in_shard(100_000_000, 524288) == 190
    assert tgs.steps_in_shard(524288 + 1, 524288) == 0
    assert tgs.steps_in_shard(524288 + 2, 524288) == 1
    assert tgs.steps_in_shard(2 * 524288 + 2, 524288) == 2


def test_steps_in_shard_of_the_fixture_shards():
    shards = [shard_values(i + 1, LENGTHS[n]) for i, n in enumerate(sorted(LENGTHS))]
    _, per_shard = expected_stream(shards, BATCH, 1)
    assert [tgs.steps_in_shard(len(s), BATCH) for s in shards] == per_shard


# -----------------------------------------------------------------------------
# header validation


def write_raw(path, magic=20240520, version=1, count=10, tokens=None, header_bytes=1024):
    header = np.zeros(256, dtype="<i4")
    header[:3] = magic, version, count
    body = np.asarray(tokens if tokens is not None else np.arange(count), dtype="<u2").tobytes()
    with open(path, "wb") as f:
        f.write(header.tobytes()[:header_bytes])
        if header_bytes == 1024:
            f.write(body)
    return str(path)


def both_readers_fail(path):
    """The script's readers refuse the shard, naming it; tools.launch_check's explanation (the message returned)
    names it too, and what is wrong."""
    for reader in (tgs.shard_token_count, tgs.load_data_shard, launch_check.shard_token_count):
        with pytest.raises(ValueError) as e:
            reader(path)
        assert str(e.value).startswith(f"{path}: "), str(e.value)
    assert str(e.value) == launch_check.shard_problem(path)
    return launch_check.shard_problem(path)


def test_valid_shard_reads_back(tmp_path):
    tokens = np.array([0, 1, 65535, 50256, 7, 7, 123])
    path = tmp_path / "ok.bin"
    write_shard(path, tokens)
    assert tgs.shard_token_count(str(path)) == 7 == launch_check.shard_token_count(str(path))
    assert launch_check.shard_problem(str(path)) is None
    loaded = tgs.load_data_shard(str(path))
    assert loaded.dtype == torch.uint16
    np.testing.assert_array_equal(loaded.numpy().astype(np.int64), tokens)
    empty = tmp_path / "empty_ok.bin"
    write_shard(empty, np.array([], dtype=np.int64))
    assert tgs.shard_token_count(str(empty)) == 0 and len(tgs.load_data_shard(str(empty))) == 0


def test_bad_magic(tmp_path):
    msg = both_readers_fail(write_raw(tmp_path / "magic.bin", magic=12345))
    assert "magic 12345" in msg and "20240520" in msg


def test_bad_version(tmp_path):
    msg = both_readers_fail(write_raw(tmp_path / "version.bin", version=2))
    assert "version 2" in msg


def test_truncated_shard(tmp_path):
    path = tmp_path / "short.bin"
    write_shard(path, np.arange(100))
    with open(path, "r+b") as f:
        f.truncate(1024 + 2 * 100 - 6)
    msg = both_readers_fail(str(path))
    assert "truncated" in msg and f"{1024 + 194} bytes" in msg and "100 tokens" in msg and f"{1024 + 200} bytes" in msg


def test_too_long_file(tmp_path):
    path = tmp_path / "long.bin"
    write_shard(path, np.arange(100))
    with open(path, "ab") as f:
        f.write(b"\0\0")
    msg = both_readers_fail(str(path))
    assert f"{1024 + 202} bytes" in msg and "100 tokens" in msg and f"{1024 + 200} bytes" in msg


@pytest.mark.parametrize("size", [0, 3, 12, 100, 1023])
def test_file_shorter_than_the_header(tmp_path, size):
    path = write_raw(tmp_path / f"tiny{size}.bin", count=0, header_bytes=size)
    assert os.path.getsize(path) == size
    msg = both_readers_fail(path)
    assert f"header {size} bytes" in msg


def test_bad_shard_in_the_stream_names_the_file(tmp_path):
    write_shard(tmp_path / "fineweb_train_000001.bin", np.arange(300))
    bad = write_raw(tmp_path / "fineweb_train_000002.bin", magic=7)
    gen = tgs.distributed_data_generator(str(tmp_path / "fineweb_train_*.bin"), BATCH, 0, 1, SEQ, device="cpu")
    next(gen), next(gen)
    with pytest.raises(ValueError, match="not a whole token shard") as e:
        next(gen)
    assert bad in str(e.value) and "magic 7" in launch_check.shard_problem(bad)
