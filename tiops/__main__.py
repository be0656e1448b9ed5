"""``python -m tiops`` and the ``tiops`` program (``tiops.__main__:main``) run the command line."""

from __future__ import annotations

import sys

# 128 + SIGINT, as tiops.cli.EXIT_INTERRUPTED: that module is what may be cut short here.
_EXIT_INTERRUPTED = 130


def main() -> None:
    """Import the command line and run it.

    Ctrl-C in the first tenth of a second or so, while click and ``tiops.cli`` are still being
    imported, comes before the command line's own handler (tiops.cli.LazyCommands.invoke)
    exists: Python printed a KeyboardInterrupt traceback through click's modules. It ends the
    way it does later on, with 130 and the same words.
    """
    try:
        from tiops.cli import run
    except KeyboardInterrupt:
        sys.stderr.write("\ntiops: interrupted; run the same command again to finish\n")
        sys.exit(_EXIT_INTERRUPTED)
    run()


if __name__ == "__main__":
    main()
