"""Running an entry point: user errors become one ``error:`` line and exit status 1."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main_guard(fn):
    """Wrap an absl ``main(argv)``: InputError -> ``error: ...`` on stderr and exit 1; Ctrl-C -> exit 130."""
    from biobert.errors import InputError

    def wrapped(argv):
        try:
            return fn(argv)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(1)
        except KeyboardInterrupt:
            print("interrupted: the last checkpoint in output_dir is intact; run the same command to resume",
                  file=sys.stderr, flush=True)
            sys.exit(130)

    return wrapped
