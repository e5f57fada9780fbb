"""The audio the visuals react to while nothing is heard.

In: `SampleSettings` (`frames`, `dt`, `audio_file`). Out: an `AudioTrack` whose `frames` array, shape
(F, 3, 1024) uint8, holds butterchurn's `timeByteArray` (mono mix), `timeByteArrayL` and `timeByteArrayR`
for each rendered frame f at time f*dt: the 1024 samples of the waveform that end at that time, quantised
the way a Web Audio AnalyserNode's `getByteTimeDomainData` does (128 = silence). The page passes row f to
`viz.render({audioLevels})` for frame f, so a pair's pixels depend on these bytes and nothing else audible.

Sources:
- the built-in default, a synthetic beat/click track (kick, snare, hi-hat clicks and a soft two-note tone at
  120 BPM), generated deterministically in numpy;
- a user file in any format libsndfile reads (WAV, AIFF, FLAC, OGG/Vorbis/Opus, MP3, ...), through the
  `soundfile` package, whose wheels carry libsndfile. Of a file longer than needed, the loudest stretch is
  used (ties: the earliest), found on a 0.25 s grid; a shorter file is looped. Everything is resampled to
  44.1 kHz.

An unreadable, undecodable or silent file never stops a run: the click track is used and
`fallback_reason` says why. `key` is a hash of the frames, part of every row's content key.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from ..core.settings import SampleSettings

SAMPLE_RATE = 44100          # the analysis rate (an AudioContext's usual rate)
WINDOW = 1024                # butterchurn's analyser fftSize: samples per frame
SILENT_RMS = 1e-3            # a stretch quieter than -60 dBFS counts as silent
SEARCH_BLOCK_S = 0.25        # grid on which the loudest stretch of a long file is searched

CLICK_BPM = 120.0
CLICK_BARS = 2
CLICK_SEED = 20240501


@dataclass(frozen=True)
class AudioTrack:
    """Pre-computed analyser frames for one sampling run, plus what the rows and meta.json report."""

    frames: np.ndarray        # (F, 3, 1024) uint8: timeByteArray, timeByteArrayL, timeByteArrayR
    rms: float                # RMS of the mono samples all frames cover, in (0, 1]
    peak: float               # peak |sample| of the same, in (0, 1]
    energy: np.ndarray        # (F,) float: RMS of each frame's mono window
    mode: str                 # "file" | "click"
    audio_file: str           # the file asked for ("" when none)
    fallback_reason: str      # why that file was not used ("" when it was, or none was asked for)
    key: str                  # hash of the frames

    def meta(self) -> dict:
        """The `audio` object of meta.json."""
        return {"mode": self.mode, "audioFile": self.audio_file, "fallbackReason": self.fallback_reason,
                "key": self.key, "rms": self.rms, "peak": self.peak, "sampleRate": SAMPLE_RATE,
                "frames": int(self.frames.shape[0])}


class AudioUnusable(Exception):
    """A user's audio file cannot be used; the message is the reason recorded on fallback."""


# ------------------------------------------------------------------------------------- entry point


def load_audio(settings: SampleSettings) -> AudioTrack:
    """The analyser frames for `settings.frames` frames at `settings.dt`, from the file or the click track."""
    frame_count, dt = int(settings.frames), float(settings.dt)
    if frame_count < 1 or not dt > 0:
        raise ValueError(f"frames ({frame_count}) must be >= 1 and dt ({dt}) > 0")
    needed = WINDOW + round((frame_count - 1) * dt * SAMPLE_RATE)
    requested = str(settings.audio_file or "")
    if requested:
        try:
            stereo = _file_stretch(Path(requested).expanduser(), needed)
            track = _track(stereo, frame_count, dt, "file", requested, "")
            if not track.rms > 0:
                raise AudioUnusable("the stretch used is silent once quantised to analyser bytes")
            return track
        except AudioUnusable as problem:
            reason = f"{requested}: {problem}"
            return _track(_loop(click_track(), needed), frame_count, dt, "click", requested, reason)
    return _track(_loop(click_track(), needed), frame_count, dt, "click", "", "")


def _track(stereo: np.ndarray, frame_count: int, dt: float, mode: str, audio_file: str,
           fallback_reason: str) -> AudioTrack:
    frames = analyser_frames(stereo, frame_count, dt)
    mono = (frames[:, 0, :].astype(np.float64) - 128.0) / 128.0
    energy = np.sqrt(np.mean(mono * mono, axis=1))
    rms = float(np.sqrt(np.mean(mono * mono)))
    peak = float(np.max(np.abs(mono)))
    digest = hashlib.sha256(repr(frames.shape).encode() + frames.tobytes()).hexdigest()[:16]
    return AudioTrack(frames, rms, peak, energy, mode, audio_file, fallback_reason, digest)


# ----------------------------------------------------------------------------- analyser emulation


def to_bytes(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] -> analyser bytes: floor(128 * (1 + x)) clamped to 0..255."""
    return np.clip(np.floor(128.0 * (1.0 + samples)), 0, 255).astype(np.uint8)


def analyser_frames(stereo: np.ndarray, frame_count: int, dt: float) -> np.ndarray:
    """(F, 3, 1024) bytes from a (n, 2) float stretch at SAMPLE_RATE; frame f's window ends at f*dt.

    Time 0 sits WINDOW samples into the stretch, so frame 0 already sees a full window of sound.
    """
    ends = WINDOW + np.round(np.arange(frame_count) * dt * SAMPLE_RATE).astype(np.int64)
    if ends[-1] > len(stereo):
        raise ValueError(f"the stretch has {len(stereo)} samples, frame {frame_count - 1} needs {ends[-1]}")
    index = ends[:, None] - WINDOW + np.arange(WINDOW)[None, :]
    left, right = stereo[index, 0], stereo[index, 1]
    # An AnalyserNode downmixes stereo to mono as (L + R) / 2.
    return np.stack([to_bytes((left + right) * 0.5), to_bytes(left), to_bytes(right)], axis=1)


def _loop(stereo: np.ndarray, length: int) -> np.ndarray:
    repeats = math.ceil(length / len(stereo))
    return np.tile(stereo, (repeats, 1))[:length] if repeats > 1 else stereo[:length]


# ----------------------------------------------------------------------------------- click track


def click_track() -> np.ndarray:
    """The built-in loop: CLICK_BARS bars of 4/4 at CLICK_BPM, stereo (n, 2) float64, peak 0.9.

    Kick on every beat, snare on 2 and 4, hi-hat clicks on every eighth (alternating left/right), under a
    quiet two-note tone that drifts between the channels: bass, mids and treble all move with the beat.
    """
    rng = np.random.default_rng(CLICK_SEED)
    beat = 60.0 / CLICK_BPM
    length = round(CLICK_BARS * 4 * beat * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    left = np.zeros(length)
    right = np.zeros(length)

    def add(onset_s: float, sound: np.ndarray, pan: float) -> None:
        start = round(onset_s * SAMPLE_RATE)
        stop = min(length, start + len(sound))
        left[start:stop] += sound[: stop - start] * (1.0 - pan)
        right[start:stop] += sound[: stop - start] * (1.0 + pan)

    kick_t = np.arange(round(0.25 * SAMPLE_RATE)) / SAMPLE_RATE
    kick_freq = 45.0 + 65.0 * np.exp(-kick_t / 0.03)
    kick = 0.8 * np.sin(2 * np.pi * np.cumsum(kick_freq) / SAMPLE_RATE) * np.exp(-kick_t / 0.12)
    snare_t = np.arange(round(0.18 * SAMPLE_RATE)) / SAMPLE_RATE
    snare = 0.35 * rng.uniform(-1, 1, len(snare_t)) * np.exp(-snare_t / 0.05)
    hat_len = round(0.04 * SAMPLE_RATE)
    # A first difference of white noise keeps mostly its high frequencies: a click.
    hat = 0.25 * np.diff(rng.uniform(-1, 1, hat_len + 1)) * np.exp(-np.arange(hat_len) / (0.01 * SAMPLE_RATE))

    beats = CLICK_BARS * 4
    for number in range(beats):
        add(number * beat, kick, 0.0)
        if number % 2 == 1:
            add(number * beat, snare, 0.0)
    for number in range(beats * 2):
        add(number * beat / 2, hat, 0.5 if number % 2 else -0.5)

    tremolo = 0.5 + 0.5 * np.sin(2 * np.pi * t / (4 * beat))
    tone = 0.06 * (np.sin(2 * np.pi * 220.0 * t) + 0.6 * np.sin(2 * np.pi * 330.0 * t)) * tremolo
    drift = 0.5 * np.sin(2 * np.pi * t / (8 * beat))
    left += tone * (1.0 - drift)
    right += tone * (1.0 + drift)

    stereo = np.stack([left, right], axis=1)
    return stereo * (0.9 / np.max(np.abs(stereo)))


# ------------------------------------------------------------------------------------- user files


def _file_stretch(path: Path, needed: int) -> np.ndarray:
    """The (needed, 2) float stretch of a user's file at SAMPLE_RATE, or AudioUnusable saying why."""
    if not path.is_file():
        raise AudioUnusable("file not found")
    reader = _SoundfileReader(path)
    try:
        source_needed = math.ceil(needed * reader.rate / SAMPLE_RATE) + 1
        if reader.length <= 0:
            raise AudioUnusable("the file holds no samples")
        start = _loudest_start(reader, source_needed) if reader.length > source_needed else 0
        stretch = reader.read(start, min(source_needed, reader.length))
    except (OSError, RuntimeError, ValueError) as error:  # soundfile's LibsndfileError is a RuntimeError
        raise AudioUnusable(f"decoding failed ({error})") from None
    finally:
        reader.close()
    if len(stretch) == 0:
        raise AudioUnusable("no samples could be read (truncated file?)")
    stereo = _loop(_resample(_to_stereo(stretch), reader.rate), needed)
    if float(np.sqrt(np.mean(stereo * stereo))) < SILENT_RMS:
        raise AudioUnusable("the file is silent (below -60 dBFS)")
    return stereo


def _to_stereo(samples: np.ndarray) -> np.ndarray:
    if samples.shape[1] == 1:
        return np.repeat(samples, 2, axis=1)
    return samples[:, :2]


def _resample(stereo: np.ndarray, rate: int) -> np.ndarray:
    """Linear interpolation to SAMPLE_RATE (the analyser only looks at 1024-sample windows)."""
    if rate == SAMPLE_RATE:
        return stereo
    count = max(1, math.floor((len(stereo) - 1) * SAMPLE_RATE / rate) + 1)
    positions = np.arange(count) * (rate / SAMPLE_RATE)
    source = np.arange(len(stereo))
    return np.stack([np.interp(positions, source, stereo[:, c]) for c in range(2)], axis=1)


def _loudest_start(reader, stretch: int) -> int:
    """Start (in source samples) of the loudest `stretch`-long run of whole search blocks; earliest wins."""
    block = max(1, round(SEARCH_BLOCK_S * reader.rate))
    energies = []
    for start in range(0, reader.length, block):
        samples = reader.read(start, min(block, reader.length - start))
        energies.append(float(np.sum(samples * samples)))
    span = max(1, math.ceil(stretch / block))
    last_start_block = (reader.length - stretch) // block
    sums = np.convolve(np.asarray(energies), np.ones(span), mode="valid")[: last_start_block + 1]
    return int(np.argmax(sums)) * block


class _SoundfileReader:
    """Any format libsndfile reads; integer PCM comes out as x / 2**(bits - 1), as an AnalyserNode sees it."""

    def __init__(self, path: Path):
        try:
            self.handle = soundfile.SoundFile(str(path))
        except OSError as error:
            raise AudioUnusable(f"cannot read ({error.strerror or error})") from None
        except (RuntimeError, ValueError) as error:  # not audio libsndfile knows, or a broken header
            raise AudioUnusable(f"cannot decode ({error})") from None
        self.rate = self.handle.samplerate
        self.length = self.handle.frames

    def read(self, start: int, count: int) -> np.ndarray:
        self.handle.seek(start)
        return self.handle.read(count, dtype="float64", always_2d=True)

    def close(self) -> None:
        self.handle.close()
