"""TFRecord files and ``tf.train.Example`` messages, read without TensorFlow.

BAIR robot pushing (book ch. 1) ships as TFRecord files of ``tf.train.Example``
protocol buffers. This module reads them with NumPy alone.

Record framing, as written by TensorFlow's ``RecordWriter``::

    uint64 length                 little-endian
    uint32 masked CRC32C(length)  of the 8 length bytes
    bytes  data[length]           one serialized message
    uint32 masked CRC32C(data)

where CRC32C is the Castagnoli CRC (reflected polynomial ``0x82F63B78``, initial
value and final XOR ``0xFFFFFFFF``) and ``mask(c) = rotate_right(c, 15) +
0xA282EAD8`` modulo 2**32.

Message schema (``tensorflow/core/example/{example,feature}.proto``), every field
with number 1 unless noted::

    Example   { Features features }
    Features  { map<string, Feature> feature }   # entries: key = 1, value = 2
    Feature   { oneof: BytesList bytes_list = 1, FloatList float_list = 2,
                       Int64List int64_list = 3 }
    BytesList { repeated bytes value }
    FloatList { repeated float value }           # packed (or not)
    Int64List { repeated int64 value }           # packed varints (or not)

Only the wire format needed for these messages is decoded: varints (type 0),
64-bit (1), length-delimited (2) and 32-bit (5) fields; unknown fields are skipped.
"""

from __future__ import annotations

import os
import struct
from functools import lru_cache
from typing import Iterable, Iterator

import numpy as np

_POLY = 0x82F63B78  # CRC-32C (Castagnoli), reflected
_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF
# Inputs longer than this are checksummed in parallel chunks with NumPy.
_SMALL = 16384


class TFRecordError(ValueError):
    """A TFRecord file or an Example message is truncated or corrupt."""


def _byte_table() -> np.ndarray:
    """(256,) uint32: the register update of one input byte (zero register)."""
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        table = np.where(table & 1, (table >> 1) ^ np.uint32(_POLY), table >> 1)
    return table.astype(np.uint32)


_TABLE = _byte_table()
_TABLE_LIST = [int(v) for v in _TABLE]


def _register_bytes(register: int, data) -> int:
    """Feed ``data`` into a (raw, unmasked) CRC register, one byte at a time."""
    table = _TABLE_LIST
    for byte in data:
        register = table[(register ^ byte) & 0xFF] ^ (register >> 8)
    return register


def _apply(operator: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Apply a GF(2) linear map, given by the images (32,) of the 32 basis bits."""
    out = np.zeros(values.shape, dtype=np.uint32)
    for bit in range(32):
        out ^= ((values >> np.uint32(bit)) & np.uint32(1)) * operator[bit]
    return out


@lru_cache(maxsize=64)
def _zeros_operator(n_bytes: int) -> np.ndarray:
    """The linear map of the register that feeds ``n_bytes`` zero bytes."""
    basis = np.uint32(1) << np.arange(32, dtype=np.uint32)
    power = _TABLE[basis & np.uint32(0xFF)] ^ (basis >> np.uint32(8))  # one byte
    result = basis.copy()
    while n_bytes:
        if n_bytes & 1:
            result = _apply(power, result)
        power = _apply(power, power)
        n_bytes >>= 1
    return result


def _register_chunked(register: int, data: np.ndarray) -> int:
    """Feed ``data`` (at least 4 bytes) into a register, in parallel chunks.

    The register update is linear over GF(2). Starting from ``register`` is the
    same as starting from zero with ``register`` XOR-ed into the first four data
    bytes (little-endian), and leading zero bytes leave a zero register unchanged.
    So the data is zero-padded in front and cut into ``K`` chunks of ``L`` bytes
    processed side by side; two consecutive pieces ``a, b`` then combine as
    ``zeros(len(b))(reg(a)) ^ reg(b)``, pairwise, in ``log2 K`` levels.
    """
    n_chunks = int(min(8192, max(1, data.size // 128)))
    length = -(-data.size // n_chunks)
    padded = np.zeros(n_chunks * length, dtype=np.uint8)
    start = padded.size - data.size
    padded[start:] = data
    padded[start:start + 4] ^= np.frombuffer(struct.pack("<I", register), np.uint8)
    columns = np.ascontiguousarray(padded.reshape(n_chunks, length).T)  # (L, K)
    reg = np.zeros(n_chunks, dtype=np.uint32)
    low, eight = np.uint32(0xFF), np.uint32(8)
    for column in columns:
        reg = _TABLE[(reg ^ column) & low] ^ (reg >> eight)
    operator = _zeros_operator(length)
    while reg.size > 1:
        if reg.size % 2:
            reg = np.concatenate([np.zeros(1, np.uint32), reg])
        reg = _apply(operator, reg[0::2]) ^ reg[1::2]
        operator = _apply(operator, operator)
    return int(reg[0])


def crc32c(data, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``crc`` like ``zlib.crc32``.

    ``crc32c(b, crc32c(a)) == crc32c(a + b)``. Long inputs are processed in
    parallel chunks with NumPy.

    Parameters
    ----------
    data : bytes-like
        The bytes to checksum.
    crc : int
        The checksum of the preceding bytes (0 to start).

    Returns
    -------
    int
        The unsigned 32-bit checksum.
    """
    view = memoryview(data).cast("B")
    register = (crc ^ _U32) & _U32
    if view.nbytes <= _SMALL:
        return _register_bytes(register, view) ^ _U32
    return _register_chunked(register, np.frombuffer(view, dtype=np.uint8)) ^ _U32


def masked_crc32c(data) -> int:
    """The masked CRC-32C that TFRecord files store (rotate right 15, add delta)."""
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & _U32) + _MASK_DELTA) & _U32


def read_records(path: str | os.PathLike, verify: bool = True) -> Iterator[bytes]:
    """Yield the records of a TFRecord file, checking lengths and checksums.

    Parameters
    ----------
    path : path-like
        The (uncompressed) TFRecord file.
    verify : bool
        Check the CRC of every record's data (the length CRC is always checked).

    Raises
    ------
    TFRecordError
        On a short read (truncated file) or a checksum mismatch, naming the file
        and the byte offset of the bad record.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        offset = 0
        while True:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise TFRecordError(f"{path}: truncated record header at byte {offset}")
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != length_crc:
                raise TFRecordError(f"{path}: corrupt record length at byte {offset} "
                                    "(CRC mismatch)")
            if offset + 16 + length > size:
                raise TFRecordError(
                    f"{path}: truncated record at byte {offset}: {length} data bytes "
                    f"announced, {max(0, size - offset - 16)} present")
            data, (data_crc,) = f.read(length), struct.unpack("<I", f.read(4))
            if verify and masked_crc32c(data) != data_crc:
                raise TFRecordError(f"{path}: corrupt record data at byte {offset} "
                                    "(CRC mismatch)")
            offset += 16 + length
            yield data


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Decode the base-128 varint at ``pos``; return (value, next position)."""
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise TFRecordError("truncated varint in a protobuf message")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise TFRecordError("varint longer than 10 bytes in a protobuf message")


_FIXED = {1: 8, 5: 4}


def _fields(buf: memoryview) -> Iterator[tuple[int, int, object]]:
    """Yield ``(field number, wire type, value)`` for each field of a message.

    Varints are ints; the other wire types give memoryview slices of ``buf``.
    """
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2 or wire in _FIXED:
            size = _FIXED[wire] if wire in _FIXED else None
            if size is None:
                size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise TFRecordError(f"field {number} runs past the end of its message")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise TFRecordError(f"unsupported protobuf wire type {wire} (field "
                                f"{number})")
        yield number, wire, value


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _parse_list(buf: memoryview, kind: int):
    """The values of a BytesList (1), FloatList (2) or Int64List (3)."""
    if kind == 1:
        return [bytes(v) for n, w, v in _fields(buf) if n == 1 and w == 2]
    pieces = []
    for number, wire, value in _fields(buf):
        if number != 1:
            continue
        if kind == 2 and wire in (2, 5):
            if len(value) % 4:
                raise TFRecordError("packed FloatList length is not a multiple of 4")
            pieces.extend(np.frombuffer(value, "<f4").tolist())
        elif kind == 3 and wire == 0:
            pieces.append(_signed64(value))
        elif kind == 3 and wire == 2:
            pos = 0
            while pos < len(value):
                item, pos = _varint(value, pos)
                pieces.append(_signed64(item))
        else:
            raise TFRecordError(f"unexpected wire type {wire} in a value list")
    return np.array(pieces, dtype=np.float32 if kind == 2 else np.int64)


def _parse_feature(buf: memoryview):
    """A Feature message: its (last) value list, ``[]`` if it holds none."""
    values = []
    for number, wire, value in _fields(buf):
        if number in (1, 2, 3) and wire == 2:
            values = _parse_list(value, number)
    return values


def parse_example(data, keys: Iterable[str] | None = None) -> dict:
    """Decode a serialized ``tf.train.Example``.

    Parameters
    ----------
    data : bytes-like
        One record of a TFRecord file.
    keys : iterable of str, optional
        Decode only these features (the others are skipped unparsed).

    Returns
    -------
    dict
        Feature name -> ``list[bytes]`` (BytesList), ``np.ndarray`` float32
        (FloatList) or int64 (Int64List).
    """
    wanted = None if keys is None else set(keys)
    features = {}
    for number, wire, body in _fields(memoryview(data).cast("B")):
        if number != 1 or wire != 2:
            continue
        for entry_number, entry_wire, entry in _fields(body):
            if entry_number != 1 or entry_wire != 2:
                continue
            name, value = "", memoryview(b"")
            for n, w, v in _fields(entry):
                if n == 1 and w == 2:
                    name = bytes(v).decode("utf-8", errors="replace")
                elif n == 2 and w == 2:
                    value = v
            if wanted is None or name in wanted:
                features[name] = _parse_feature(value)
    return features


def read_examples(path: str | os.PathLike, keys: Iterable[str] | None = None,
                  verify: bool = True) -> Iterator[dict]:
    """Yield the decoded Examples of a TFRecord file (see :func:`parse_example`)."""
    keys = None if keys is None else list(keys)
    for index, record in enumerate(read_records(path, verify=verify)):
        try:
            yield parse_example(record, keys)
        except TFRecordError as err:
            raise TFRecordError(f"{path}: record {index}: {err}") from None
