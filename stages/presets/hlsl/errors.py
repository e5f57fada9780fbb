"""The translator's one error: a shader it cannot turn into GLSL. Every stage raises it with the source line,
and the caller records the preset as `translate-failed`."""
from __future__ import annotations

from ...core.errors import CqError


class HlslError(CqError):
    """A shader this translator cannot turn into GLSL; the message names the line and the construct."""

    def __init__(self, message: str, line: int | None = None):
        self.line = line
        super().__init__(f"line {line}: {message}" if line else message)
