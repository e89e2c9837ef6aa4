"""Errors a user can cause: one clear message naming the file and the line."""


class InputError(Exception):
    """Bad user input (missing or malformed file, unknown label, mismatched checkpoint, empty data).

    Entry points catch it, print ``error: <message>`` to stderr and exit with status 1.
    """

    def __init__(self, message, path=None, line=None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        super().__init__(where + message)


PREEMPTED_EXIT_STATUS = 75      # EX_TEMPFAIL: "try again" (run_biobert.sub requeues the job on it)


class Preempted(BaseException):
    """The run stopped on SIGTERM/SIGUSR1 with a complete checkpoint as the newest in output_dir: the one saved at
    ``step`` (``saved``), or, when no training step was under way (``saved`` False; ``step`` None outside training),
    the one it had. A BaseException, as KeyboardInterrupt: a signal handler may raise it anywhere, and no
    ``except Exception`` (a damaged checkpoint's fallback, for one) may take it for an error of its own."""

    def __init__(self, step, signal_name, saved=True):
        self.step = step
        if saved:
            what = f"after saving a checkpoint at step {step}"
        elif step is not None:
            what = f"at step {step}, before training further (the newest checkpoint in output_dir is complete)"
        else:
            what = "while no training step was under way (the newest checkpoint in output_dir is complete)"
        super().__init__(f"stopped on {signal_name} {what}: run the same command again to resume")


def require_file(path, what="file"):
    """Raise InputError unless ``path`` is an existing regular file; returns the path as str."""
    import os

    path = str(path)
    if not os.path.isfile(path):
        raise InputError(f"{what} not found", path=path)
    return path
