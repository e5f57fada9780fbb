"""Pairs rendered by the workers of a Dask cluster (`executor = "dask"`), results back to this process.

In: `SampleSettings` (`address`: the scheduler), the audio frames, a self-test `PairJob`, the engine version
of this machine, and `PairJob`s whose presets are loaded here: presets, settings and audio travel to the
workers, which need no shared filesystem (each needs the package, Chromium and the web deps installed).
Out: `ClusterRenderer.render(jobs, deadline)` yields one `PairResult` per job as it completes, as
`RenderPool.render` does, each carrying the worker's address (`node`) and its renderer. Only this process
writes rows: the workspace stays the single source of truth.

How: each worker process holds one long-lived `RenderPool` (one browser per task thread of the worker; under
gpu_mode require at most BROWSERS_PER_GPU per unit of the worker's `GPU` resource), started by a probe task
that checks it first: WebGL2, the renderer against gpu_mode, the sampling page against this machine's (same
engine, so the same content keys), and the self-test pair rendered twice. A worker that fails a check is
refused with a message and gets no pairs; every accepted worker renders with the run's one renderer, so rows
from different renderers never mix in a run. One pair is one Dask task, restricted to the accepted workers
(and under gpu_mode require holding 1/BROWSERS_PER_GPU of a GPU), so Dask's scheduler balances the load and,
when a worker is lost, runs that worker's pairs in flight again on another. A worker that joins mid-run is
probed, then used. A bounded window of pairs is in flight, so a deadline or an interrupted run stops soon.
The pools stay up between runs (a run with other settings replaces them) and close with their worker.
With the `gpus` setting a worker deals its browsers to its host's GPUs, each browser pinned to its GPU
(`render.gpus`); the lines that setting says (a GPU left out, no GPU here) come back with the probe.
"""
from __future__ import annotations

import dataclasses
import hashlib
import socket
import tempfile
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from ..core.contracts import value_hash
from ..core.errors import CqError

try:
    with warnings.catch_warnings():  # distributed imports pynvml, which warns about its own name
        warnings.filterwarnings("ignore", "The pynvml package is deprecated", FutureWarning)
        from distributed import Client, KilledWorker, WorkerPlugin, get_worker, wait
        from distributed import TimeoutError as DaskTimeoutError
except ModuleNotFoundError as missing:
    raise CqError(f"executor dask needs the cluster extra ({missing.name} is not installed): "
                  f"pip install 'coupled-quality[cluster]'") from None

from ..core.keys import engine_version
from ..core.settings import SampleSettings
from ..core.workspace import command
from ..render.browser import is_software_renderer, kill_leftovers
from ..render.gpus import pin_gpus
from ..render.pool import PairJob, PairResult, RenderPool

# 16 browsers per GPU gave the best throughput on one H200 (RENDERING.md); a power of two, so the task
# shares of a GPU add up exactly
BROWSERS_PER_GPU = 16
CONNECT_TIMEOUT_S = 10.0
WORKER_WAIT_S = 60.0     # how long a run waits for a worker when the cluster has none it can use
PROBE_TIMEOUT_S = 600.0  # a worker's browsers start and render the self-test pair twice within this
POLL_S = 2.0             # how often the run looks for lost and new workers while pairs are in flight
WINDOW_PER_BROWSER = 2   # pairs in flight per accepted browser: enough to keep every browser busy
PACKAGE = __name__.split(".")[0]  # the name the workers must import the package under
POOLS_PER_WORKER = 2     # a run and a readiness check can share a worker; an older pool is closed

_NODE_LOCK = threading.Lock()
_NODES: dict[str, _Node] = {}  # in a worker process: run key -> its pool, oldest first


class NodeRefused(CqError):
    """A worker that cannot render for this run (its message says why and what to do)."""


class NodeFailed(CqError):
    """A worker that failed while rendering a pair; `address` names it."""

    def __init__(self, address: str, message: str):
        super().__init__(address, message)  # both in args, so the exception travels back pickled
        self.address, self.message = address, message

    def __str__(self) -> str:
        return f"worker {self.address}: {self.message}"


# ------------------------------------------------------------------------------ in a worker process


def node_state_dir() -> Path:
    """Where a worker machine records the browsers its pools start (so a killed worker's are ended later)."""
    return Path(tempfile.gettempdir()) / "cq-cluster-node"


class _Node:
    def __init__(self, pool: RenderPool, info: dict):
        self.pool = pool
        self.info = info


def _close_nodes(keep: int = 0) -> None:
    while len(_NODES) > keep:
        node = _NODES.pop(next(iter(_NODES)))
        node.pool.close()


class ClosePools(WorkerPlugin):
    """Closes a worker's render pool (its browsers) when the worker shuts down."""

    name = "coupled-quality-render-pools"

    def teardown(self, worker) -> None:
        with _NODE_LOCK:
            _close_nodes()


def start_node(run_key: str, settings_fields: dict, audio_frames: np.ndarray, self_test: PairJob,
               engine: str) -> dict:
    """The probe task: this worker's pool for the run, started (or reused) and checked; its info as a dict.
    Raises NodeRefused, with the reason, when the worker cannot render for this run."""
    worker = get_worker()
    with _NODE_LOCK:
        node = _NODES.get(run_key)
        if node is None:
            _close_nodes(keep=POOLS_PER_WORKER - 1)
            node = _open_node(worker, settings_fields, audio_frames, self_test, engine)
            _NODES[run_key] = node
    return node.info


def stop_node(run_key: str) -> None:
    """Close this worker's pool of the run (its browsers), if it has one."""
    with _NODE_LOCK:
        node = _NODES.pop(run_key, None)
    if node is not None:
        node.pool.close()


def _open_node(worker, settings_fields: dict, audio_frames: np.ndarray, self_test: PairJob, engine: str) -> _Node:
    where = f"worker {worker.address} on {socket.gethostname()}"
    mine = engine_version()
    if mine != engine:
        raise NodeRefused(f"{where} has the sampling page {mine}, this workspace {engine}: install the same "
                          f"coupled-quality version (and `{command('web_deps')}`) on every worker")
    try:
        settings = SampleSettings(**settings_fields)
    except TypeError as error:
        raise NodeRefused(f"{where} runs another coupled-quality version ({error}): install the same one")
    browsers = worker.state.nthreads
    gpus = worker.state.total_resources.get("GPU", 0)
    if settings.gpu_mode == "require":
        if gpus <= 0:
            raise NodeRefused(f"{where} has no GPU resource, and gpu_mode is require: start it with "
                              "`dask worker ADDRESS --nthreads 16 --resources GPU=1`")
        browsers = min(browsers, int(gpus * BROWSERS_PER_GPU))
    settings = dataclasses.replace(settings, workers=max(1, browsers))
    kill_leftovers(node_state_dir())
    notes: list[str] = []  # the gpus setting's lines, said by the sampling process
    try:
        pinning = pin_gpus(settings, settings.workers, node_state_dir(), notes.append)
        pool = RenderPool(settings, audio_frames, node_state_dir(), pinning=pinning)
    except CqError as error:
        raise NodeRefused(f"{where}: {error}")
    try:
        if settings.gpu_mode == "off" and not is_software_renderer(pool.renderer):
            raise NodeRefused(f"{where} renders with {pool.renderer} although gpu_mode is off (software): is "
                              "VK_DRIVER_FILES set in its environment? unset it, or use gpu_mode safe or require")
        try:
            pool.self_test(self_test)
        except CqError as error:
            raise NodeRefused(f"{where}: {error}")
    except BaseException:
        pool.close()
        raise
    info = {"address": worker.address, "host": socket.gethostname(), "renderer": pool.renderer,
            "vendor": pool.vendor, "engine": pool.engine, "browserVersion": pool.browser_version,
            "gpuModeUsed": pool.gpu_mode_used, "browsers": settings.workers,
            "gpus": pinning.summary() if pinning else "", "gpuNotes": notes}
    return _Node(pool, info)


def render_pair(run_key: str, job: PairJob) -> tuple[PairResult, int]:
    """The pair task: `job` rendered by this worker's pool; the result (without the presets, which the
    caller has) and the pool's restarts so far. Raises NodeFailed when the worker cannot render."""
    address = get_worker().address
    node = _NODES.get(run_key)
    if node is None:
        raise NodeFailed(address, "holds no render pool for this run (restarted since it was probed?)")
    try:
        result = node.pool.render_one(job)
    except CqError as error:
        raise NodeFailed(address, str(error))
    light = PairJob(job.pair, {}, None if job.is_layer else {}, job.fg_id, job.bg_id)
    return dataclasses.replace(result, job=light, node=address), node.pool.restarts


# ------------------------------------------------------------------------------ in the sampling process


def local_cluster(gpu_mode: str = "off", workers: int = 1, browsers: int = 1):
    """A Dask cluster on this machine (scheduler on 127.0.0.1, `workers` worker processes of `browsers` threads,
    each with a GPU under gpu_mode require); a context manager, for checks and benchmarks."""
    from distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=browsers, processes=True, host="127.0.0.1",
                        dashboard_address=None, resources={"GPU": 1} if gpu_mode == "require" else None)


def _connect(address: str) -> Client:
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, DaskTimeoutError) as error:
        text = str(error).strip().splitlines()
        raise CqError(f"no Dask scheduler answers at {address} ({text[0] if text else type(error).__name__}): "
                      f"start one there with `dask scheduler` and workers with `dask worker {address}`, "
                      "or sample here with executor = \"local\"")


class ClusterRenderer:
    """Pairs rendered on a Dask cluster's workers; a context manager (disconnects on exit).

    After construction: `renderer`, `vendor`, `engine`, `gpu_mode_used` of the run (every accepted worker
    has them), `nodes` (accepted workers' info by address), `browsers` (their browsers in all), `restarts`
    (their pages' and browsers' unplanned restarts). `on_event(kind, details)` hears about workers accepted,
    refused and lost (`details["message"]` says it in words), in the caller's thread.
    """

    def __init__(self, settings: SampleSettings, audio_frames, self_test: PairJob, engine: str,
                 on_event: Callable[[str, dict], None] | None = None):
        self.settings = settings.validate()
        self.on_event = on_event
        self.address = settings.address
        self._fields = dataclasses.asdict(settings)
        self._audio = np.ascontiguousarray(audio_frames)
        self._self_test = self_test
        self._engine = engine
        self.run_key = value_hash([self._fields, hashlib.sha256(self._audio.tobytes()).hexdigest(), engine,
                                   [self_test.fg, self_test.bg]])
        self.renderer = self.vendor = self.engine = self.gpu_mode_used = ""
        self.nodes: dict[str, dict] = {}
        self._refused: dict[str, str] = {}
        self._probes: dict[str, object] = {}   # address -> probe future
        self._restarts: dict[str, int] = {}
        self._gpu_share = 1 / BROWSERS_PER_GPU if settings.gpu_mode == "require" else 0.0
        self._unusable_since: float | None = None  # since when no accepted worker is left
        self.client = _connect(self.address)
        try:
            try:
                self.client.register_plugin(ClosePools())
            except Exception as error:  # a worker that cannot load the package; its probe refuses it
                self._event("warning", f"not every worker took the hook that closes its browsers: {error}")
            self._start()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ workers: probe, accept, refuse

    def _event(self, kind: str, message: str, **details) -> None:
        if self.on_event is not None:
            self.on_event(kind, {"message": message, **details})

    def _live_workers(self) -> set[str]:
        return set(self.client.nthreads())

    def _probe(self, address: str) -> None:
        self._probes[address] = self.client.submit(
            start_node, self.run_key, self._fields, self._audio, self._self_test, self._engine,
            workers=[address], allow_other_workers=False, pure=False, key=f"cq-probe-{address}-{time.time_ns()}")

    def _refuse(self, address: str, reason: str) -> None:
        self.nodes.pop(address, None)
        self._refused[address] = reason
        self._event("refused", f"refused: {reason}", worker=address)

    def _settle_probes(self, block_s: float) -> list[dict]:
        """The infos of the probes that passed (waiting up to `block_s` for any); refuses the workers whose
        probe failed, and drops probes of workers now gone."""
        passed = []
        if self._probes:
            try:
                wait(list(self._probes.values()), timeout=block_s)
            except (TimeoutError, DaskTimeoutError):
                pass
        live = self._live_workers()
        for address, future in list(self._probes.items()):
            if future.status == "pending":
                if address not in live:
                    del self._probes[address]
                    future.cancel()
                continue
            del self._probes[address]
            if future.status == "finished":
                passed.append(future.result())
            elif future.status == "error":
                error = future.exception()
                self._refuse(address, str(error) if isinstance(error, CqError) else
                             f"worker {address}: {type(error).__name__}: {error} (does the worker's environment "
                             f"import this package as `{PACKAGE}`? from a checkout, start it with PYTHONPATH set "
                             "to the checkout)")
            else:
                self._refuse(address, f"worker {address}: its probe was {future.status}")
        return passed

    def _consider(self, info: dict) -> None:
        address = info["address"]
        if self.renderer and info["renderer"] != self.renderer:
            self._refuse(address, f"worker {address} on {info['host']}: it renders with {info['renderer']}, this "
                                  f"run with {self.renderer}; rows from different renderers are different "
                                  "content: give each renderer its own cluster, or set gpu_mode so all agree")
            return
        self.nodes[address] = info
        self._restarts.setdefault(address, 0)
        for note in info["gpuNotes"]:
            self._event("gpus", f"worker {address}: {note}", worker=address)
        pinned = f" on {info['gpus']}" if info["gpus"] else ""
        self._event("accepted", f"worker {address} on {info['host']}: {info['browsers']} browsers{pinned}, "
                                f"{info['renderer']}", worker=address)

    def _start(self) -> None:
        try:
            self.client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (TimeoutError, DaskTimeoutError):
            raise CqError(f"the Dask scheduler at {self.address} has no workers after {WORKER_WAIT_S:g} s: start "
                          f"some with `dask worker {self.address}`")
        for address in sorted(self._live_workers()):
            self._probe(address)
        candidates: list[dict] = []  # every first probe is in before the run's renderer is chosen
        deadline = time.monotonic() + PROBE_TIMEOUT_S
        while self._probes and time.monotonic() < deadline:
            candidates += self._settle_probes(POLL_S)
        if not candidates:
            reasons = list(self._refused.values()) or ["no worker finished starting its browsers in time"]
            more = f" (and {len(reasons) - 1} more)" if len(reasons) > 1 else ""
            raise CqError(f"no worker of the Dask cluster at {self.address} can render: {reasons[0]}{more}")
        self.renderer = _run_renderer(candidates, self.settings.gpu_mode)
        for info in candidates:
            self._consider(info)
        first = next(iter(self.nodes.values()))
        self.vendor, self.engine, self.gpu_mode_used = first["vendor"], first["engine"], first["gpuModeUsed"]

    def _watch_workers(self) -> None:
        """Forget lost workers, probe new ones; a CqError when none is left to render on."""
        live = self._live_workers()
        for address in sorted(set(self.nodes) - live):
            self.nodes.pop(address)
            self._event("lost", f"worker {address} is gone; its pairs in flight are rendered again elsewhere",
                        worker=address)
        for address in sorted(live - set(self.nodes) - set(self._refused) - set(self._probes)):
            self._probe(address)
        for info in self._settle_probes(0):
            self._consider(info)
        if self.nodes:
            self._unusable_since = None
            return
        if self._unusable_since is None:
            self._unusable_since = time.monotonic()
        elif time.monotonic() - self._unusable_since > WORKER_WAIT_S and not self._probes:
            raise CqError(f"no worker of the Dask cluster at {self.address} is left to render on (lost or "
                          f"refused for {WORKER_WAIT_S:g} s); every row written so far is kept: start workers "
                          "and run again")

    # ------------------------------------------------------------------ rendering

    @property
    def browsers(self) -> int:
        return sum(info["browsers"] for info in self.nodes.values())

    @property
    def restarts(self) -> int:
        return sum(self._restarts.values())

    def _submit(self, job: PairJob):
        options = {"resources": {"GPU": self._gpu_share}} if self._gpu_share else {}
        return self.client.submit(render_pair, self.run_key, job, workers=sorted(self.nodes),
                                  allow_other_workers=False, pure=False,
                                  key=f"cq-pair-{job.pair}-{time.time_ns()}", **options)

    def render(self, jobs: Iterable[PairJob], deadline: float | None = None) -> Iterator[PairResult]:
        """Render `jobs` on the cluster, yielding each result here as it completes; stops taking jobs at
        `deadline`. Each job is yielded at most once; a job whose worker was lost or failed is rendered
        again on another. Leaving the loop early cancels the pairs in flight."""
        jobs = iter(jobs)
        again: deque[PairJob] = deque()  # jobs to submit before new ones: their worker was lost or failed
        in_flight: dict[object, tuple[PairJob, frozenset]] = {}  # future -> (job, workers it may run on)
        exhausted = False
        next_watch = time.monotonic() + POLL_S
        try:
            while True:
                past = deadline is not None and time.time() >= deadline
                while self.nodes and not past and len(in_flight) < max(2, WINDOW_PER_BROWSER * self.browsers):
                    job = again.popleft() if again else None if exhausted else next(jobs, None)
                    if job is None:
                        exhausted = True
                        break
                    in_flight[self._submit(job)] = (job, frozenset(self.nodes))
                if not in_flight and (past or (exhausted and not again)):
                    return
                done = set()
                if in_flight:
                    try:
                        done = wait(list(in_flight), timeout=POLL_S, return_when="FIRST_COMPLETED").done
                    except (TimeoutError, DaskTimeoutError):
                        pass
                else:
                    time.sleep(POLL_S)  # no worker to submit to: wait for one to be probed
                for future in done:
                    job, _ = in_flight.pop(future)
                    result = self._collect(future, job)
                    if result is None:
                        again.append(job)
                    else:
                        yield result
                if time.monotonic() >= next_watch or not self.nodes:
                    next_watch = time.monotonic() + POLL_S
                    self._watch_workers()
                    # a pair allowed only on workers that are all gone would wait forever: submit it again
                    for future, (job, allowed) in list(in_flight.items()):
                        if not allowed & set(self.nodes) and future.status == "pending":
                            del in_flight[future]
                            future.cancel()
                            again.append(job)
        finally:
            if in_flight and self.client is not None:
                self.client.cancel(list(in_flight))

    def _collect(self, future, job: PairJob) -> PairResult | None:
        """A finished pair task's result for `job`, or None when the job must be rendered again."""
        if future.status == "finished":
            result, restarts = future.result()
            if result.node not in self.nodes or result.renderer != self.renderer:
                if result.node in self.nodes:
                    self._refuse(result.node, f"worker {result.node} rendered pair {job.pair} with "
                                              f"{result.renderer}, not {self.renderer}")
                return None
            self._restarts[result.node] = restarts
            return dataclasses.replace(result, job=job)
        if future.status in ("cancelled", "lost"):
            if self.client.status != "running":
                raise CqError(f"lost the Dask scheduler at {self.address}; every row written so far is kept: "
                              "run again when it is back")
            return None
        error = future.exception()
        if isinstance(error, KilledWorker):
            # Dask gave up on the pair after several workers died under it: the pair is the likely cause
            return PairResult(job, "crashed", [f"the cluster workers rendering it died: {error}"], {}, None, None,
                              0, 0, 0, -1, self.renderer, "")
        address = getattr(error, "address", "")
        if address in self.nodes:
            self._refuse(address, str(error))
        elif not address:
            raise CqError(f"pair {job.pair} failed on the cluster at {self.address}: {error}")
        return None

    def close_pools(self) -> None:
        """Close the accepted workers' pools of this run now (a run leaves them up for the next one)."""
        futures = [self.client.submit(stop_node, self.run_key, workers=[address], allow_other_workers=False,
                                      pure=False) for address in self.nodes]
        try:
            wait(futures, timeout=PROBE_TIMEOUT_S)
        except (TimeoutError, DaskTimeoutError):
            pass  # a worker that does not answer closes its browsers when it stops

    def close(self) -> None:
        """Disconnect (the workers keep their pools for the next run); safe to call twice."""
        client, self.client = getattr(self, "client", None), None
        if client is not None:
            client.close()

    def __enter__(self) -> "ClusterRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _run_renderer(candidates: list[dict], gpu_mode: str) -> str:
    """The run's one renderer: under gpu_mode safe or require a hardware one if any worker has it; then the
    one with the most browsers (ties by name, so the choice does not depend on which worker answered first)."""
    pool = [info for info in candidates if not is_software_renderer(info["renderer"])] \
        if gpu_mode != "off" else []
    pool = pool or candidates
    browsers: dict[str, int] = {}
    for info in pool:
        browsers[info["renderer"]] = browsers.get(info["renderer"], 0) + info["browsers"]
    return min(browsers, key=lambda renderer: (-browsers[renderer], renderer))
