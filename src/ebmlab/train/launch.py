"""What ``ebmlab train|sample ... --nproc N`` runs under torchrun: ``ebmlab.cli.main`` with the command line passed
in the environment variable ``EBMLAB_TORCHRUN_ARGV`` (JSON), so that torchrun's own option parser never sees (and
never prefix-matches) ebmlab's flags such as ``--n``.

Teardown.  ``cli.main`` leaves the process group itself (a barrier, then ``destroy_process_group``), after rank 0
has written and closed every file of the run.  The worker then ends with ``os._exit`` once stdout and stderr are
flushed, skipping the interpreter's finalisation and the C++ static destructors: in that phase a Gloo worker
process occasionally aborted ("terminate called without an active exception", SIGABRT; once in CI, on a run whose
files were all written), which torchrun reports as a failed job.  Nothing of the run is lost by skipping it (files
are written atomically and closed before the barrier).  ``faulthandler`` is enabled, so a worker that does crash
prints the Python stack of every thread to its stderr.
"""
from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys

ARGV_VARIABLE = "EBMLAB_TORCHRUN_ARGV"


def main() -> int:
    from ..cli import main as cli_main

    faulthandler.enable()
    return cli_main(json.loads(os.environ[ARGV_VARIABLE]))


def exit_worker(code: int) -> None:  # pragma: no cover - runs in the torchrun worker, after main()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    try:
        rc = main()  # cli.main turns argument errors and ebmlab errors into an exit status itself
    except BaseException:
        import traceback

        traceback.print_exc()
        rc = 1
    exit_worker(int(rc))
