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


def require_file(path, what="file"):
    """Raise InputError unless ``path`` is an existing regular file; returns the path as str."""
    import os

    path = str(path)
    if not os.path.isfile(path):
        raise InputError(f"{what} not found", path=path)
    return path
