"""Seconds since this interpreter started, for bench scripts that time a whole run as a user's
process lives it. The script reads ``time.perf_counter()`` before its other imports; the
interpreter's own start before that is added from the kernel's record of the process start
(glueperf.clock.job_age_s: psutil's create_time() was up to 1 s early)."""

import time
from functools import cache


@cache
def _before(started: float) -> float:
    from glueperf.clock import job_age_s

    return job_age_s() - (time.perf_counter() - started)


def since_start(started: float) -> float:
    """Seconds since the interpreter started; ``started``: perf_counter() at the script's top."""
    return time.perf_counter() - started + _before(started)
