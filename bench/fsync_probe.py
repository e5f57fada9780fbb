import os, time, tempfile, sys
for d in ("/tmp", os.getcwd()):
    fd, p = tempfile.mkstemp(dir=d); f = os.fdopen(fd, "wb")
    t = time.perf_counter()
    for i in range(50):
        f.write(b"x" * 1500 + b"\n"); f.flush(); os.fsync(f.fileno())
    print(d, "fsync per row ms", (time.perf_counter() - t) / 50 * 1000); f.close(); os.unlink(p)
