"""What ``ebmlab train|sample ... --nproc N`` runs under torchrun: ``ebmlab.cli.main`` with the command line passed
in the environment variable ``EBMLAB_TORCHRUN_ARGV`` (JSON), so that torchrun's own option parser never sees (and
never prefix-matches) ebmlab's flags such as ``--n``."""
from __future__ import annotations

import json
import os
import sys

ARGV_VARIABLE = "EBMLAB_TORCHRUN_ARGV"


def main() -> int:
    from ..cli import main as cli_main

    return cli_main(json.loads(os.environ[ARGV_VARIABLE]))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
