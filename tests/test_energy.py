"""GPU energy of the offline pass (glueperf.energy), with a fake NVML whose counter integrates a
known power on a fake clock: the window aligned to the counter's updates, a short pass repeated,
and every way of not measuring giving empty figures and its reason, said once."""

from __future__ import annotations

import logging
import math
import sys

import pytest
import yaml

from conftest import REPO
from glueperf import energy
from glueperf.energy import (
    EnergyMeter,
    EnergySettings,
    energy_fields,
    open_meter,
)

UUID = "GPU-5a1c3f1e-0d0b-4c4e-9e8f-0123456789ab"
PERIOD_US = 50_000  # the fake counter updates every 50 ms
IDLE_W, BUSY_W = 50, 400


class FakeGPU:
    """A clock in whole microseconds and a GPU drawing IDLE_W, or BUSY_W while a pass runs;
    its counter holds the energy (mJ) up to its last update, as NVML's does."""

    def __init__(self, start_us: int = 3_000):
        self.now_us = start_us
        self.busy: list[tuple[int, int]] = []
        self.reads = 0

    def clock(self) -> float:
        return self.now_us / 1e6

    def sleep(self, seconds: float) -> None:
        self.now_us += round(seconds * 1e6)

    def work(self, seconds: float) -> None:
        """A pass: busy for ``seconds``."""
        start = self.now_us
        self.now_us += round(seconds * 1e6)
        self.busy.append((start, self.now_us))

    def energy_mj(self, at_us: int) -> int:
        busy_us = sum(max(0, min(end, at_us) - start) for start, end in self.busy)
        return (IDLE_W * at_us + (BUSY_W - IDLE_W) * busy_us) // 1000  # W x us = uJ

    def counter(self) -> int:
        self.reads += 1
        return self.energy_mj(self.now_us // PERIOD_US * PERIOD_US)


class FakeNVMLError(Exception):
    pass


class FakeNVML:
    """What glueperf.energy uses of pynvml; ``fail``: the call that raises, with its message.
    No ``nvmlDeviceGetHandleByIndex``: a GPU is found by its UUID only."""

    def __init__(self, gpu: FakeGPU, fail: dict[str, str] | None = None):
        self.gpu, self.fail, self.opened = gpu, fail or {}, []

    def _maybe_fail(self, name: str) -> None:
        if name in self.fail:
            raise FakeNVMLError(self.fail[name])

    def nvmlInit(self):
        self._maybe_fail("nvmlInit")

    def nvmlDeviceGetHandleByUUID(self, uuid):
        self._maybe_fail("nvmlDeviceGetHandleByUUID")
        self.opened.append(uuid)
        return ("handle", uuid)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        assert handle == ("handle", UUID)
        self._maybe_fail("nvmlDeviceGetTotalEnergyConsumption")
        return self.gpu.counter()


@pytest.fixture(autouse=True)
def nothing_said_yet(monkeypatch):
    """Each test starts as a fresh job would: no reason said in its log yet."""
    monkeypatch.setattr(energy, "_said", set())


def meter_on(gpu: FakeGPU, settings: EnergySettings | None = None, read=None) -> EnergyMeter:
    return EnergyMeter(read or gpu.counter, "", settings, clock=gpu.clock, sleep=gpu.sleep)


def measure(meter: EnergyMeter, gpu: FakeGPU, pass_s: float, rows: int):
    """(result, energy, passes run) of an offline pass of ``pass_s`` seconds."""
    calls = []

    def run():
        calls.append("run")
        gpu.work(pass_s)
        return "predictions"

    def again():
        calls.append("again")
        gpu.work(pass_s)

    result, measured = meter.measure(run, rows, again)
    return result, measured, calls


def test_a_long_pass_is_measured_between_two_counter_updates():
    """The counter changes at 50 and 100 ms (its period: 50 ms); the pass runs 1.2 s from the
    update at 100 ms; the window ends at the next update, 1.35 s: 1.25 s of which 1.2 s busy."""
    gpu = FakeGPU()
    result, measured, calls = measure(meter_on(gpu), gpu, 1.2, rows=1000)
    assert result == "predictions" and calls == ["run"]
    joules = (IDLE_W * 1.25 + (BUSY_W - IDLE_W) * 1.2) / 1  # 482.5 J: 2.5 J of idle tail
    assert measured.energy_j == joules and measured.passes == 1 and measured.unit == "J"
    assert measured.energy_j_per_1k == joules  # 1,000 rows
    assert measured.window_s == pytest.approx(1.25, rel=1e-12)
    assert measured.update_s == pytest.approx(0.05, rel=1e-12)
    assert measured.mean_power_w == pytest.approx(joules / 1.25, rel=1e-12)
    assert measured.note == ""


def test_a_short_pass_is_repeated_until_the_window_spans_ten_updates():
    """0.12 s passes against 10 updates of 50 ms: five passes (0.6 s) from 100 ms, the window
    ends at the update at 750 ms; the figures are per pass."""
    gpu = FakeGPU()
    result, measured, calls = measure(meter_on(gpu), gpu, 0.12, rows=100)
    assert result == "predictions" and calls == ["run"] + ["again"] * 4
    window_j = IDLE_W * 0.65 + (BUSY_W - IDLE_W) * 0.6  # 242.5 J
    assert measured.passes == 5
    assert measured.energy_j == window_j / 5
    assert measured.energy_j_per_1k == window_j * 1000 / (5 * 100)
    assert measured.window_s == pytest.approx(0.65, rel=1e-12)
    assert measured.mean_power_w == pytest.approx(window_j / 0.65, rel=1e-12)
    fields = energy_fields(measured).values()
    assert fields["energy_passes"] == 5 and fields["energy_j"] == measured.energy_j
    assert fields["energy_note"] == ""


def test_a_window_still_too_short_after_max_passes_is_empty(caplog):
    gpu = FakeGPU()
    settings = EnergySettings(max_passes=2)
    with caplog.at_level(logging.INFO, logger="glueperf"):
        result, measured, calls = measure(meter_on(gpu, settings), gpu, 0.12, rows=100)
    assert result == "predictions" and calls == ["run", "again"]
    assert_empty(measured, "2 offline passes took 0.240 s, less than 0.500 s")
    assert "evaluation.energy.max_passes is 2" in measured.note
    assert [r.levelname for r in caplog.records] == ["INFO"]  # asked for: not a warning


def assert_empty(measured, reason: str) -> None:
    fields = energy_fields(measured).values()
    numbers = ("energy_j", "energy_j_per_1k", "mean_power_w", "energy_window_s")
    assert all(math.isnan(fields[name]) for name in numbers), fields
    assert fields["energy_passes"] == 0
    assert fields["energy_note"].startswith("not measured: ") and reason in fields["energy_note"]


def test_a_cpu_has_no_counter_and_says_so_once_at_info(caplog):
    nvml = FakeNVML(FakeGPU(), fail={"nvmlInit": "must not be called"})
    with caplog.at_level(logging.INFO, logger="glueperf"):
        for _ in range(2):  # two evaluations in one process
            meter = open_meter("cpu", nvml=nvml)
            result, measured = meter.measure(lambda: "predictions", 10)
            assert result == "predictions"
            assert_empty(measured, "NVML's energy counter is an NVIDIA GPU's, not the cpu's")
    assert [r.levelname for r in caplog.records] == ["INFO"]


def test_disabled_measures_nothing():
    meter = open_meter("cuda", EnergySettings(enabled=False), uuid=UUID, nvml=None)
    assert_empty(meter.measure(lambda: None, 10)[1], "evaluation.energy.enabled is false")


@pytest.mark.parametrize(
    "fail, reason",
    [
        ({"nvmlInit": "Driver Not Loaded"}, f"NVML could not open GPU {UUID}: Driver Not Loaded"),
        ({"nvmlDeviceGetHandleByUUID": "Not Found"}, "could not open GPU"),
        (
            {"nvmlDeviceGetTotalEnergyConsumption": "Not Supported"},
            f"GPU {UUID} reports no energy counter (NVML: Not Supported",
        ),
    ],
)
def test_nvml_errors_give_empty_figures_and_a_warning(fail, reason, caplog):
    with caplog.at_level(logging.INFO, logger="glueperf"):
        meter = open_meter("cuda", uuid=UUID, nvml=FakeNVML(FakeGPU(), fail))
        result, measured = meter.measure(lambda: "predictions", 10)
    assert result == "predictions"
    assert_empty(measured, reason)
    assert [r.levelname for r in caplog.records] == ["WARNING"]


def test_a_device_whose_uuid_torch_cannot_tell_gives_the_reason():
    """Here torch has no CUDA: the device's UUID is unknown, which empties the figures rather
    than failing the evaluation."""
    meter = open_meter("cuda", nvml=FakeNVML(FakeGPU()))
    assert_empty(meter.measure(lambda: None, 10)[1], "the UUID of cuda is unknown")


def test_without_nvidia_ml_py_the_reason_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    meter = open_meter("cuda", uuid=UUID)
    assert_empty(meter.measure(lambda: None, 10)[1], "nvidia-ml-py (module pynvml) is not")


def test_the_gpu_is_found_by_its_uuid_and_measured(monkeypatch):
    """open_meter with a fake NVML: the handle of the UUID given, the pass measured on it (the
    device synchronized after each pass: a no-op here, where torch has no CUDA)."""
    synchronized = []
    monkeypatch.setattr("torch.cuda.synchronize", lambda device=None: synchronized.append(device))
    gpu = FakeGPU()
    nvml = FakeNVML(gpu)
    meter = open_meter("cuda", uuid=UUID, nvml=nvml, clock=gpu.clock, sleep=gpu.sleep)
    result, measured, _ = measure(meter, gpu, 1.2, rows=1000)
    assert nvml.opened == [UUID] and synchronized == ["cuda"]
    assert measured.energy_j == IDLE_W * 1.25 + (BUSY_W - IDLE_W) * 1.2


def test_a_counter_that_fails_or_stops_mid_measure_empties_the_figures(caplog):
    gpu = FakeGPU()

    def failing():
        if gpu.reads > 60:
            raise FakeNVMLError("GPU is lost")
        return gpu.counter()

    with caplog.at_level(logging.WARNING, logger="glueperf"):
        result, measured, _ = measure(meter_on(gpu, read=failing), gpu, 1.2, rows=10)
    assert result == "predictions"
    assert_empty(measured, "could not be read: GPU is lost")
    frozen = FakeGPU()
    result, measured, calls = measure(meter_on(frozen, read=lambda: 7), frozen, 1.2, rows=10)
    assert result == "predictions" and calls == ["run"]
    assert_empty(measured, "did not change for 1 s")
    assert len(caplog.records) == 2


def test_the_settings_defaults_are_the_schemas():
    schema = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())
    node = schema["properties"]["evaluation"]["properties"]["energy"]["properties"]
    assert {key: value["default"] for key, value in node.items()} == vars(EnergySettings())
