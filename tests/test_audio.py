"""stages.audio: analyser frames from the click track and from real audio files, and every fallback."""
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile

from stages.core.settings import SampleSettings
from stages.render.audio import SAMPLE_RATE, WINDOW, analyser_frames, click_track, load_audio, to_bytes

FRAMES = 16


def settings(audio_file="", frames=FRAMES):
    return SampleSettings(frames=frames, audio_file=str(audio_file))


def write_wav(path: Path, stereo: np.ndarray, rate=SAMPLE_RATE, width=2) -> Path:
    """Write float samples (n, channels) in [-1, 1] as integer PCM through the stdlib."""
    scale = float(1 << (8 * width - 1)) - 1
    ints = np.round(stereo * scale).astype(np.int64)
    if width == 1:
        raw = (ints + 128).astype(np.uint8).tobytes()
    elif width == 3:
        unsigned = (ints & 0xFFFFFF).astype(np.uint32)
        raw = np.stack([unsigned & 0xFF, (unsigned >> 8) & 0xFF, (unsigned >> 16) & 0xFF], -1)
        raw = raw.astype(np.uint8).tobytes()
    else:
        raw = ints.astype("<i2" if width == 2 else "<i4").tobytes()
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(stereo.shape[1])
        handle.setsampwidth(width)
        handle.setframerate(rate)
        handle.writeframes(raw)
    return path


def sine(seconds, freq=220.0, amp=0.5, rate=SAMPLE_RATE, channels=2):
    t = np.arange(round(seconds * rate)) / rate
    return np.repeat((amp * np.sin(2 * np.pi * freq * t))[:, None], channels, axis=1)


def test_click_track_frames_are_analyser_bytes_that_pulse_with_the_beat():
    track = load_audio(settings(frames=120))
    assert track.frames.shape == (120, 3, WINDOW) and track.frames.dtype == np.uint8
    assert track.mode == "click" and track.audio_file == "" and track.fallback_reason == ""
    assert 0 < track.rms <= track.peak <= 1
    assert track.energy.shape == (120,)
    # 120 BPM at 30 fps: a kick every 15 frames, so the energy peaks there and decays in between.
    assert np.argmax(track.energy[:15]) == 0 and track.energy[15] > 3 * track.energy[10]
    assert not np.array_equal(track.frames[:, 1], track.frames[:, 2]), "hats are panned: L != R"


def test_audio_frames_are_deterministic_and_keyed_by_content():
    first, second = load_audio(settings()), load_audio(settings())
    assert first.key == second.key and np.array_equal(first.frames, second.frames)
    assert load_audio(settings(frames=FRAMES + 1)).key != first.key
    assert np.array_equal(load_audio(settings(frames=120)).frames[:FRAMES], first.frames)


def test_silence_is_128_and_full_scale_saturates():
    assert to_bytes(np.zeros(4)).tolist() == [128] * 4
    assert to_bytes(np.array([-1.0, 1.0, -0.5])).tolist() == [0, 255, 64]


def test_each_frame_sees_the_1024_samples_ending_at_its_time():
    dt = 1 / 30
    ramp = (np.arange(WINDOW + round(3 * dt * SAMPLE_RATE)) % 200) / 256.0
    stereo = np.stack([ramp, -ramp], axis=1)
    frames = analyser_frames(stereo, 4, dt)
    for frame in range(4):
        end = WINDOW + round(frame * dt * SAMPLE_RATE)
        assert frames[frame, 1].tolist() == to_bytes(ramp[end - WINDOW:end]).tolist()
        assert frames[frame, 2].tolist() == to_bytes(-ramp[end - WINDOW:end]).tolist()
    assert np.all(frames[:, 0] == 128), "mono is (L + R) / 2"


def test_wav_file_is_decoded_and_used(tmp_path):
    left = sine(1.0, 300.0, 0.6, channels=1)
    path = write_wav(tmp_path / "tone.wav", np.concatenate([left, np.zeros_like(left)], axis=1))
    track = load_audio(settings(path))
    assert track.mode == "file" and track.fallback_reason == "" and track.audio_file == str(path)
    assert np.all(track.frames[:, 2] == 128), "right channel is silent"
    assert 0.27 < track.peak < 0.33, "peak of the mono mix (L + R) / 2"
    assert track.frames[:, 1].max() > 200
    assert track.key != load_audio(settings()).key


@pytest.mark.parametrize("width", [1, 3, 4])
def test_wav_sample_widths_decode_like_16_bit(tmp_path, width):
    signal = sine(0.7, 440.0, 0.5)
    reference = load_audio(settings(write_wav(tmp_path / "ref.wav", signal, width=2)))
    other = load_audio(settings(write_wav(tmp_path / f"w{width}.wav", signal, width=width)))
    assert other.mode == "file"
    assert np.max(np.abs(other.frames.astype(int) - reference.frames.astype(int))) <= 1


def test_other_sample_rates_are_resampled(tmp_path):
    reference = load_audio(settings(write_wav(tmp_path / "44k.wav", sine(0.7, 100.0, 0.5))))
    low = load_audio(settings(write_wav(tmp_path / "22k.wav", sine(0.7, 100.0, 0.5, rate=22050), rate=22050)))
    assert low.mode == "file"
    assert np.max(np.abs(low.frames.astype(int) - reference.frames.astype(int))) <= 1


def test_the_loudest_stretch_of_a_long_file_is_used(tmp_path):
    quiet = sine(10.0, 220.0, 0.01)
    quiet[round(6.0 * SAMPLE_RATE):round(7.0 * SAMPLE_RATE)] *= 60
    track = load_audio(settings(write_wav(tmp_path / "long.wav", quiet)))
    assert track.mode == "file" and track.peak > 0.5
    assert load_audio(settings(tmp_path / "long.wav")).key == track.key


def test_a_short_file_is_looped(tmp_path):
    track = load_audio(settings(write_wav(tmp_path / "blip.wav", sine(0.05, 440.0, 0.5)), frames=60))
    assert track.mode == "file" and track.energy.min() > 0.2


@pytest.mark.parametrize("name", ["tone.flac", "tone.ogg", "tone.mp3", "tone.aiff", "tone.aif"])
def test_every_format_libsndfile_reads_is_decoded(tmp_path, name):
    signal = sine(1.0, 330.0, 0.5)
    soundfile.write(str(tmp_path / name), signal, SAMPLE_RATE, format="AIFF" if name.endswith(".aif") else None)
    track = load_audio(settings(tmp_path / name))
    assert track.mode == "file" and track.fallback_reason == "", name
    assert 0.3 < track.peak < 0.7
    reference = load_audio(settings(write_wav(tmp_path / "ref.wav", signal)))
    assert track.rms == pytest.approx(reference.rms, rel=0.05)


@pytest.mark.parametrize("name, content, why", [
    ("missing.wav", None, "file not found"),
    ("garbage.wav", b"RIFF....WAVEnot audio at all" * 10, "cannot decode"),
    ("garbage.flac", b"\x00\x01 definitely not flac" * 10, "cannot decode"),
    ("notes.txt", b"not audio", "cannot decode"),
], ids=["missing", "garbage-wav", "garbage-flac", "text"])
def test_unusable_files_fall_back_to_the_click_track_and_say_why(tmp_path, name, content, why):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    track = load_audio(settings(path))
    assert track.mode == "click" and track.audio_file == str(path)
    assert why in track.fallback_reason and str(path) in track.fallback_reason
    assert track.rms > 0 and track.key == load_audio(settings()).key


def test_a_silent_file_falls_back(tmp_path):
    path = write_wav(tmp_path / "silence.wav", np.zeros((SAMPLE_RATE, 2)))
    track = load_audio(settings(path))
    assert track.mode == "click" and "silent" in track.fallback_reason and track.rms > 0


def test_meta_reports_mode_file_and_reason(tmp_path):
    meta = load_audio(settings(tmp_path / "missing.ogg")).meta()
    assert meta["mode"] == "click" and meta["audioFile"].endswith("missing.ogg")
    assert "file not found" in meta["fallbackReason"] and meta["rms"] > 0


def test_click_track_stays_in_range():
    loop = click_track()
    assert loop.shape[1] == 2 and np.max(np.abs(loop)) == pytest.approx(0.9)
