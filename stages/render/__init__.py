"""Rendering pairs in headless Chromium: the browser, the page pool, audio, frame statistics, the player server."""
