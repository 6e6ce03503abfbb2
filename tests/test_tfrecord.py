"""TFRecord reader without TensorFlow: CRC32C, record framing, Example decoding.

The module also holds a minimal TFRecord writer (protobuf encoder + framing),
used here and by ``test_data_bair.py`` to write files in the real format.
"""
import struct

import numpy as np
import pytest

from srvp.data import tfrecord

# A TFRecord file written by TensorFlow 2.21 (tf.io.TFRecordWriter) holding two
# tf.train.Example messages: the first with the features below, the second empty.
GOLDEN_HEX = (
    "a10000000000000002e3241b0a9e010a090a05656d70747912000a200a08302f616374696f6e"
    "121412120a100000003f0000a0bf000040406f12833a0a300a14302f696d6167655f61757831"
    "2f656e636f64656412180a160a0c000102030405060708090a0b0a067365636f6e640a0a0a02"
    "c3a912040a020a000a310a04696e747312291a270a250001ffffffffffffffffff0180808080"
    "802080808080808080808001ffffffffffffffff7fbbc7eaa5000000000000000029039807d8"
    "ea82a2")
GOLDEN_FEATURES = {
    "0/image_aux1/encoded": [bytes(range(12)), b"second"],
    "0/action": np.array([0.5, -1.25, 3.0, 1e-3], dtype=np.float32),
    "ints": np.array([0, 1, -1, 2**40, -2**63, 2**63 - 1], dtype=np.int64),
    "empty": [],
    "\u00e9": [b""],
}


# --- minimal writer ---------------------------------------------------------------
def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def encode_feature(values) -> bytes:
    """Feature message: bytes -> BytesList, float array -> FloatList, else Int64List."""
    if isinstance(values, (list, tuple)) and all(isinstance(v, bytes) for v in values):
        return _field(1, b"".join(_field(1, v) for v in values))
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return _field(2, _field(1, values.astype("<f4").tobytes()))
    return _field(3, _field(1, b"".join(_varint(int(v)) for v in values)))


def encode_example(features: dict) -> bytes:
    """Serialize a tf.train.Example (Features map entries: key = 1, value = 2)."""
    entries = b"".join(
        _field(1, _field(1, k.encode()) + _field(2, encode_feature(v)))
        for k, v in features.items())
    return _field(1, entries)


def frame_record(data: bytes) -> bytes:
    """TFRecord framing: length, masked CRC of the length, data, masked CRC."""
    header = struct.pack("<Q", len(data))
    return (header + struct.pack("<I", tfrecord.masked_crc32c(header)) + data
            + struct.pack("<I", tfrecord.masked_crc32c(data)))


def write_tfrecord(path, records) -> None:
    with open(path, "wb") as f:
        for data in records:
            f.write(frame_record(data))


# --- CRC32C -------------------------------------------------------------------------
ISCSI_READ_PDU = bytes.fromhex(
    "01c00000000000000000000000000000140000000000040000000014000000182800000000000000"
    "0200000000000000")


@pytest.mark.parametrize("data, expected", [
    (b"", 0x00000000),
    (b"123456789", 0xE3069283),          # the CRC catalogue check value
    (bytes(32), 0x8A9136AA),             # RFC 3720, appendix B.4
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (ISCSI_READ_PDU, 0xD9963A56),
])
def test_crc32c_known_vectors(data, expected):
    assert tfrecord.crc32c(data) == expected


def test_crc32c_long_inputs_match_the_bytewise_definition_and_chain():
    rng = np.random.default_rng(0)
    for n in (16_385, 20_000, 131_101):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        bytewise = tfrecord._register_bytes(0xFFFFFFFF, data) ^ 0xFFFFFFFF
        assert tfrecord.crc32c(data) == bytewise
        cut = n // 3
        assert tfrecord.crc32c(data[cut:], tfrecord.crc32c(data[:cut])) == bytewise
    assert tfrecord.crc32c(bytes(100_000)) == \
        tfrecord._register_bytes(0xFFFFFFFF, bytes(100_000)) ^ 0xFFFFFFFF


def test_masked_crc_definition():
    crc = tfrecord.crc32c(b"abc")
    rotated = ((crc >> 15) | (crc << 17)) & 0xFFFFFFFF
    assert tfrecord.masked_crc32c(b"abc") == (rotated + 0xA282EAD8) & 0xFFFFFFFF


# --- reading --------------------------------------------------------------------------
def _assert_features(got, expected):
    assert set(got) == set(expected)
    for key, value in expected.items():
        if isinstance(value, np.ndarray):
            assert got[key].dtype == value.dtype
            np.testing.assert_array_equal(got[key], value)
        else:
            assert got[key] == value


def test_reads_a_file_written_by_tensorflow(tmp_path):
    path = tmp_path / "golden.tfrecord"
    path.write_bytes(bytes.fromhex(GOLDEN_HEX))
    examples = list(tfrecord.read_examples(path))
    assert len(examples) == 2
    _assert_features(examples[0], GOLDEN_FEATURES)
    assert examples[1] == {}
    only = next(tfrecord.read_examples(path, keys=["ints"]))
    assert list(only) == ["ints"]


def test_the_test_writer_reproduces_tensorflow_framing(tmp_path):
    records = list(tfrecord.read_records(_golden(tmp_path)))
    assert b"".join(frame_record(r) for r in records) == bytes.fromhex(GOLDEN_HEX)


def _golden(tmp_path):
    path = tmp_path / "golden.tfrecord"
    path.write_bytes(bytes.fromhex(GOLDEN_HEX))
    return path


def test_roundtrip_of_large_records(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, 12_288, dtype=np.uint8).tobytes() for _ in range(30)]
    features = {f"{i}/image_aux1/encoded": [f] for i, f in enumerate(frames)}
    features["0/action"] = np.arange(4, dtype=np.float32)
    path = tmp_path / "big.tfrecord"
    write_tfrecord(path, [encode_example(features)] * 2)
    examples = list(tfrecord.read_examples(path))
    assert len(examples) == 2
    _assert_features(examples[1], features)


def test_unpacked_lists_and_unknown_fields_are_decoded():
    floats = b"".join(_varint(1 << 3 | 5) + struct.pack("<f", v) for v in (1.5, -2.0))
    ints = b"".join(_varint(1 << 3 | 0) + _varint(v) for v in (7, -3))
    unknown = _varint(9 << 3 | 0) + _varint(5) + _varint(8 << 3 | 1) + bytes(8)
    entry = lambda k, f: _field(1, _field(1, k) + _field(2, f))  # noqa: E731
    message = _field(1, entry(b"f", _field(2, floats)) + entry(b"i", _field(3, ints))
                     + unknown) + unknown
    got = tfrecord.parse_example(message)
    np.testing.assert_array_equal(got["f"], np.array([1.5, -2.0], np.float32))
    np.testing.assert_array_equal(got["i"], np.array([7, -3], np.int64))


# --- corrupt files -----------------------------------------------------------------
def _corrupt(tmp_path, mutate):
    data = bytearray(bytes.fromhex(GOLDEN_HEX))
    mutate(data)
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.__delitem__(slice(100, None)), "truncated record at byte 0"),
    (lambda d: d.__delitem__(slice(185, None)), "truncated record header at byte 177"),
    (lambda d: d.__setitem__(0, 0xA2), "corrupt record length at byte 0"),
    (lambda d: d.__setitem__(50, d[50] ^ 1), "corrupt record data at byte 0"),
    (lambda d: d.__setitem__(175, d[175] ^ 1), "corrupt record data at byte 0"),
])
def test_corrupt_records_raise_clear_errors(tmp_path, mutate, message):
    path = _corrupt(tmp_path, mutate)
    with pytest.raises(tfrecord.TFRecordError, match=message):
        list(tfrecord.read_records(path))


def test_verify_false_skips_only_the_data_crc(tmp_path):
    path = _corrupt(tmp_path, lambda d: d.__setitem__(175, d[175] ^ 1))
    assert len(list(tfrecord.read_records(path, verify=False))) == 2


def test_malformed_protobuf_is_reported_with_its_record(tmp_path):
    path = tmp_path / "bad_proto.tfrecord"
    write_tfrecord(path, [encode_example({"a": [b"x"]}), b"\x0a\xff"])
    with pytest.raises(tfrecord.TFRecordError, match="record 1"):
        list(tfrecord.read_examples(path))
    with pytest.raises(tfrecord.TFRecordError, match="wire type"):
        tfrecord.parse_example(b"\x0b")
