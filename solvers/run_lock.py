"""One process per run folder: an OS lock (flock) on `<folder>.lock`, held until the process
ends, so that a second `make random RUN=x` is refused instead of training the same trials into the
same tuner folder and rewriting the first one's trials.csv, checkpoints and models.

The kernel drops a flock when the holder's file descriptor closes, which dying does, however it
dies: a run killed with SIGKILL never leaves its folder locked. The file itself stays behind with
the dead holder's pid; only a lock someone holds counts, so a stale file is harmless.

Where the file lives, and why:
- Beside the folder (results/<RUN>.lock), not in it: FRESH=1 moves results/<RUN> aside with
  os.replace, and a lock file inside would move with it, leaving a new, unlocked one for a second
  process to take while the first still runs. Beside it, the lock covers the name RUN, whatever
  happens to the folder.
- Never deleted: a process that opened the file just before it was deleted would lock a file
  nobody else can see, and two processes would both "hold" the run.
"""
import errno
import fcntl
import os
import socket
import time

from solvers.config_base import ConfigError

# Lock file (absolute path) → its descriptor, open and locked until the process ends. A plain int
# descriptor, not a file object, so that no garbage collection can close it and unlock the folder.
_HELD = {}


def lock_path(folder):
    """The lock file of `folder` (a run folder, a set of baselines, a model file)."""
    return os.path.normpath(folder) + ".lock"


def hold(folder):
    """Locks `folder` for the rest of this process's life (a second call for the same folder is a
    no-op) and writes this process's pid into the lock file. ConfigError naming the holder's pid
    when another process holds it. Writes nothing but the lock file (and its parent folder), so it
    comes before anything of the run is written or moved. Returns the lock file's path."""
    shown = lock_path(folder)  # as the user gave it, for the message
    path = os.path.abspath(shown)
    if path in _HELD:
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # No O_TRUNC: the holder's pid must stay readable for the message until we hold the lock.
    # Not inherited by the programs a run starts (Python's descriptors are non-inheritable), so
    # none of them keeps the lock alive after this process ends.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno != errno.EWOULDBLOCK:  # e.g. ENOLCK: a file system without locks
            raise ConfigError(f"{path}: cannot lock ({e.strerror}); keep the results on a "
                              "local disk") from None
        raise ConfigError(f"{folder} is in use by {holder(path)} (lock: {shown}); wait for it to "
                          "end or stop it, then run again") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    _HELD[path] = fd
    return path


def holder(path, wait=1.0):
    """"process <pid>" (and "on <host>" when not this machine) from the lock file at `path`;
    waits up to `wait` s for a holder that has locked but not yet written its pid."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with open(path) as f:
                fields = f.read().split()
        except OSError:
            fields = []
        if fields or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if not fields:
        return "another process"
    pid, host = fields[0], " ".join(fields[1:])
    return f"process {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
