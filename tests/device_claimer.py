"""Claim a device from a fake pool as an evaluation would, hold it for a while, and say when.

    python tests/device_claimer.py RECORD N_GPUS SECONDS [DEVICE]

Claims DEVICE (default auto) from a pool of N_GPUS fake GPUs (0: a host without GPUs) in the
lock directory $GLUEPERF_LOCK_DIR, appends {"pid", "device", "start"} to RECORD once it holds
it, sleeps SECONDS, appends {"pid", "device", "end"} and exits (the kernel then frees the lock).
Its waiting messages go to stderr. Used by tests/test_devices.py.
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from glueperf.infra.devices import Gpu, claim_device  # noqa: E402


def fake_pool(n: int) -> list[Gpu]:
    return [Gpu(i, f"GPU-fake-{i:04d}", "Fake GPU", f"00000000:{i:02X}:00.0") for i in range(n)]


def record(path: str, **event) -> None:
    with open(path, "a") as stream:  # one short line per write: appends do not interleave
        stream.write(json.dumps({"pid": os.getpid(), **event}) + "\n")


def main(path: str, n_gpus: str, seconds: str, device: str = "auto") -> None:
    env = dict(os.environ)
    claim = claim_device(
        device,
        job=f"claimer {os.getpid()}",
        gpus=lambda: fake_pool(int(n_gpus)),
        env=env,
        poll_s=0.05,
    )
    name = claim.held.device.lock
    record(path, device=name, start=time.time(), visible=env.get("CUDA_VISIBLE_DEVICES"))
    time.sleep(float(seconds))
    record(path, device=name, end=time.time())


if __name__ == "__main__":
    main(*sys.argv[1:])
