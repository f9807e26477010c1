"""GPU energy of the offline pass, from NVML's energy counter.

``nvmlDeviceGetTotalEnergyConsumption`` (package ``nvidia-ml-py``, module ``pynvml``) gives the
energy a GPU has used since its driver was loaded, in millijoules (Volta and later; the whole
board). The counter is updated every 20-100 ms, so a read returns the energy up to its last update,
not up to the moment of the read: the difference of two plain reads is off by up to one update
period at each end, more than the whole of a short pass. So:

- **Aligned window.** Before the pass the counter is polled (every millisecond) until it changes
  twice: the time between the two changes is its update period, and the pass starts at the second
  change, the energy counted from that update. After the pass (the device synchronized) the
  counter is polled until it changes again: the window ends with that update, which counts all of
  the pass's energy and at most one update period after it (the device idle or nearly).
- **Long enough.** The window must span at least ``min_updates`` update periods (default 10), so
  that the one period of idle energy at its end is at most a tenth of its time (about 1/40 of its
  energy on an H100, which idles near a quarter of its working power). A shorter pass is run
  again, untimed, until the passes together are that long (at most ``max_passes``): the figures
  are then the window's energy divided by the number of passes (``energy_passes``), each pass
  being the same work on the same data. A window that is still too short is reported empty.
- **Never made up.** On a CPU, with NVML missing or unable to read this GPU (older than Volta,
  MIG instances: "Not Supported"), or when the counter stops changing, the figures are empty
  (NaN) and the reason is said once in the job's log: at INFO for a device that has no counter
  (a CPU run), as a warning where a GPU's energy was expected but could not be read.

The device is the one the evaluation holds: found in NVML by its UUID (torch's own for the CUDA
device in use, as CUDA_VISIBLE_DEVICES names it), never by index, since NVML numbers all of the
host's GPUs, whichever the job may see. Other processes on the same GPU, outside glueperf, would
be counted too: an evaluation holds its device against other evaluations only.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from glueperf import results

log = logging.getLogger(__name__)

CONFIG_KEY = "evaluation.energy"
POLL_S = 0.001  # how often the counter is read while waiting for it to change
# The longest wait for a change: ten times the slowest update period documented (100 ms).
MAX_WAIT_S = 1.0

T = TypeVar("T")


@dataclass(frozen=True)
class EnergySettings:
    """``evaluation.energy`` of the config (schemas/config.schema.yaml has the same defaults)."""

    enabled: bool = True
    min_updates: int = 10  # update periods that the measured window spans at least
    max_passes: int = 1000  # offline passes run, at most, to make the window that long


@dataclass(frozen=True)
class Energy:
    """GPU energy of one offline pass in joules (``unit``), per 1,000 rows, and the mean power
    over the window measured; NaN where it could not be measured (``note`` says why)."""

    energy_j: float  # joules of one pass: the window's energy / passes
    energy_j_per_1k: float  # joules per 1,000 rows (a sentence or a pair)
    mean_power_w: float  # the window's energy / its seconds
    passes: int  # offline passes in the window (0: none measured)
    window_s: float  # seconds from the counter's update before the first pass to the one after
    update_s: float  # the counter's update period, as observed before the pass
    note: str = ""
    unit: str = "J"


def not_measured(why: str) -> Energy:
    nan = float("nan")
    return Energy(nan, nan, nan, 0, nan, nan, note=why)


class CounterError(Exception):
    """The counter could not be read, or stopped changing: the message says which."""


class EnergyMeter:
    """Measures the GPU energy of a callable's work (see the module docstring). ``read``: the
    counter in millijoules, or None with ``why_not`` saying why there is none."""

    def __init__(
        self,
        read: Callable[[], int] | None,
        why_not: str = "",
        settings: EnergySettings | None = None,
        synchronize: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._read, self.why_not = read, why_not
        self.settings = settings or EnergySettings()
        self._synchronize, self._clock, self._sleep = synchronize, clock, sleep

    def measure(
        self, run: Callable[[], T], rows: int, again: Callable[[], object] | None = None
    ) -> tuple[T, Energy]:
        """``run()``'s result and the energy of its work on ``rows`` rows. ``again``: the same
        work, run as often as the window needs (default ``run``); ``run`` runs once, first,
        and only its own time is the evaluation's. Errors of ``run`` and ``again`` propagate;
        the counter's never do: they empty the figures."""
        again = again or run
        if self._read is None:
            return run(), not_measured(self.why_not)
        try:
            update_s, start_s, start_mj = self._start()
        except CounterError as error:
            return run(), self._failed(str(error))
        result = run()
        self._synchronize()
        passes = 1
        min_window_s = self.settings.min_updates * update_s
        while self._clock() - start_s < min_window_s and passes < self.settings.max_passes:
            again()
            self._synchronize()
            passes += 1
        worked_s = self._clock() - start_s
        if worked_s < min_window_s:
            # What the config asked for (max_passes), not a fault: said, not warned of.
            return result, self._failed(
                f"{passes} offline passes took {worked_s:.3f} s, less than {min_window_s:.3f} s "
                f"({self.settings.min_updates} updates of the energy counter, every "
                f"{1000 * update_s:.0f} ms; {CONFIG_KEY}.max_passes is {self.settings.max_passes})",
                logging.INFO,
            )
        try:
            end_s, end_mj = self._next_update(self._read_counter())
        except CounterError as error:
            return result, self._failed(str(error))
        return result, energy_of(end_mj - start_mj, end_s - start_s, passes, rows, update_s)

    def _start(self) -> tuple[float, float, int]:
        """(update period, time and value of the update the window starts with)."""
        first_s, first_mj = self._next_update(self._read_counter())
        start_s, start_mj = self._next_update(first_mj)
        return start_s - first_s, start_s, start_mj

    def _next_update(self, value: int) -> tuple[float, int]:
        """(time, value) of the counter's first change from ``value``."""
        waited_from = self._clock()
        while True:
            current = self._read_counter()
            now = self._clock()
            if current != value:
                return now, current
            if now - waited_from > MAX_WAIT_S:
                raise CounterError(
                    f"the GPU's energy counter did not change for {MAX_WAIT_S:g} s (it updates "
                    "every 20-100 ms where it works)"
                )
            self._sleep(POLL_S)

    def _read_counter(self) -> int:
        try:
            return self._read()
        except Exception as error:  # NVML's errors, whichever: the figures are empty
            raise CounterError(f"the GPU's energy counter could not be read: {error}") from error

    def _failed(self, why: str, level: int = logging.WARNING) -> Energy:
        energy = not_measured(f"not measured: {why}")
        say_once(energy.note, level)
        return energy


def energy_of(millijoules: int, window_s: float, passes: int, rows: int, update_s: float) -> Energy:
    """The figures of a window of ``passes`` passes over ``rows`` rows."""
    per_1k = millijoules / (passes * rows) if rows else math.nan  # mJ per row = J per 1,000
    return Energy(
        energy_j=millijoules / 1000 / passes,
        energy_j_per_1k=per_1k,
        mean_power_w=millijoules / 1000 / window_s,
        passes=passes,
        window_s=window_s,
        update_s=update_s,
    )


# Reasons already said in this process's log: each once, however many evaluations it runs.
_said: set[str] = set()


def say_once(note: str, level: int) -> None:
    """``note`` ("not measured: why") in the log, unless this process said it already."""
    if note not in _said:
        _said.add(note)
        log.log(level, "GPU energy %s", note)


def open_meter(
    device: str,
    settings: EnergySettings | None = None,
    uuid: str | None = None,
    nvml=None,
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
) -> EnergyMeter:
    """A meter for ``device`` (after CUDA has started on it): NVML's counter of that GPU, found
    by ``uuid`` (default: torch's UUID of the device). ``nvml``: the pynvml module (default:
    imported here; a test passes a fake). Where there is no counter to read, a meter that
    measures nothing, its reason said once in the log."""
    import torch

    settings = settings or EnergySettings()
    kind = torch.device(device).type
    meter = EnergyMeter(None, settings=settings, clock=clock, sleep=sleep)
    if not settings.enabled:
        meter.why_not = f"not measured: {CONFIG_KEY}.enabled is false"
        return meter
    if kind != "cuda":
        meter.why_not = f"not measured: NVML's energy counter is an NVIDIA GPU's, not the {kind}'s"
        say_once(meter.why_not, logging.INFO)
        return meter
    try:
        read = _nvml_counter(nvml, uuid or device_uuid(device))
    except CounterError as error:
        meter.why_not = f"not measured: {error}"
        say_once(meter.why_not, logging.WARNING)
        return meter

    def synchronize() -> None:
        torch.cuda.synchronize(device)

    return EnergyMeter(read, "", settings, synchronize, clock, sleep)


def device_uuid(device: str) -> str:
    """NVML's name of a CUDA device: GPU-<uuid> (or MIG-<uuid>), as nvidia-smi -L shows it and
    as CUDA_VISIBLE_DEVICES names the GPU an evaluation claimed (glueperf/infra/devices.py)."""
    import torch

    try:
        uuid = str(torch.cuda.get_device_properties(device).uuid)
    except Exception as error:  # energy is never worth an evaluation
        raise CounterError(f"the UUID of {device} is unknown: {error}") from error
    return uuid if uuid.startswith(("GPU-", "MIG-")) else f"GPU-{uuid}"


def _nvml_counter(nvml, uuid: str) -> Callable[[], int]:
    """The energy counter of GPU ``uuid`` as a function; read once here, so that a GPU without
    one is known before any pass."""
    if nvml is None:
        try:
            import pynvml as nvml
        except ImportError as error:
            raise CounterError(
                "nvidia-ml-py (module pynvml) is not installed; it comes with requirements.txt"
            ) from error
    try:
        nvml.nvmlInit()
        handle = nvml.nvmlDeviceGetHandleByUUID(uuid)
    except Exception as error:  # NVMLError mostly; whichever, energy is never worth an evaluation
        raise CounterError(f"NVML could not open GPU {uuid}: {error}") from error

    def read() -> int:
        return nvml.nvmlDeviceGetTotalEnergyConsumption(handle)

    try:
        read()
    except Exception as error:
        raise CounterError(
            f"GPU {uuid} reports no energy counter (NVML: {error}; GPUs before Volta and MIG "
            "instances have none)"
        ) from error
    return read


def energy_fields(energy: Energy) -> results.Energy:
    """The metrics row's energy columns (glueperf/results.py)."""
    return results.Energy(
        energy_j=energy.energy_j,
        energy_j_per_1k=energy.energy_j_per_1k,
        mean_power_w=energy.mean_power_w,
        energy_passes=energy.passes,
        energy_window_s=energy.window_s,
        energy_note=energy.note,
    )
