"""The versions that enter a row's identity, collected from where each is declared.

Each version sits beside the code it stands for and is bumped by hand with a change to what a row measures
(`core.code` says why a version rather than the code's hash): the .milk converter and HLSL translator
(`presets`), the frame statistics and a layer's fingerprint (`render`). `core.keys` computes every key
from them without importing those layers; the stages, the learner and the watch page hand it these.
"""
from __future__ import annotations

from ..core.keys import KeyVersions
from ..presets.conversion import CONVERTER_VERSION
from ..presets.hlsl import TRANSLATOR_VERSION
from ..render.fingerprint import FINGERPRINT_VERSION
from ..render.framestats import STATS_VERSION

KEY_VERSIONS = KeyVersions(converter=CONVERTER_VERSION, translator=TRANSLATOR_VERSION, stats=STATS_VERSION,
                           fingerprint=FINGERPRINT_VERSION)
