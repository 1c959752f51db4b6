"""cProfile (per-thread CPU) of `afk dev`, toggled by signals (bench/LEVERS.md):
`python profiling/dev.py dev --port P ...`, then `kill -USR1 PID` to start and
`kill -USR2 PID` to write profiling/dev.py.prof."""

import cProfile
import signal
import sys
import time

from afk.cli import main

profile = cProfile.Profile(time.thread_time)


def _dump(*_: object) -> None:
    profile.disable()
    profile.dump_stats(sys.argv[0] + ".prof")


signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
signal.signal(signal.SIGUSR2, _dump)
main(sys.argv[1:])
