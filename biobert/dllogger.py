"""The run log: dllogger-style JSON lines (``DLLL {...}``) plus a readable line on stdout.

Only the chief process writes. Each line: timestamp, datetime, elapsedtime, type ("LOG" or "PARAMETER"),
step (an int, a list, or "PARAMETER"), data.
"""
import datetime
import json
import os
import sys
import time


class RunLog:
    def __init__(self, path=None, enabled=True, stream=sys.stdout):
        self.enabled = enabled
        self.start = time.time()
        self.stream = stream
        self._file = None
        if enabled and path:
            directory = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(directory, exist_ok=True)
                self._file = open(path, "a", encoding="utf-8")
            except OSError as err:
                print(f"warning: cannot write dllog {path} ({err}); logging to stdout only", file=sys.stderr)

    def _emit(self, kind, step, data):
        now = time.time()
        record = {"timestamp": now, "datetime": datetime.datetime.fromtimestamp(now).isoformat(),
                  "elapsedtime": now - self.start, "type": kind, "step": step, "data": data}
        if self._file is not None:
            self._file.write("DLLL " + json.dumps(record, default=_plain) + "\n")
            self._file.flush()

    def parameters(self, params):
        if self.enabled:
            self._emit("PARAMETER", "PARAMETER", params)

    def log(self, step, data, text=None):
        """Record ``data`` at ``step``; print ``text`` (or a key=value rendering) to the console."""
        if not self.enabled:
            return
        self._emit("LOG", step, data)
        if text is None:
            text = " ".join(f"{k}={_fmt(v)}" for k, v in data.items())
            if step not in ((), [], None):
                text = f"step {step}: {text}"
        print(text, file=self.stream, flush=True)

    def info(self, text):
        if self.enabled:
            print(text, file=self.stream, flush=True)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None


def _plain(value):
    try:
        return value.item()
    except AttributeError:
        return str(value)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
