"""bench/fidelity.py's pictures and classes (the renders themselves are the sampling page's, tested elsewhere)."""
from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import fidelity  # noqa: E402

# the team's reference set beside the checkout (../shared), when it is there
FIDELITY_REF = next((base / "shared" / "fidelity-ref" / "milk" for base in (REPO.parent, REPO.parents[1])
                     if (base / "shared" / "fidelity-ref").is_dir()), REPO / "no-reference-set")


def _paeth(left: int, up: int, upper_left: int) -> int:
    estimate = left + up - upper_left
    distances = (abs(estimate - left), abs(estimate - up), abs(estimate - upper_left))
    return (left, up, upper_left)[distances.index(min(distances))]


def encode_png(pixels: np.ndarray, filters: list[int]) -> bytes:
    """An RGBA PNG whose row r uses filter filters[r % len(filters)] (the encoder side of each PNG filter)."""
    height, width, channels = pixels.shape
    rows, previous = [], np.zeros(width * channels, np.int32)
    for r in range(height):
        line = pixels[r].reshape(-1).astype(np.int32)
        kind = filters[r % len(filters)]
        out = []
        for i, value in enumerate(line):
            left = line[i - channels] if i >= channels else 0
            up, upper_left = previous[i], previous[i - channels] if i >= channels else 0
            predicted = (0, left, up, (left + up) // 2, _paeth(left, up, upper_left))[kind]
            out.append((value - predicted) & 255)
        rows.append(bytes([kind]) + bytes(out))
        previous = line

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows)))
            + chunk(b"IEND", b""))


def test_png_decoding_undoes_every_filter():
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, size=(10, 7, 4), dtype=np.uint8)
    decoded = fidelity.decode_png(encode_png(pixels, [0, 1, 2, 3, 4]))
    assert np.array_equal(np.round(decoded * 255).astype(np.uint8), pixels[:, :, :3])


def test_compare_and_downsample():
    rng = np.random.default_rng(4)
    picture = fidelity.downsample(rng.random((64, 64, 3)))
    assert picture.shape == (32, 32, 3)
    assert fidelity.compare(picture, picture) == (0.0, 1.0)
    mad, corr = fidelity.compare(picture, 1 - picture)
    assert mad > 0.2 and corr < -0.99
    flat = np.full((32, 32, 3), 0.5)
    assert fidelity.compare(flat, flat + 0.01)[1] == 1.0      # both flat and close: the same picture
    assert fidelity.compare(flat, flat + 0.3)[1] == 0.0
    with pytest.raises(fidelity.CqError, match="multiple of 32"):
        fidelity.downsample(np.zeros((48, 48, 3)))


@pytest.mark.parametrize("ours, reference, mad, corr, fault, expected", [
    ("ok", "ok", 0.0, 1.0, "", "faithful"),
    ("ok", "ok", 0.1, 0.95, "", "faithful"),
    ("ok", "ok", 0.03, 0.1, "", "faithful"),
    ("ok", "ok", 0.1, 0.5, "", "different"),
    ("ok", "ok", 0.1, 0.5, "the reference turns the other way", "reference-wrong"),
    ("ok", "ok", 0.0, 1.0, "a stale entry", "faithful"),
    ("translate-failed", "ok", None, None, "", "failed"),
    ("black", "ok", None, None, "stops at the gap", "reference-wrong"),
    ("ok", "shader-failed", None, None, "", "reference-failed"),
    ("ok", "black", None, None, "", "reference-failed"),
])
def test_classes(ours, reference, mad, corr, fault, expected):
    assert fidelity.classify(ours, reference, mad, corr, fault) == expected


def test_every_reference_fault_names_a_preset_of_the_set():
    faults = fidelity.reference_faults()
    assert faults and all(len(reason) > 40 for reason in faults.values())
    if FIDELITY_REF.is_dir():
        assert sorted(name for name in faults if not (FIDELITY_REF / f"{name}.milk").is_file()) == []
