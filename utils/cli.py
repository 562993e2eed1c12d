"""How the course's command lines refuse: one line ``error: ...`` on stderr, exit status 2, no traceback.

Build the parser with :class:`ArgumentParser` (a drop-in for ``argparse.ArgumentParser``): its own errors
(an unknown option, a bad value, a missing argument) come out that way, and so does ``parser.error(message)``.
For what ``main`` finds wrong after parsing, call :func:`fail` with a message that says what was expected,
what came and what to do::

    from utils.cli import ArgumentParser, fail

    def main(argv=None) -> int:
        parser = ArgumentParser(prog="python -m utils.thing", description="What it does.")
        parser.add_argument("folder", type=Path)
        args = parser.parse_args(argv)
        try:
            do_the_thing(args.folder)
        except ValueError as err:  # the library's own message, passed on
            fail(str(err))
        return 0
"""
import argparse
import sys
from typing import NoReturn


def fail(message: str) -> NoReturn:
    """Print ``error: message`` (its line breaks made spaces) to stderr and exit with status 2."""
    print(f"error: {' '.join(str(message).splitlines())}", file=sys.stderr)
    raise SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors (subcommands' included) go through :func:`fail`."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see `{self.prog} --help`)")
