"""``train --nproc N``: N training processes on this machine, one per GPU.

The processes are started by PyTorch's own launcher (what ``torchrun
--standalone --nproc_per_node N`` runs), inside this process, so that its way of
ending is ours: Ctrl-C or SIGTERM reaches the launcher, which passes it to every
process; they stop together at the same step, write one checkpoint, and rank 0
prints the one closing line. The launcher adds no traceback, and its exit code
is the processes' (see ``train --help``).
"""
from __future__ import annotations

import logging
import os
import sys
from typing import List

#: The launcher's loggers: quiet, since the processes say what happened.
_LOGGERS = ("torch.distributed.elastic", "torch.distributed.run")


def worker_argv(argv: List[str]) -> List[str]:
    """The command line of each process: ``argv`` without ``--nproc N`` (each
    process learns its rank and the world size from the launcher)."""
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            out.append(item)
    return out


def launch(nproc: int, argv: List[str]) -> int:
    """Run ``python -m srvp <argv>`` in ``nproc`` processes and return the exit
    code of the first that failed (0 when all finished, 1 when stopped early)."""
    from torch.distributed import run as launcher
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # One thread per process and core share: the launcher warns without it.
    threads = max(1, (os.cpu_count() or 1) // nproc)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    args = launcher.parse_args(["--standalone", "--nproc_per_node", str(nproc),
                                "--module", "srvp", *worker_argv(argv)])
    try:
        launcher.run(args)
    except SignalException:  # the processes got the signal and stopped cleanly
        return 1
    except ChildFailedError as err:  # the processes printed why
        _, failure = err.get_first_failure()
        code = failure.exitcode
        return code if code > 0 else 128 - code  # -N: killed by signal N
    except KeyboardInterrupt:
        print("error: interrupted; the last checkpoint written is kept: continue "
              "with --resume", file=sys.stderr)
        return 130
    return 0
