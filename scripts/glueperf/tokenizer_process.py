"""The engine's tokenizer in a process of its own, for large runs on a GPU (glueperf/engine.py).

Why: in one process, the tokenizer's thread and the main thread, which keeps the GPU fed, share
the GIL. Handing each chunk's texts to the Rust tokenizer, making its encodings' Python objects,
reading their ids and dropping them all hold it: in a bfloat16 run of SST-2 train about 0.2 s of
0.6, while the GPU waited for the main thread (BENCHMARKS.md). Here a child process does all of
that and sends each chunk's token ids as raw int64 bytes; the main thread only wraps them.

The child imports the standard library and ``tokenizers`` only (no numpy, no torch), so it
starts in a few hundredths of a second; it encodes the next chunk (the GIL released, every core)
while it flattens and sends the one before. It exits when its parent closes its input. An
evaluation starts one before it loads its model (``start_spare``), which the engine's run then
takes, started: on a GPU host its start was about 0.09 s of a bfloat16 run of 0.64 s.

Wire format, each way over the child's standard streams: a message is an 8-byte length and a
pickle. To the child: first the tokenizer (``Tokenizer.to_str()``), its ``max_length`` and
whether the model takes token type ids (given for pairs only); then per chunk a (texts, pairs or
None) tuple, or None to end a run. From the child: READY once it has imported, then per chunk
(n_truncated, seconds, lengths, ids, types or None), the arrays as bytes of native int64, or
("error", message); None once a run's chunks are all answered.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from array import array
from itertools import chain
from pathlib import Path

LENGTH = struct.Struct("<Q")
PIPE_BYTES = 1 << 20
# The package's parent folder: the child imports this module from it, wherever the caller runs.
SCRIPTS = str(Path(__file__).resolve().parents[1])
# The child's first message: imported, ready for its tokenizer.
READY = "ready"
# At most one child started ahead, waiting for the next TokenizerProcess (``start_spare``).
_spare: list[subprocess.Popen] = []
_spare_lock = threading.Lock()


def int64_array(values, count: int) -> array:
    return array("q", values)


def flat_encodings(encodings, with_types: bool, max_length: int, int64s=int64_array) -> tuple:
    """(lengths, ids, token type ids or None, number of truncated texts) of the Rust tokenizer's
    encodings, the texts' ids one after another, each array made by ``int64s(values, count)``
    (here ``array('q')``: this process imports no numpy; the engine's own threads pass numpy's
    ``fromiter``, faster). Each encoding's ids are a list that is gone at once: nothing for
    Python's garbage collector to walk again and again, as lists that live on make it."""
    lengths = list(map(len, encodings))
    total = sum(lengths)

    def flat(field):
        return int64s(chain.from_iterable(getattr(e, field) for e in encodings), total)

    # Only a text cut to exactly max_length can have been truncated: ask just those.
    cut = (i for i, n in enumerate(lengths) if n == max_length)
    n_truncated = sum(1 for i in cut if encodings[i].overflowing)
    types = flat("type_ids") if with_types else None
    return int64s(lengths, len(lengths)), flat("ids"), types, n_truncated


def send(stream, item) -> None:
    data = pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def receive(stream):
    """The next message, or EOFError where the other side has gone."""
    head = stream.read(LENGTH.size)
    if len(head) < LENGTH.size:
        raise EOFError
    size = LENGTH.unpack(head)[0]
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class TokenizerProcess:
    """A child process that tokenizes chunks of texts as ``ChunkTokenizer`` does in-process: the
    same tokenizer (its JSON), truncation and flattening (``flat_encodings``)."""

    def __init__(self, tokenizer_json: str, max_length: int, takes_token_types: bool):
        self.process = take_spare() or spawn()
        send(self.process.stdin, (tokenizer_json, max_length, takes_token_types))

    @property
    def pid(self) -> int:
        return self.process.pid

    def chunks(self, chunks):
        """For each (texts, pairs or None) of ``chunks``, in order: (lengths, ids, types or None,
        n_truncated, seconds the child spent on it), the arrays as bytes of int64. The chunks
        are sent by a thread of their own while the answers are read."""
        failed = []

        def write():
            try:
                for chunk in chunks:
                    send(self.process.stdin, chunk)
                send(self.process.stdin, None)
            except BaseException as error:  # the child has gone: the reader says so
                failed.append(error)

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        finished = False
        try:
            while True:
                try:
                    answer = receive(self.process.stdout)
                except EOFError:
                    raise RuntimeError(
                        f"the tokenizer's process (pid {self.pid}) ended "
                        f"(exit status {self.process.poll()}) before its last chunk"
                        + (f": {failed[0]}" if failed else "")
                    ) from None
                if answer is None:
                    finished = True
                    return
                if answer == READY:  # its first message, once
                    continue
                if answer[0] == "error":
                    raise RuntimeError(f"the tokenizer's process failed: {answer[1]}")
                n_truncated, seconds, lengths, ids, types = answer
                yield lengths, ids, types, n_truncated, seconds
        finally:
            if not finished:  # left mid-run: the child may be blocked on answers nobody reads
                self.kill()
            writer.join()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def close(self) -> None:
        """End the child: its input closed, it exits; killed if it has not within a second."""
        if self.process.poll() is None:
            try:
                self.process.stdin.close()
                self.process.wait(timeout=1.0)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()
        discard(self.process)


def spawn() -> subprocess.Popen:
    """A new child, not yet told its tokenizer (OSError where it cannot be started)."""
    process = subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {SCRIPTS!r}); {CHILD}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    # A chunk's ids (8,192 texts: about 1 MB) in one read, not sixteen of the default 64 KiB,
    # each of which the reading thread takes the GIL from the engine's main thread for.
    for stream in (process.stdin, process.stdout):
        with contextlib.suppress(AttributeError, OSError):  # Linux only; its limit may be lower
            fcntl.fcntl(stream.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    return process


def start_spare() -> None:
    """Start a child now, for the next TokenizerProcess to take: its interpreter and imports
    then overlap whatever comes before the run (an evaluation's model load). At most one waits;
    unused, it ends with this process (its input closes). OSError where it cannot be started."""
    with _spare_lock:
        if _spare and _spare[0].poll() is None:
            return
        for process in _spare:
            discard(process)
        _spare[:] = [spawn()]


def spare_ready(timeout: float) -> bool:
    """Whether the waiting child has imported (its READY there to read), within ``timeout``
    seconds; False without one."""
    with _spare_lock:
        process = _spare[0] if _spare else None
    if process is None:
        return False
    readable, _, _ = select.select([process.stdout], [], [], timeout)
    return bool(readable)


def take_spare() -> subprocess.Popen | None:
    """The waiting child, if one is alive (it is no one's spare any more)."""
    with _spare_lock:
        process = _spare.pop() if _spare else None
    if process is not None and process.poll() is not None:
        discard(process)
        return None
    return process


def discard(process: subprocess.Popen) -> None:
    """A child that has ended: its pipes closed (input unflushed: nobody reads it)."""
    with contextlib.suppress(OSError):
        process.stdin.close()
    process.stdout.close()


def serve(source, sink) -> None:
    """The child's loop: READY once imported, the tokenizer from the first message, then runs of
    chunks until its input ends. The next chunk is encoded in a thread (the Rust tokenizer
    releases the GIL) while this one is flattened and sent."""
    import queue

    from tokenizers import Tokenizer

    send(sink, READY)
    tokenizer_json, max_length, takes_token_types = receive(source)
    tokenizer = Tokenizer.from_str(tokenizer_json)
    requests: queue.Queue = queue.Queue(maxsize=1)
    encoded: queue.Queue = queue.Queue(maxsize=1)

    def encode():
        while True:
            chunk = requests.get()
            if chunk is None or isinstance(chunk, EOFError):
                encoded.put(chunk)
                if isinstance(chunk, EOFError):
                    return
                continue
            texts, pairs = chunk
            began = time.perf_counter()
            try:
                inputs = texts if pairs is None else list(zip(texts, pairs, strict=True))
                encodings = tokenizer.encode_batch_fast(inputs)
                with_types = pairs is not None and takes_token_types
                encoded.put((encodings, with_types, time.perf_counter() - began))
            except Exception as error:
                encoded.put(error)

    def read():
        while True:
            try:
                requests.put(receive(source))
            except EOFError as end:
                requests.put(end)
                return

    threading.Thread(target=encode, daemon=True).start()
    threading.Thread(target=read, daemon=True).start()
    while not isinstance(item := encoded.get(), EOFError):
        if item is None:
            send(sink, None)
        elif isinstance(item, Exception):
            send(sink, ("error", f"{type(item).__name__}: {item}"))
        else:
            encodings, with_types, seconds = item
            began = time.perf_counter()
            lengths, ids, types, n_truncated = flat_encodings(encodings, with_types, max_length)
            del encodings
            seconds += time.perf_counter() - began
            types = None if types is None else types.tobytes()
            send(sink, (n_truncated, seconds, lengths.tobytes(), ids.tobytes(), types))


def main() -> None:
    # Binary standard streams; a parent that has gone closes them, which ends the loop.
    serve(sys.stdin.buffer, sys.stdout.buffer)
    os._exit(0)  # without waiting for the daemon threads blocked on the closed input


CHILD = "from glueperf.tokenizer_process import main; main()"
