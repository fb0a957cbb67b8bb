"""AudioDecoder: linear16, WAV and containers (webm/ogg/mp4) fed chunk by chunk, resampled to 16 kHz."""

from __future__ import annotations

import asyncio
import struct
import threading

import numpy as np
import pytest

from openevi.audio.decode import AudioDecoder, DecodeError, Format, detect_format
from tests.support.speech import encode, speak, split_evenly, to_linear16

SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speak(SENTENCE)


def _decode_all(decoder: AudioDecoder, chunks: list[bytes]) -> tuple[np.ndarray, int]:
    """All output, and the index of the first chunk that produced audio (-1: only flush did)."""
    parts, first = [], -1
    for i, chunk in enumerate(chunks):
        out = decoder.push(chunk)
        assert out.dtype == np.float32 and out.ndim == 1
        if out.size and first < 0:
            first = i
        parts.append(out)
    parts.append(decoder.flush())
    return np.concatenate(parts), first


def _similarity(decoded: np.ndarray, source: np.ndarray) -> float:
    """Correlation after aligning by cross-correlation (codecs add a small delay)."""
    lag = int(np.argmax(np.abs(np.correlate(decoded, source, mode="full")))) - (len(source) - 1)
    lag = max(lag, 0)
    aligned = decoded[lag : lag + len(source)]
    n = min(len(aligned), len(source))
    return float(np.corrcoef(aligned[:n], source[:n])[0, 1])


def _energy_ratio(decoded: np.ndarray, source: np.ndarray) -> float:
    return float(np.sum(decoded**2) / np.sum(source**2))


@pytest.mark.parametrize("chunk_ms", [20, 60, 100])
def test_webm_opus_in_mediarecorder_chunks(speech: np.ndarray, chunk_ms: int) -> None:
    data = encode(speech, fmt="webm", codec="libopus")
    chunks = split_evenly(data, duration_s=len(speech) / 16_000, chunk_ms=chunk_ms)
    decoder = AudioDecoder()
    decoded, first = _decode_all(decoder, chunks)
    assert decoder.format is Format.WEBM
    assert 0 <= first < len(chunks) // 4  # streams: audio comes out long before the end
    assert abs(len(decoded) - len(speech)) < 1600  # within 0.1 s
    assert _similarity(decoded, speech) > 0.95
    assert 0.7 < _energy_ratio(decoded, speech) < 1.3


def test_ogg_opus(speech: np.ndarray) -> None:
    data = encode(speech, fmt="ogg", codec="libopus", options={"page_duration": "20000"})
    decoded, first = _decode_all(AudioDecoder(), split_evenly(data, duration_s=3, chunk_ms=50))
    assert 0 <= first < 10
    assert _similarity(decoded, speech) > 0.95


@pytest.mark.parametrize("movflags", [None, "frag_keyframe+empty_moov"])
def test_mp4_aac(speech: np.ndarray, movflags: str | None) -> None:
    options = {"movflags": movflags} if movflags else None
    data = encode(speech, fmt="mp4", codec="aac", codec_rate=48_000, options=options)
    decoder = AudioDecoder()
    decoded, first = _decode_all(decoder, split_evenly(data, duration_s=3, chunk_ms=100))
    assert decoder.format is Format.MP4
    if movflags:  # fragmented (Safari's MediaRecorder): streams
        assert first >= 0
    assert _similarity(decoded, speech) > 0.9


@pytest.mark.parametrize(("codec", "rate", "min_similarity"), [("pcm_s16le", 44_100, 0.99), ("pcm_mulaw", 8_000, 0.95)])
def test_wav(speech: np.ndarray, codec: str, rate: int, min_similarity: float) -> None:
    data = encode(speech, fmt="wav", codec=codec, codec_rate=rate)
    decoder = AudioDecoder()
    decoded, first = _decode_all(decoder, split_evenly(data, duration_s=3, chunk_ms=40))
    assert decoder.format is Format.WAV
    assert first >= 0 and first < 5
    assert abs(len(decoded) - len(speech)) < 160
    assert _similarity(decoded, speech) > min_similarity


def test_each_chunk_a_complete_wav(speech: np.ndarray) -> None:
    """Some clients send every chunk as its own WAV file: each header starts a new file."""
    halves = [speech[: len(speech) // 2], speech[len(speech) // 2 :]]
    chunks = [encode(half, fmt="wav", codec="pcm_s16le", codec_rate=16_000) for half in halves]
    decoded, _ = _decode_all(AudioDecoder(), chunks)
    assert abs(len(decoded) - len(speech)) <= 2
    assert _similarity(decoded, speech) > 0.99


def test_linear16_odd_chunk_sizes_stereo_48k(speech: np.ndarray) -> None:
    rng = np.random.default_rng(1)
    source = speak(SENTENCE, sample_rate=48_000)
    stereo = np.stack([source, source], axis=1).reshape(-1)  # interleaved L R
    data = to_linear16(stereo)
    sizes = rng.integers(1, 999, size=len(data))
    chunks, at = [], 0
    for size in sizes:
        if at >= len(data):
            break
        chunks.append(data[at : at + int(size)])
        at += int(size)
    decoder = AudioDecoder(pcm_format=(48_000, 2))
    decoded, _ = _decode_all(decoder, chunks)
    assert decoder.format is Format.LINEAR16
    assert abs(len(decoded) - len(speech)) <= 2
    assert _similarity(decoded, speech) > 0.99


def test_linear16_same_rate_is_exact(speech: np.ndarray) -> None:
    data = to_linear16(speech)
    decoder = AudioDecoder(pcm_format=(16_000, 1))
    decoded, _ = _decode_all(decoder, [data[:3], data[3:1001], data[1001:]])
    expected = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768
    np.testing.assert_allclose(decoded, expected, atol=1e-6)


def test_tiny_linear16_only_at_flush() -> None:
    decoder = AudioDecoder(pcm_format=(16_000, 1))
    assert decoder.push(b"Ogg").size == 0  # could still be a container's magic: waits
    assert decoder.flush().size == 1  # PCM after all; the odd trailing byte is dropped
    decoder = AudioDecoder(pcm_format=(16_000, 1))
    assert decoder.push(b"\x01\x00\x02").size == 1  # no magic starts like this: decoded at once


def test_headerless_without_settings_is_an_error() -> None:
    decoder = AudioDecoder()
    with pytest.raises(DecodeError, match=r"session_settings\.audio"):
        decoder.push(b"\x00\x01" * 400)
    assert decoder.failed
    with pytest.raises(DecodeError):
        decoder.push(b"more")
    decoder.reset()
    assert not decoder.failed


def test_garbage_after_container_magic_is_an_error() -> None:
    rng = np.random.default_rng(7)
    for magic in (b"\x1a\x45\xdf\xa3", b"OggS", b"\x00\x00\x00\x18ftypmp42"):
        decoder = AudioDecoder(pcm_format=(16_000, 1))
        with pytest.raises(DecodeError):
            decoder.push(magic + rng.bytes(4000))
            decoder.flush()


def test_garbage_wav_is_an_error() -> None:
    decoder = AudioDecoder()
    with pytest.raises(DecodeError):
        decoder.push(b"RIFF\xff\xff\xff\xffWAVE" + b"\x80\x81\x82\x83" * 10)


def test_truncated_webm_ends_gracefully_or_errors(speech: np.ndarray) -> None:
    data = encode(speech, fmt="webm", codec="libopus")
    decoder = AudioDecoder()
    try:
        decoded, _ = _decode_all(decoder, split_evenly(data[: len(data) // 2], duration_s=1.5, chunk_ms=60))
    except DecodeError:
        return
    assert 0.3 * len(speech) < len(decoded) < 0.7 * len(speech)  # the first half, decoded


def test_truncated_header_is_an_error(speech: np.ndarray) -> None:
    data = encode(speech, fmt="webm", codec="libopus")
    decoder = AudioDecoder()
    decoder.push(data[:30])
    with pytest.raises(DecodeError):
        decoder.flush()


def test_detect_format() -> None:
    wav_head = b"RIFF" + struct.pack("<I", 36) + b"WAVE"
    assert detect_format(wav_head, pcm_given=False) is Format.WAV
    assert detect_format(b"\x1a\x45\xdf\xa3\x01\x00\x00\x00\x00\x00\x00\x1f", pcm_given=False) is Format.WEBM
    assert detect_format(b"OggS\x00\x02" + bytes(6), pcm_given=False) is Format.OGG
    assert detect_format(b"\x00\x00\x00\x20ftypisom", pcm_given=False) is Format.MP4
    assert detect_format(b"Ogg", pcm_given=True) is None  # maybe a container: wait for more
    assert detect_format(b"\x10\x20" * 8, pcm_given=True) is Format.LINEAR16


async def test_push_async_streams_webm_without_blocking_the_event_loop(speech: np.ndarray) -> None:
    """The async path awaits the demuxer thread: other coroutines run meanwhile, and each chunk's
    audio comes out with that chunk (not only at flush)."""
    data = encode(speech, fmt="webm", codec="libopus")
    chunks = split_evenly(data, duration_s=len(speech) / 16_000, chunk_ms=60)
    decoder = AudioDecoder()
    before = set(threading.enumerate())
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    running = asyncio.create_task(ticker())
    parts = [await decoder.push_async(chunk) for chunk in chunks]
    stop.set()
    await running
    streamed = np.concatenate(parts)
    assert ticks > len(chunks) // 2  # the loop kept turning while chunks were being demuxed
    assert len(speech) - len(streamed) < 16_000 * 0.3  # all but the codec's tail came out while pushing
    assert _similarity(streamed, speech[: len(streamed)]) > 0.95
    await decoder.aclose()
    assert not [t for t in set(threading.enumerate()) - before if t.name.startswith("openevi-decode")]


async def test_aclose_ends_a_demuxer_waiting_for_more_bytes(speech: np.ndarray) -> None:
    data = encode(speech, fmt="webm", codec="libopus")
    decoder = AudioDecoder()
    before = set(threading.enumerate())
    await decoder.push_async(data[: len(data) // 3])  # the stream stops mid-way: the thread waits
    assert [t for t in set(threading.enumerate()) - before if t.name == "openevi-decode-webm"]
    await decoder.aclose()
    assert not [t for t in set(threading.enumerate()) - before if t.name == "openevi-decode-webm"]


def _wav_header(*, rate: int, channels: int, bits: int = 16, codec: int = 1, data_size: int = 0xFFFFFFFF) -> bytes:
    block = max(1, channels * bits // 8) & 0xFFFF
    fmt = struct.pack("<HHIIHH", codec, channels, rate, (rate * block) & 0xFFFFFFFF, block, bits)
    return b"RIFF\xff\xff\xff\xffWAVEfmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", data_size)


@pytest.mark.parametrize(
    ("rate", "channels", "codec"),
    [(1, 1, 1), (7_999, 1, 1), (10_000_000, 1, 1), (16_000, 0, 1), (16_000, 65_535, 1), (1, 1, 7)],
)
def test_absurd_declared_wav_formats_are_refused_before_any_work(rate: int, channels: int, codec: int) -> None:
    """A header claiming 1 Hz used to be upsampled to 16 kHz: 200 bytes became 1.6 M samples
    (20 KB became 296 MB on disk). Refused from the header, also for codecs FFmpeg would decode (µ-law)."""
    decoder = AudioDecoder()
    bits = 8 if codec == 7 else 16
    with pytest.raises(DecodeError, match=r"Unsupported (sample rate|channel count)"):
        decoder.push(_wav_header(rate=rate, channels=channels, bits=bits, codec=codec) + b"\0" * 200)
    assert decoder.failed


def test_absurd_linear16_settings_are_refused() -> None:
    with pytest.raises(DecodeError, match="Unsupported sample rate"):
        AudioDecoder(pcm_format=(1, 1)).push(b"\0" * 200)


def test_decoded_output_is_bounded_by_the_bytes_fed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream that decodes to far more audio than its size allows stops with an error
    (here the bound is lowered so that 60 s of Opus silence, ~14 KB, is such a stream)."""
    import openevi.audio.decode as decode

    silence = encode(np.zeros(16_000 * 60, np.float32), fmt="ogg", codec="libopus")
    monkeypatch.setattr(decode, "SECONDS_PER_SMALL_BYTE", 0.001)
    monkeypatch.setattr(decode, "OUTPUT_ALLOWANCE_S", 1.0)
    decoder = AudioDecoder()
    with pytest.raises(DecodeError, match="far more samples"):
        decoder.push(silence)
        decoder.flush()
    monkeypatch.undo()
    decoder = AudioDecoder()  # at the real bound a muted microphone's minute of Opus is fine
    assert decoder.push(silence).size + decoder.flush().size == 16_000 * 60


async def test_push_async_converts_and_resamples_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """PCM and WAV chunks are parsed and resampled in a worker thread, not on the event loop."""
    import openevi.audio.decode as decode

    threads: list[int] = []
    original = decode._Resampler.process

    def spy(self: decode._Resampler, mono: np.ndarray, rate: int) -> np.ndarray:
        threads.append(threading.get_ident())
        return original(self, mono, rate)

    monkeypatch.setattr(decode._Resampler, "process", spy)
    decoder = AudioDecoder()
    out = await decoder.push_async(_wav_header(rate=8_000, channels=2) + b"\1\0" * 8_000)
    assert 6_000 < out.size <= 8_000  # 4,000 stereo frames at 8 kHz → 0.5 s at 16 kHz (less the filter delay)
    assert threads and threading.get_ident() not in threads


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_wav_header(rate=16_000, channels=1, bits=0) + bytes(3200), "Unsupported WAV sample format"),
        (_wav_header(rate=16_000, channels=1, bits=7) + bytes(3200), "Unsupported WAV sample format"),
        (_wav_header(rate=16_000, channels=1, bits=0, codec=0x55) + np.random.default_rng(3).bytes(40_000), "wav"),
        (b"OggS" + np.random.default_rng(4).bytes(40_000), "No audio found"),
    ],
    ids=["0-bit", "7-bit", "mp3-in-wav-garbage", "garbage-after-ogg-magic"],
)
async def test_undecodable_audio_is_an_error_not_silence(data: bytes, match: str) -> None:
    """These used to decode to nothing, silently: the client never got E0201."""
    decoder = AudioDecoder()
    with pytest.raises(DecodeError, match=match):
        for at in range(0, len(data), 1000):
            await decoder.push_async(data[at : at + 1000])
    await decoder.aclose()
