"""Progress lines for long steps (inference, data preparation): ``<what>: <done>/<total> <unit> (<pct>%),
<rate> <unit>/s`` at most every PROGRESS_SECONDS (30 s; the BIOBERT_PROGRESS_SECONDS environment variable
changes it, 0 prints on every update)."""
import os
import time


def interval(default=30.0):
    try:
        return max(0.0, float(os.environ.get("BIOBERT_PROGRESS_SECONDS", default)))
    except ValueError:
        return default


class Progress:
    """Call ``update(done)`` as work advances; a line is printed when ``every`` seconds passed since the last."""

    def __init__(self, what, total=None, unit="examples", every=None, emit=None, clock=time.monotonic):
        self.what, self.total, self.unit = what, total, unit
        self.every = interval() if every is None else every
        self.emit = emit or (lambda text: print(text, flush=True))
        self.clock = clock
        self.start = self.last = clock()
        self.lines = 0

    def update(self, done):
        now = self.clock()
        if now - self.last < self.every:
            return False
        self.last = now
        elapsed = now - self.start
        text = f"{self.what}: {done}"
        if self.total:
            text += f"/{self.total} {self.unit} ({100.0 * done / self.total:.0f}%)"
        else:
            text += f" {self.unit}"
        if elapsed > 0:
            text += f", {done / elapsed:.1f} {self.unit}/s"
        self.emit(text)
        self.lines += 1
        return True
