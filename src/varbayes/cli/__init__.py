"""The ``varbayes`` command line: demo, fit, predict, evaluate, benchmark.

Thin over the library. Errors caused by the user (bad files, columns, values, flags) print one
line on stderr and exit with code 2; a failure while running (e.g. a diverging fit) exits 1;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from varbayes.cli.parser import EXIT_FAILURE, EXIT_USAGE, UsageError, build_parser

__all__ = ["main", "run"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``varbayes`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from varbayes import _atomic  # after parsing: --help and usage errors stay instant
    from varbayes.cli.commands import COMMANDS

    try:  # SIGTERM/SIGHUP raise Terminated, so partial outputs are removed as for Ctrl-C
        with _atomic.terminate_on_signals():
            try:
                code = COMMANDS[args.command](args)
            except Exception as exc:  # what a lost Terminated left behind (e.g. an ImportError)
                if (signum := _atomic.terminated_by()) is None:
                    raise
                raise _atomic.Terminated(signum) from exc
            _atomic.check_terminated()  # the command ended although a signal came
            return code
    except (KeyboardInterrupt, _atomic.Terminated) as exc:
        _atomic.cleanup()
        signum = getattr(exc, "signum", 2)
        what = str(exc) or "interrupted by SIGINT"
        print(f"varbayes: error: {what}; temporary files removed", file=sys.stderr)
        return 128 + signum
    except Exception as exc:  # noqa: BLE001 - mapped to exit codes below
        if args.debug:
            raise
        from varbayes.infer import NonFiniteLossError

        if isinstance(exc, NonFiniteLossError):
            code = EXIT_FAILURE
        elif isinstance(exc, (ValueError, TypeError, OSError, UsageError)):
            code = EXIT_USAGE
        else:
            code = EXIT_FAILURE
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in message:
            message = f"{message}: {exc.filename}"
        print(f"varbayes: error: {message}", file=sys.stderr)
        return code


def run() -> NoReturn:
    """The ``varbayes`` console script and ``python -m varbayes``: :func:`main`, then exit.

    Tearing down an interpreter that has imported torch takes about 0.4 s (finalising its
    modules and collecting their objects), a quarter of a whole ``varbayes fit --model bbb``.
    When :func:`main` returns, every output is complete: files are written atomically and
    renamed, worker threads are joined and a process group is destroyed. So the process runs
    the ``atexit`` handlers, flushes standard output and error, and ends with :func:`os._exit`,
    skipping the teardown. An exception out of :func:`main` (``--debug``) exits the usual way.
    """
    code = main()
    atexit._run_exitfuncs()  # what a normal exit runs first (e.g. logging's final flush)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # e.g. a closed pipe: the exit status Python itself gives for it
        code = code or 120
    os._exit(code)
