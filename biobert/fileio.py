"""Atomic output files: write to a temporary file beside the target, then rename over it.

The file gets the permissions ``open()`` would give it (0666 less the process umask for a new file, the old
file's mode when it replaces one), not mkstemp's private 0600, so colleagues can read results on a shared
cluster as the user's umask allows.
"""
import contextlib
import os
import stat
import tempfile


def current_umask():
    """The process umask (read without changing it where /proc tells it; else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def creation_mode(path):
    """The permission bits ``open(path, "w")`` would leave: the existing file's, else 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~current_umask()


def publish(tmp, path):
    """Give ``tmp`` the mode ``open()`` would give ``path``, then rename it over ``path`` atomically."""
    os.chmod(tmp, creation_mode(path))
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_open(path, mode="w", encoding="utf-8"):
    """Open a temporary file next to ``path``; on clean exit it replaces ``path`` atomically.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": "\n"}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        publish(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as handle:
        handle.write(text)


def write_results(path, results):
    """``key = value`` lines, sorted by key, written atomically (eval_results.txt)."""
    atomic_write_text(path, "".join(f"{k} = {v}\n" for k, v in sorted(results.items())))
