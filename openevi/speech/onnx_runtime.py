"""onnxruntime as every speech model here uses it: imported once, with its telemetry switched off
(an offline server has no business reporting to Microsoft; it looked a host up every 30-60 s)."""

from __future__ import annotations

import onnxruntime

onnxruntime.disable_telemetry_events()

__all__ = ["onnxruntime"]
