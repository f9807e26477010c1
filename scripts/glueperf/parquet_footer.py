"""The key-value metadata of a parquet file (where the Hub's files keep their ClassLabel names),
read from the file's footer alone, with the standard library.

The start-up checks (glueperf/preflight.py) need a dataset file's own label names on every
Snakemake invocation, no-op reruns included: importing pyarrow for them would cost about 0.2 s
each time, reading the footer this way well under a millisecond. The footer is a Thrift struct
(FileMetaData) in Thrift's compact protocol; its field 5 is the list of key-value pairs.
"""

from __future__ import annotations

import os
import stat
import struct

MAGIC = b"PAR1"
KEY_VALUE_METADATA = 5  # FileMetaData's field id
# Compact protocol types.
TRUE, FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(1, 13)
# A larger footer (a file of hundreds of row groups) is not read here: parsing it in Python
# would take more than 0.1 s. Its label names are then checked by the evaluation, as it reads
# the file.
MAX_FOOTER = 256 << 10


def key_value_metadata(path) -> dict[bytes, bytes] | None:
    """The file's key-value metadata ({} when it has none); None when the file is not a parquet
    file that this reader understands (missing, not a regular file, short, encrypted or malformed
    footer) or its footer is over MAX_FOOTER bytes."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None  # opened, a FIFO would wait for a writer and /dev/zero never end
        with open(path, "rb") as stream:
            stream.seek(0, 2)
            size = stream.tell()
            if size < 12:
                return None
            stream.seek(size - 8)
            length_bytes, magic = struct.unpack("<I4s", stream.read(8))
            if magic != MAGIC or not 0 < length_bytes <= min(MAX_FOOTER, size - 12):
                return None
            stream.seek(size - 8 - length_bytes)
            footer = stream.read(length_bytes)
        return _Reader(footer).file_key_values()
    except (OSError, IndexError, ValueError, struct.error):
        return None


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        result = shift = 0
        while True:
            value = self.byte()
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ValueError("varint too long")

    def binary(self) -> bytes:
        length = self.varint()
        if self.pos + length > len(self.data):
            raise ValueError("binary beyond the footer")
        value = self.data[self.pos : self.pos + length]
        self.pos += length
        return value

    def field(self, last_id: int) -> tuple[int, int]:
        """(field id, type) of the next field of a struct; type 0 at its end."""
        header = self.byte()
        kind = header & 0x0F
        if kind == 0:
            return 0, 0
        delta = header >> 4
        if delta:
            return last_id + delta, kind
        zigzag = self.varint()
        return (zigzag >> 1) ^ -(zigzag & 1), kind

    def list_header(self) -> tuple[int, int]:
        header = self.byte()
        size = header >> 4
        return (self.varint() if size == 15 else size), header & 0x0F

    def skip(self, kind: int, in_list: bool = False) -> None:
        if kind in (TRUE, FALSE):
            self.pos += in_list  # a field's boolean is in its header, a list's takes a byte
        elif kind == BYTE:
            self.pos += 1
        elif kind in (I16, I32, I64):
            self.varint()
        elif kind == DOUBLE:
            self.pos += 8
        elif kind == BINARY:
            self.binary()
        elif kind in (LIST, SET):
            size, element = self.list_header()
            for _ in range(size):
                self.skip(element, in_list=True)
        elif kind == MAP:
            size = self.varint()
            if size:
                types = self.byte()
                for _ in range(size):
                    self.skip(types >> 4, in_list=True)
                    self.skip(types & 0x0F, in_list=True)
        elif kind == STRUCT:
            last = 0
            while True:
                last, field_kind = self.field(last)
                if field_kind == 0:
                    return
                self.skip(field_kind)
        else:
            raise ValueError(f"unknown compact type {kind}")
        if self.pos > len(self.data):
            raise ValueError("value beyond the footer")

    def file_key_values(self) -> dict[bytes, bytes]:
        last = 0
        while True:
            last, kind = self.field(last)
            if kind == 0:
                return {}
            if last == KEY_VALUE_METADATA and kind == LIST:
                return self.key_values()
            self.skip(kind)

    def key_values(self) -> dict[bytes, bytes]:
        size, element = self.list_header()
        if element != STRUCT:
            raise ValueError("key_value_metadata is not a list of structs")
        pairs = {}
        for _ in range(size):
            key, value, last = None, b"", 0
            while True:
                last, kind = self.field(last)
                if kind == 0:
                    break
                if last in (1, 2) and kind == BINARY:
                    if last == 1:
                        key = self.binary()
                    else:
                        value = self.binary()
                else:
                    self.skip(kind)
            if key is not None:
                pairs[key] = value
        return pairs
