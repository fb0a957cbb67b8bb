"""The `onnx` prosody provider on tiny ONNX models built here with the onnx helper API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from openevi.settings import Settings
from openevi.speech.prosody import acoustic, features
from openevi.speech.prosody.base import EMOTIONS
from openevi.speech.prosody.onnx_model import OnnxProsody, OnnxProsodyError, load_label_map
from openevi.speech.prosody.registry import ProsodyError, create_prosody, provider_options
from tests.unit.test_prosody import AROUSED, SUBDUED, assert_valid, speak

RATE = 16_000
# Mean absolute sample of espeak-ng at its default amplitude is ~0.05; SUBDUED is ~4x quieter, AROUSED louder.
PIVOT = 0.04


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def loudness_classifier(path: Path) -> Path:
    """waveform [1, n] -> logits of (neutral, angry, sad): louder than PIVOT leans angry, quieter sad."""
    nodes = [
        helper.make_node("Abs", ["audio"], ["magnitude"]),
        helper.make_node("ReduceMean", ["magnitude", "axes"], ["level"], keepdims=1),  # [1, 1]
        helper.make_node("Sub", ["level", "pivot"], ["centred"]),
        helper.make_node("MatMul", ["centred", "weights"], ["logits"]),  # [1, 3]
    ]
    graph = helper.make_graph(
        nodes,
        "loudness_classifier",
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, "samples"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
        initializer=[
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
            helper.make_tensor("pivot", TensorProto.FLOAT, [1, 1], [PIVOT]),
            helper.make_tensor("weights", TensorProto.FLOAT, [1, 3], [0.0, 200.0, -200.0]),
        ],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), path)


def feature_regressor(path: Path) -> Path:
    """openevi features [1, 12] -> (arousal, dominance, valence) on a 0..1 scale, arousal from loudness."""
    weights = np.zeros((len(features.FEATURE_NAMES), 3), dtype=np.float32)
    weights[features.FEATURE_NAMES.index("loudness"), 0] = 0.5  # arousal rises with loudness
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["features", "weights", "bias"], ["adv"])],
        "feature_regressor",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, len(features.FEATURE_NAMES)])],
        [helper.make_tensor_value_info("adv", TensorProto.FLOAT, [1, 3])],
        initializer=[
            helper.make_tensor("weights", TensorProto.FLOAT, list(weights.shape), weights.reshape(-1).tolist()),
            helper.make_tensor("bias", TensorProto.FLOAT, [3], [0.0, 0.5, 0.5]),
        ],
    )
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9), path)


def write_map(path: Path, content: dict[str, Any]) -> Path:
    path.write_text(json.dumps(content))
    return path


CLASS_MAP = {
    "kind": "classes",
    "labels": ["neutral", "angry", "sad"],
    "activation": "softmax",
    "emotions": {
        "neutral": {"calmness": 0.4, "concentration": 0.3},
        "angry": {"anger": 1.0, "contempt": 0.3},
        "sad": "sadness",
    },
}
# espeak-ng at its default amplitude reads loudness ~0.95 (docs/prosody.md), i.e. arousal output ~0.48.
VAD_MAP = {
    "kind": "vad",
    "labels": ["arousal", "dominance", "valence"],
    "centre": {"valence": 0.5, "arousal": 0.48, "dominance": 0.5},
    "scale": 0.1,
}


@pytest.fixture
async def classifier(tmp_path: Path) -> AsyncIterator[OnnxProsody]:
    model = OnnxProsody(model_path=loudness_classifier(tmp_path / "clf.onnx"), label_map=write_map(
        tmp_path / "clf.json", CLASS_MAP))  # fmt: skip
    await model.load()
    yield model
    await model.aclose()


async def test_classifier_maps_classes_onto_the_48_emotions(classifier: OnnxProsody) -> None:
    loud = await classifier.score(speak(options=AROUSED))
    quiet = await classifier.score(speak(options=SUBDUED))
    assert_valid(loud)
    assert_valid(quiet)
    assert loud["anger"] > 0.5 > quiet["anger"]
    assert quiet["sadness"] > 0.5 > loud["sadness"]
    assert loud["contempt"] == pytest.approx(0.3 * loud["anger"], abs=1e-3)  # weights follow the map
    assert loud["joy"] == acoustic.FLOOR  # emotions no class maps to stay at the floor


async def test_classifier_gives_floor_scores_for_silence_and_short_clips(classifier: OnnxProsody) -> None:
    for audio in (np.zeros(2 * RATE, dtype=np.float32), speak()[: RATE // 10]):
        assert set((await classifier.score(audio)).values()) == {acoustic.FLOOR}


async def test_vad_regressor_uses_the_neutral_prior_and_words(tmp_path: Path) -> None:
    model = OnnxProsody(
        model_path=feature_regressor(tmp_path / "vad.onnx"),
        label_map=write_map(tmp_path / "vad.json", VAD_MAP),
        input_kind="features",
    )
    try:
        neutral = await model.analyze(speak())
        loud = await model.analyze(speak(options=AROUSED))
        quiet = await model.analyze(speak(options=SUBDUED))
        assert_valid(neutral.scores)
        assert abs(neutral.vad[1]) < 0.5 and neutral.vad[0] == 0.0 and neutral.vad[2] == 0.0
        assert loud.vad[1] > 1.0 > -1.0 > quiet.vad[1]  # arousal from the model's output, reordered by the map
        assert max(neutral.scores.values()) <= 0.5  # the same neutral prior as the acoustic model
        assert loud.scores["excitement"] > neutral.scores["excitement"]
        assert quiet.scores["calmness"] > neutral.scores["calmness"]
        happy = await model.analyze(speak(), text="I love this, what a wonderful happy day.")
        assert happy.vad[0] > 1.0 and happy.scores["joy"] > neutral.scores["joy"]
    finally:
        await model.aclose()


def test_label_map_defaults_to_the_model_path(tmp_path: Path) -> None:
    path = loudness_classifier(tmp_path / "model.onnx")
    write_map(tmp_path / "model.labels.json", CLASS_MAP)
    assert OnnxProsody(model_path=path).labels.labels == ("neutral", "angry", "sad")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({**CLASS_MAP, "emotions": {"angry": {"rage": 1.0}}}, "'rage' is not one of the 48"),
        ({**CLASS_MAP, "emotions": {"happy": "joy"}}, "'happy', which is not in 'labels'"),
        ({**CLASS_MAP, "emotions": {"angry": {"anger": 2.0}}}, r"must be a number in \[0, 1\]"),
        ({**CLASS_MAP, "kind": "dimensions"}, "'kind' must be"),
        ({**VAD_MAP, "labels": ["valence", "arousal", "power"]}, "labels must be"),
        ({**VAD_MAP, "scale": 0}, "'scale' must be positive"),
        ({"kind": "classes"}, "'labels' must be"),
    ],
)
def test_bad_label_maps_name_the_problem(tmp_path: Path, content: dict[str, Any], message: str) -> None:
    with pytest.raises(OnnxProsodyError, match=message):
        load_label_map(write_map(tmp_path / "map.json", content))


def test_bad_configuration_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(ProsodyError, match="OPENEVI_PROSODY_ONNX_MODEL"):
        OnnxProsody()
    with pytest.raises(ProsodyError, match="not found"):
        OnnxProsody(model_path=tmp_path / "missing.onnx")
    path = loudness_classifier(tmp_path / "m.onnx")
    with pytest.raises(ProsodyError, match="cannot read the label map"):
        OnnxProsody(model_path=path)
    with pytest.raises(ProsodyError, match="unknown ONNX prosody input 'mfcc'"):
        OnnxProsody(model_path=path, label_map=write_map(tmp_path / "m.json", CLASS_MAP), input_kind="mfcc")


async def test_output_count_must_match_the_labels(tmp_path: Path) -> None:
    two = {**CLASS_MAP, "labels": ["neutral", "angry"], "emotions": {"angry": "anger"}}
    model = OnnxProsody(
        model_path=loudness_classifier(tmp_path / "m.onnx"), label_map=write_map(tmp_path / "m.json", two)
    )
    try:
        with pytest.raises(OnnxProsodyError, match="gave 3 outputs but the label map names 2"):
            await model.score(speak())
    finally:
        await model.aclose()


async def test_registry_builds_it_from_settings(tmp_path: Path) -> None:
    path = loudness_classifier(tmp_path / "m.onnx")
    settings = Settings(prosody_provider="onnx", prosody_onnx_model=path,
                        prosody_onnx_labels=write_map(tmp_path / "labels.json", CLASS_MAP))  # fmt: skip
    model = create_prosody("onnx", **provider_options("onnx", settings))
    assert isinstance(model, OnnxProsody)
    try:
        scores = await model.score(speak(options=AROUSED))
        assert list(scores) == list(EMOTIONS)
    finally:
        await model.aclose()
    assert provider_options("acoustic", settings) == {}
