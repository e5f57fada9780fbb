"""How long one appended, flushed and fsynced eval row takes on this machine's disk (the sampler pays it
once per row): python bench/fsync_probe.py"""
import os
import tempfile
import time

for folder in (tempfile.gettempdir(), os.getcwd()):
    fd, path = tempfile.mkstemp(dir=folder)
    with os.fdopen(fd, "wb") as handle:
        started = time.perf_counter()
        for _ in range(50):
            handle.write(b"x" * 1500 + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        print(f"{folder}: {(time.perf_counter() - started) / 50 * 1000:.2f} ms per fsynced row")
    os.unlink(path)
