"""A user-supplied trained speech-emotion model (ONNX), mapped onto the 48 EVI emotions.

No trained model ships with openevi (docs/prosody.md says why); this provider runs one you bring. Two
kinds of model are supported, described by a JSON label map next to the model:

- a **classifier** (e.g. 4-8 acted categories): its class probabilities are spread over the 48
  emotions through the map's weights, e.g. `"happy": {"joy": 1.0, "amusement": 0.5}`;
- a **valence/arousal/dominance regressor**: its outputs are turned into an offset from neutral speech
  in standard units (`(output - centre) / scale`) and scored exactly like the acoustic model's estimate
  (`acoustic.score_offset`), so the same neutral prior and the same words fusion apply.

The model's input is one of: the raw 16 kHz waveform, the waveform normalised to zero mean and unit
variance (what wav2vec2-style models expect), or openevi's 12 voice features (`features.FEATURE_NAMES`,
for a small model trained on them). Inference runs in a private thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from openevi.speech.prosody import acoustic
from openevi.speech.prosody import features as voice
from openevi.speech.prosody.base import EMOTIONS
from openevi.speech.prosody.registry import ProsodyError

__all__ = ["INPUTS", "LabelMap", "OnnxProsody", "OnnxProsodyError", "load_label_map"]

SAMPLE_RATE = 16_000
INPUTS = ("waveform", "waveform_normalized", "features")
_AXES = ("valence", "arousal", "dominance")


class OnnxProsodyError(ProsodyError):
    """The ONNX model or its label map is missing or does not fit together."""


@dataclass(frozen=True)
class LabelMap:
    """How to read the model's output (see the module docstring and docs/prosody.md)."""

    kind: Literal["classes", "vad"]
    labels: tuple[str, ...]  # output order: class names, or axis names for "vad"
    output: str | None = None  # output tensor name; None = the model's first output
    activation: Literal["softmax", "sigmoid", "none"] = "softmax"  # classes only
    emotions: dict[str, dict[str, float]] = field(default_factory=dict)  # class -> {emotion: weight}
    centre: tuple[float, float, float] = (0.0, 0.0, 0.0)  # vad only: model output for neutral speech
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)  # vad only: output units per standard unit


def _triple(raw: Any, name: str, default: tuple[float, float, float], labels: Sequence[str]) -> tuple[float, ...]:
    """A per-axis value given as a number, a list in output order, or {"valence": …} by axis name."""
    if raw is None:
        return default
    if isinstance(raw, int | float):
        return (float(raw),) * 3
    if isinstance(raw, list) and len(raw) == 3 and all(isinstance(v, int | float) for v in raw):
        by_axis = dict(zip(labels, (float(v) for v in raw), strict=True))
        return tuple(by_axis[axis] for axis in _AXES)
    if isinstance(raw, dict) and set(raw) == set(_AXES) and all(isinstance(v, int | float) for v in raw.values()):
        return tuple(float(raw[axis]) for axis in _AXES)
    raise OnnxProsodyError(f"{name!r} must be a number, a list of 3 numbers or an object keyed by {_AXES}")


def load_label_map(path: str | Path) -> LabelMap:
    """Read and check a label map file; errors name the file and the problem."""
    path = Path(path).expanduser()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise OnnxProsodyError(f"cannot read the label map {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise OnnxProsodyError(f"the label map {path} is not valid JSON: {exc}") from exc
    try:
        return _parse_label_map(raw)
    except OnnxProsodyError as exc:
        raise OnnxProsodyError(f"label map {path}: {exc}") from exc


def _parse_label_map(raw: Any) -> LabelMap:
    if not isinstance(raw, dict):
        raise OnnxProsodyError("must be a JSON object")
    kind = raw.get("kind", "classes")
    labels = raw.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise OnnxProsodyError("'labels' must be a non-empty list of names in the model's output order")
    output = raw.get("output")
    if output is not None and not isinstance(output, str):
        raise OnnxProsodyError("'output' must be the name of an output tensor")
    if kind == "vad":
        if sorted(labels) != sorted(_AXES):
            raise OnnxProsodyError(f"a 'vad' model's labels must be {list(_AXES)} in its output order")
        scale = _triple(raw.get("scale"), "scale", (1.0, 1.0, 1.0), labels)
        if any(s <= 0 for s in scale):
            raise OnnxProsodyError("'scale' must be positive")
        centre = _triple(raw.get("centre"), "centre", (0.0, 0.0, 0.0), labels)
        return LabelMap("vad", tuple(labels), output, "none", {}, centre, scale)  # type: ignore[arg-type]
    if kind != "classes":
        raise OnnxProsodyError("'kind' must be 'classes' or 'vad'")
    activation = raw.get("activation", "softmax")
    if activation not in ("softmax", "sigmoid", "none"):
        raise OnnxProsodyError("'activation' must be 'softmax', 'sigmoid' or 'none'")
    table = raw.get("emotions")
    if not isinstance(table, dict) or not table:
        raise OnnxProsodyError("'emotions' must map class names to {emotion: weight} (or to one emotion name)")
    emotions: dict[str, dict[str, float]] = {}
    for label, target in table.items():
        if label not in labels:
            raise OnnxProsodyError(f"'emotions' names the class {label!r}, which is not in 'labels'")
        weights = {target: 1.0} if isinstance(target, str) else target
        if not isinstance(weights, dict):
            raise OnnxProsodyError(f"class {label!r}: give an emotion name or {{emotion: weight}}")
        for emotion, weight in weights.items():
            if emotion not in EMOTIONS:
                raise OnnxProsodyError(f"class {label!r}: {emotion!r} is not one of the 48 EVI emotions")
            if not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
                raise OnnxProsodyError(f"class {label!r}: the weight of {emotion!r} must be a number in [0, 1]")
        emotions[label] = {e: float(w) for e, w in weights.items()}
    return LabelMap("classes", tuple(labels), output, activation, emotions)


def _activate(values: np.ndarray, activation: str) -> np.ndarray:
    if activation == "softmax":
        shifted = np.exp(values - values.max())
        return np.asarray(shifted / shifted.sum())
    if activation == "sigmoid":
        return np.asarray(1.0 / (1.0 + np.exp(-values)))
    return np.asarray(np.clip(values, 0.0, 1.0))


def class_scores(probabilities: Sequence[float], labels: LabelMap) -> dict[str, float]:
    """48 scores from class probabilities: each emotion gets Σ p(class)·weight, at least the floor."""
    totals = dict.fromkeys(EMOTIONS, 0.0)
    for label, p in zip(labels.labels, probabilities, strict=True):
        for emotion, weight in labels.emotions.get(label, {}).items():
            totals[emotion] += float(p) * weight
    return {e: round(min(1.0, max(acoustic.FLOOR, v)), 4) for e, v in totals.items()}


def vad_offset(outputs: Sequence[float], labels: LabelMap) -> tuple[float, float, float]:
    """The regressor's outputs as an offset from neutral speech, in standard units, softly bounded."""
    by_axis = dict(zip(labels.labels, (float(v) for v in outputs), strict=True))
    offset = [(by_axis[axis] - c) / s for axis, c, s in zip(_AXES, labels.centre, labels.scale, strict=True)]
    v, a, d = (acoustic.VAD_LIMIT * math.tanh(x / acoustic.VAD_LIMIT) for x in offset)
    return v, a, d


class OnnxProsody:
    """ProsodyModel running a user-supplied ONNX speech-emotion model with onnxruntime."""

    sample_rate: int = SAMPLE_RATE

    def __init__(
        self,
        *,
        model_path: str | Path | None = None,
        label_map: str | Path | None = None,
        input_kind: str = "waveform",
        use_text: bool = True,
        threads: int = 1,
    ) -> None:
        """`model_path`: the .onnx file; `label_map`: its JSON label map (default: the model path with
        `.labels.json`); `input_kind`: one of INPUTS; `use_text`: blend the transcript's valence (vad models)."""
        if not model_path:
            raise OnnxProsodyError("the onnx prosody provider needs OPENEVI_PROSODY_ONNX_MODEL (path to a .onnx file)")
        self._model_path = Path(model_path).expanduser()
        if not self._model_path.is_file():
            raise OnnxProsodyError(f"ONNX prosody model not found: {self._model_path}")
        if input_kind not in INPUTS:
            raise OnnxProsodyError(f"unknown ONNX prosody input {input_kind!r}; known: {', '.join(INPUTS)}")
        self._input_kind = input_kind
        map_path = Path(label_map).expanduser() if label_map else self._model_path.with_suffix(".labels.json")
        self.labels = load_label_map(map_path)
        self._use_text = use_text
        self._threads = threads
        self._session: Any = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openevi-prosody-onnx")

    def _load_sync(self) -> Any:
        if self._session is not None:
            return self._session
        from openevi.speech.onnx_runtime import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        try:
            session = onnxruntime.InferenceSession(
                str(self._model_path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types for bad files
            raise OnnxProsodyError(f"cannot load the ONNX prosody model {self._model_path}: {exc}") from exc
        names = [o.name for o in session.get_outputs()]
        if self.labels.output is not None and self.labels.output not in names:
            raise OnnxProsodyError(f"the model has no output {self.labels.output!r}; it has {names}")
        self._session = session
        return session

    def _input(self, audio: np.ndarray) -> np.ndarray:
        if self._input_kind == "features":
            extracted = voice.extract(audio, SAMPLE_RATE)
            data = np.array([extracted[name] for name in voice.FEATURE_NAMES], dtype=np.float32)
        elif self._input_kind == "waveform_normalized":
            data = ((audio - audio.mean()) / max(float(audio.std()), 1e-7)).astype(np.float32)
        else:
            data = audio.astype(np.float32)
        rank = len(self._session.get_inputs()[0].shape)
        return data.reshape((1,) * max(rank - 1, 0) + (-1,))

    def _run(self, audio: np.ndarray, text: str | None) -> acoustic.Analysis:
        session = self._load_sync()
        audio = np.clip(np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1)), -1.0, 1.0)
        words = acoustic.text_valence(text) if text and self._use_text and self.labels.kind == "vad" else None
        loudest = acoustic._loudest_frame_db(audio, SAMPLE_RATE // 50)
        if len(audio) < acoustic.MIN_SECONDS * SAMPLE_RATE or loudest < acoustic.SILENCE_DBFS:
            return acoustic.Analysis(scores=acoustic.flat_scores(), text_valence=words)
        feeds = {session.get_inputs()[0].name: self._input(audio)}
        outputs = session.run([self.labels.output] if self.labels.output else None, feeds)
        values = np.asarray(outputs[0], dtype=np.float64).reshape(-1)
        if len(values) != len(self.labels.labels):
            raise OnnxProsodyError(
                f"the model gave {len(values)} outputs but the label map names {len(self.labels.labels)}"
            )
        if not np.all(np.isfinite(values)):
            return acoustic.Analysis(scores=acoustic.flat_scores(), text_valence=words)
        if self.labels.kind == "classes":
            return acoustic.Analysis(
                class_scores(_activate(values, self.labels.activation).tolist(), self.labels), confidence=1.0
            )
        offset = vad_offset(values.tolist(), self.labels)
        shifted = (acoustic.VAD_LIMIT * math.tanh((offset[0] + acoustic.text_shift(words)) / acoustic.VAD_LIMIT),
                   offset[1], offset[2])  # fmt: skip
        scores = acoustic.score_offset(shifted, with_text=words is not None)
        return acoustic.Analysis(scores, shifted, 1.0, text_valence=words)

    async def load(self) -> None:
        """Open the ONNX session now rather than on the first utterance."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._load_sync)

    async def analyze(self, audio: np.ndarray, *, text: str | None = None) -> acoustic.Analysis:
        """Like `score`, with the VAD offset (vad models) and the transcript's valence."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._run, audio, text)

    async def score(self, audio: np.ndarray, *, text: str | None = None) -> dict[str, float]:
        """All 48 emotions in [0, 1]; flat floor scores for silence or clips under 0.25 s."""
        return (await self.analyze(audio, text=text)).scores

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._session = None
