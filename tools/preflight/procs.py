"""The processes of the runs. Each run's ranks are forked into a process group of their own, their output goes
through a pipe into a bounded tail (the total is counted, nothing else is kept), and the group is killed when the
run passes its time limit or the preflight stops (Ctrl-C, SIGTERM, an error): SIGTERM first, SIGKILL after a
grace period, since the script's own handler swallows SIGINT and SIGTERM to write a checkpoint. A rank also dies
with the preflight (PR_SET_PDEATHSIG on Linux). No threads: one loop polls the pipes and the processes."""
import ctypes
import io
import os
import selectors
import signal
import sys
import time
import traceback

TAIL_BYTES = 64 * 1024  # the output kept per run: its end
GRACE_S = 1.0  # between SIGTERM and SIGKILL when the preflight stops


def _die_with_parent(parent):
    """Ask Linux to SIGKILL this process when the preflight dies (no-op elsewhere)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the preflight died before prctl took effect
        os._exit(1)


class Proc:
    """One run: `world` forked processes that each call target(rank, *args), in one process group."""

    def __init__(self, label, world, target, args):
        self.label, self.world, self.target, self.args = label, world, target, args
        self.pids, self.status, self.pgid, self.fd = [], {}, None, None
        self.tail, self.total, self.started, self.ended = bytearray(), 0, None, None
        self.deadline, self.killed, self.eof = None, None, False  # killed: why the preflight killed the group

    def start(self, close_fds=()):
        read, write = os.pipe()
        parent = os.getpid()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        self.started = time.monotonic()
        for rank in range(self.world):
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    os.setpgid(0, self.pgid or 0)
                    _die_with_parent(parent)
                    for s in (signal.SIGINT, signal.SIGTERM):
                        signal.signal(s, signal.SIG_DFL)
                    os.dup2(write, 1)
                    os.dup2(write, 2)
                    for fd in (read, write, *close_fds):
                        try:
                            os.close(fd)
                        except OSError:
                            pass
                    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True,
                                                  errors="backslashreplace")
                    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True,
                                                  errors="backslashreplace")
                    self.target(rank, *self.args)
                    code = 0
                except BaseException:  # noqa: BLE001 - whatever happens, never return into the preflight's code
                    traceback.print_exc()
                finally:
                    try:
                        sys.stdout.flush()
                        sys.stderr.flush()
                    finally:
                        os._exit(code)
            if self.pgid is None:
                self.pgid = pid
            try:
                os.setpgid(pid, self.pgid)  # also here: no race with a kill right after the fork
            except OSError:
                pass
            self.pids.append(pid)
        os.close(write)
        os.set_blocking(read, False)
        self.fd = read
        return read

    def read(self):
        """Take what the pipe holds; True at its end (every process closed its output)."""
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return False
            if not data:
                return True
            self.total += len(data)
            self.tail += data
            if len(self.tail) > TAIL_BYTES:
                del self.tail[:len(self.tail) - TAIL_BYTES]

    def reap(self):
        """Collect the exit status of the processes that ended; True when all have."""
        for pid in self.pids:
            if pid not in self.status:
                try:
                    done, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done, status = pid, 0
                if done:
                    self.status[pid] = status
        return len(self.status) == len(self.pids)

    def abnormal(self):
        """A process that died by a signal or exited with a non-zero status (the worker itself exits 0)."""
        return any(os.WIFSIGNALED(s) or os.waitstatus_to_exitcode(s) != 0 for s in self.status.values())

    def kill(self, sig, why):
        self.killed = self.killed or why
        try:
            os.killpg(self.pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def output(self):
        return bytes(self.tail).decode(errors="replace")


class Pool:
    """Runs `Proc`s: start(), then poll() until each is done; stop() ends them all."""

    def __init__(self):
        self.selector, self.active = selectors.DefaultSelector(), []

    def start(self, proc):
        fd = proc.start(close_fds=[p.fd for p in self.active])
        self.selector.register(fd, selectors.EVENT_READ, proc)
        self.active.append(proc)

    def poll(self, timeout=0.2):
        """Wait up to `timeout` for output or an exit; returns the procs that finished (their pipes drained)."""
        if self.active:
            for key, _ in self.selector.select(timeout):
                if key.data.read():  # its end: no more polling it (a process may outlive its output by a moment)
                    self.selector.unregister(key.fd)
                    key.data.eof = True
        else:
            time.sleep(timeout)
        now, done = time.monotonic(), []
        for proc in list(self.active):
            ended = proc.reap()
            if not ended and proc.deadline is not None and now > proc.deadline:
                proc.kill(signal.SIGKILL, "time")
            elif not ended and proc.status and proc.abnormal():
                proc.kill(signal.SIGKILL, "died")  # a rank died: the others would wait for it forever
            if ended:  # (no kill of the group now: with every member reaped its id may be another's)
                drain = time.monotonic() + 1.0
                while not proc.eof and not proc.read() and time.monotonic() < drain:  # (a process they started
                    time.sleep(0.01)  # may hold the pipe open)
                self.close(proc)
                proc.ended = now
                done.append(proc)
        return done

    def close(self, proc):
        if not proc.eof:
            self.selector.unregister(proc.fd)
        os.close(proc.fd)
        self.active.remove(proc)

    def stop(self, grace=GRACE_S):
        """End every run now: SIGTERM, SIGKILL after `grace` seconds, reap; the pipes are closed."""
        for proc in self.active:
            proc.kill(signal.SIGTERM, "stop")
        end = time.monotonic() + grace
        while time.monotonic() < end and not all(proc.reap() for proc in self.active):
            time.sleep(0.05)
        for proc in list(self.active):
            if not proc.reap():
                proc.kill(signal.SIGKILL, "stop")
            for pid in proc.pids:
                if pid not in proc.status:
                    try:
                        os.waitpid(pid, 0)
                    except ChildProcessError:
                        pass
            self.close(proc)
