"""Work begun in a thread while its caller goes on, and its outcome once the caller needs it:
an evaluation's CUDA start and its model's checksums, both done while it reads its data and
loads its model (glueperf/evaluation.py: ``EarlyStart``; glueperf/infra/evaluate_job.py)."""

from __future__ import annotations

import threading


class Background:
    """``function(*args)`` run in a daemon thread from now; ``result()`` waits for it and returns
    its value, or raises its error where the caller would have called it."""

    def __init__(self, function, *args):
        self._outcome: list = []
        self._thread = threading.Thread(target=self._run, args=(function, args), daemon=True)
        self._thread.start()

    def _run(self, function, args) -> None:
        try:
            self._outcome.append(function(*args))
        except BaseException as error:  # re-raised in result()
            self._outcome.append(error)

    def result(self):
        self._thread.join()
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome
