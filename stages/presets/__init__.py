"""Preset files: the .milk reader, the HLSL -> GLSL translator, conversion to butterchurn, pack manifests."""
