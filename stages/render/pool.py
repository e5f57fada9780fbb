"""The render pool: fg/bg pairs in, per-frame statistics out, from real headless Chromium pages.

In: `SampleSettings` (render settings, workers, timeouts, restarts, GPU mode, chromium path), the audio
frames (numpy uint8, shape (F, 3, 1024): timeByteArray, L, R per frame, F >= settings.frames), the workspace
state dir (browser PIDs), and `PairJob`s whose presets are already loaded in Python.
Out: one `PairResult` per job, yielded in the caller's thread as soon as it is done: the page's status
(ok | shader-failed | eel-error | load-failed | too-heavy, plus timeout | crashed from here), errors, timings
(the page's, with the render cost `frameMs` and its clock, plus `pairMs`: the worker's wall time for the
pair, fresh pages and a retry included), the series of web/sampler.js (one value per frame) and a PNG
thumbnail. A job and its result are plain data (picklable): the pool is one way to run `render()`'s
per-pair work; any executor that holds a sampling page can run the same jobs and hand back the same results.

How: one Chromium process per worker with one page each (web/sampler.html, served from web/ by request
interception on a fake origin, no server), driven by Playwright's async API on an event loop in a
background thread. The pool outlives `render()` calls: browsers are launched once. A pair over
`pair_timeout_s` is stopped from outside, one over `max_frame_ms` stops itself (too-heavy: not retried, but judged
again alone, below); a pair that fails otherwise is retried once in a fresh page; a crashed page
or browser is restarted (at most `browser_max_restarts` times, then a CqError); `reload_every` relaunches a
worker's browser every N pairs. `bench/pool_measure.py DIR` measures pairs/min on DIR's presets.

The cost cap judges the pair, not the moment: the page's cost is wall time per frame, and wall time grows with
the pairs rendered beside it (one pair at 128x128 on 2 cores: 46 ms a frame alone, 66 ms with 2 browsers, 108 ms
with 4). So a job the page cuts as too-heavy while another job was in flight on this pool is rendered again
alone (`_Quiet`: no job starts until it is done) and that verdict stands. Every result's timings say the cap it
was judged under (`maxFrameMs`, 0: none) and whether nothing else was in flight (`alone`); a re-checked one
also keeps the cost that made it a suspect (`sharedFrameMs`). Only this pool is held quiet: other programs on
the machine, or other cluster nodes' pools, still share it.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np

from ..core.errors import CqError
from ..core.settings import SampleSettings
from ..core.workspace import NODE_MODULES_DIR, WEB_DIR
from ..render.browser import (
    BrowserRegistry,
    end_browser,
    find_chromium,
    is_software_renderer,
    launch_args,
    new_owner_mark,
)

ORIGIN = "https://cq-sampler.invalid"
PAGE_URL = f"{ORIGIN}/sampler.html"
AUDIO_SAMPLES = 1024
LAUNCH_TIMEOUT_S = 60.0
PAGE_LOAD_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 10.0
FINAL_STATUSES = ("ok", "too-heavy")  # outcomes a retry would only repeat
CONTENT_TYPES = {".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript",
                 ".json": "application/json", ".css": "text/css", ".png": "image/png"}


@dataclass
class PairJob:
    """A pair to render, or one preset alone (a layer) when `bg` is None: then the result's `series` is the
    page's `renderLayer` output, `{frames: base64 RGB, size, count, thumb: base64 RGBA}` (`render.pairstats`),
    not per-frame statistics, and `thumb_png` is None."""

    pair: int
    fg: dict
    bg: dict | None
    fg_id: str
    bg_id: str

    @property
    def is_layer(self) -> bool:
        return self.bg is None


@dataclass
class PairResult:
    job: PairJob
    status: str
    errors: list[str]
    timings: dict
    series: dict | None
    thumb_png: bytes | None
    page_errors: int
    console_errors: int
    attempts: int
    worker: int
    renderer: str = ""
    node: str = "local"  # where it was rendered: this machine, or a cluster worker's address
    gpu: str = ""  # the GPU its browser was pinned to (render.gpus), "" when not pinned


@dataclass
class _Outcome:
    """One attempt at a pair."""

    status: str
    errors: list[str] = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    series: dict | None = None
    thumb: str = ""


@dataclass(eq=False)
class _Run:
    """A job in flight on the pool; `shared` once another job was in flight at any moment beside it."""

    shared: bool


class _Quiet:
    """Which jobs are in flight on the pool, and a way to render one with nothing beside it.

    `job()` wraps every job (its fresh page and relaunch too: a launch loads the machine like a pair); it waits
    while a re-check waits, so the pool drains. `alone()` waits until nothing is in flight, then holds every new
    job back until it ends; re-checks that arrive meanwhile run one after another in the same quiet spell.
    Made on the pool's loop."""

    def __init__(self):
        self._running: set[_Run] = set()
        self._waiting = 0
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def job(self):
        async with self._changed:
            await self._changed.wait_for(lambda: self._waiting == 0)
            run = _Run(shared=bool(self._running))
            for other in self._running:
                other.shared = True
            self._running.add(run)
        try:
            yield run
        finally:
            await self._leave(run)

    @contextlib.asynccontextmanager
    async def alone(self):
        async with self._changed:
            self._waiting += 1
            try:
                await self._changed.wait_for(lambda: not self._running)
            except BaseException:
                self._waiting -= 1
                self._changed.notify_all()
                raise
            run = _Run(shared=False)
            self._running.add(run)
        try:
            yield
        finally:
            self._waiting -= 1
            await self._leave(run)

    async def _leave(self, run: _Run) -> None:
        async with self._changed:
            self._running.discard(run)
            self._changed.notify_all()


class _BrowserLost(Exception):
    """The page or the browser died under a pair."""


def _web_file(url_path: str) -> tuple[bytes, str] | None:
    """A file of web/ or of its npm packages for the page (None outside them)."""
    relative = url_path.lstrip("/") or "sampler.html"
    base = WEB_DIR.resolve()
    if relative.startswith("node_modules/"):
        base, relative = NODE_MODULES_DIR.resolve(), relative.removeprefix("node_modules/")
    path = (base / relative).resolve()
    if base not in path.parents or not path.is_file():
        return None
    return path.read_bytes(), CONTENT_TYPES.get(path.suffix, "application/octet-stream")


class _WebFiles:
    """web/ as served to the pages, each file read once (used on the pool's loop thread only)."""

    def __init__(self):
        self._cache: dict[str, tuple[bytes, str] | None] = {}

    def get(self, url_path: str):
        if url_path not in self._cache:
            self._cache[url_path] = _web_file(url_path)
        return self._cache[url_path]


class _Worker:
    """One browser process with one sampling page."""

    def __init__(self, pool: "RenderPool", index: int):
        self.pool = pool
        self.index = index
        self.browser = None
        self.page = None
        self.pid = 0
        self.owner = ""
        self.page_dirty = False
        self.pairs_since_launch = 0
        self.page_errors = 0
        self.console_errors = 0
        self.info: dict = {}
        self.gpu = ""

    async def launch(self, gpu: bool) -> None:
        await self.close_browser()
        pool = self.pool
        self.owner = new_owner_mark()
        executable, env = pool.chromium_path, None
        if pool.pinning is not None:
            executable, env, self.gpu = pool.pinning.launch(self.index)
        try:
            self.browser = await asyncio.wait_for(pool._playwright.chromium.launch(
                executable_path=executable, env=env, headless=not pool.settings.headed,
                args=launch_args(gpu, self.owner), timeout=LAUNCH_TIMEOUT_S * 1000), LAUNCH_TIMEOUT_S + 5)
        except Exception as error:
            raise CqError(f"Chromium at {pool.chromium_path} did not start: {_first_line(error)} "
                          f"(check that it runs: `{pool.chromium_path} --headless --no-sandbox --version`)")
        try:
            cdp = await self.browser.new_browser_cdp_session()
            processes = (await cdp.send("SystemInfo.getProcessInfo"))["processInfo"]
            await cdp.detach()
            self.pid = next(item["id"] for item in processes if item["type"] == "browser")
        except Exception as error:
            await self.close_browser()
            raise CqError(f"Chromium at {pool.chromium_path} started but does not answer: {_first_line(error)}")
        pool._registry.add(self.pid, self.owner)
        self.pairs_since_launch = 0
        await self.open_page()

    async def open_page(self) -> None:
        """Replace the page by a fresh sampling page with the audio set and the renderer warmed up."""
        await self.close_page()
        if self.browser is None or not self.browser.is_connected():
            raise CqError("the browser went away while its page was replaced")
        try:
            page = await self.browser.new_page()
        except Exception as error:
            raise CqError(f"Chromium could not open a page: {_first_line(error)}")
        try:
            await self._load_sampler(page)
        except BaseException:
            try:
                await asyncio.wait_for(page.close(run_before_unload=False), CLOSE_TIMEOUT_S)
            except Exception:
                pass  # the browser is relaunched or closed next; the page goes with it
            raise
        self.page = page
        self.page_dirty = False

    async def _load_sampler(self, page) -> None:
        page.on("pageerror", self._on_page_error)
        page.on("console", self._on_console)
        try:
            await page.route(f"{ORIGIN}/**", self.pool._serve)
            await page.goto(PAGE_URL, timeout=PAGE_LOAD_TIMEOUT_S * 1000)
            await page.wait_for_function("window.cqReady === true", timeout=PAGE_LOAD_TIMEOUT_S * 1000)
        except Exception as error:
            raise CqError(f"the sampling page {WEB_DIR / 'sampler.html'} did not load: {_first_line(error)} "
                          f"(is web/node_modules installed? run `doit web_deps`)")
        advice = "try gpu_mode off, or another Chromium with --chromium"
        try:
            await page.evaluate("(audio) => window.cq.setAudio(audio)", self.pool._audio_message)
            self.info = await page.evaluate("window.cq.info()")
        except Exception as error:
            raise CqError(f"the sampling page failed in Chromium at {self.pool.chromium_path}: "
                          f"{_first_line(error)} ({advice})")
        if not self.info.get("webgl2"):
            raise CqError(f"Chromium at {self.pool.chromium_path} offers no WebGL2 ({advice})")
        try:
            await asyncio.wait_for(page.evaluate("(settings) => window.cq.warmUp(settings)",
                                                 self.pool._render_settings), PAGE_LOAD_TIMEOUT_S)
        except Exception as error:
            raise CqError(f"the sampling page could not render in Chromium at {self.pool.chromium_path}: "
                          f"{_first_line(error)} ({advice})")

    def _on_page_error(self, _error) -> None:
        self.page_errors += 1

    def _on_console(self, message) -> None:
        if message.type == "error":
            self.console_errors += 1

    async def close_page(self) -> None:
        page, self.page = self.page, None
        if page is None:
            return
        try:
            await asyncio.wait_for(page.close(run_before_unload=False), CLOSE_TIMEOUT_S)
        except Exception:
            await self.close_browser(kill=True)  # a page that cannot be closed takes its browser with it

    async def close_browser(self, kill: bool = False) -> None:
        """Close the browser (kill: end its processes at once); ends what close() left (no-op if gone)."""
        browser, self.browser, self.page = self.browser, None, None
        if browser is not None and not kill:
            try:
                await asyncio.wait_for(browser.close(), CLOSE_TIMEOUT_S)
            except Exception:
                pass  # ended below
        if self.pid:
            await asyncio.to_thread(end_browser, self.pid, self.owner)
            self.pool._registry.remove(self.pid)
            self.pid = 0

    def died(self) -> bool:
        """The browser or the page went away without us closing it."""
        return self.browser is not None and (not self.browser.is_connected()
                                             or (self.page is not None and self.page.is_closed()))

    def ready(self) -> bool:
        return self.browser is not None and self.page is not None and not self.page_dirty and not self.died()

    async def attempt(self, job: PairJob, budget: dict) -> _Outcome:
        """Render a pair once; a timeout or a dead page becomes an outcome, never a hang."""
        settings = self.pool._render_settings
        if job.is_layer:
            call = "(layer) => window.cq.renderLayer(layer)"
            payload = {"preset": job.fg, "settings": settings, "size": settings["readback"], "budget": budget}
        else:
            call = "(pair) => window.cq.renderPair(pair)"
            payload = {"fg": job.fg, "bg": job.bg, "settings": settings, "budget": budget}
        timeout = self.pool.settings.pair_timeout_s
        try:
            raw = await asyncio.wait_for(self.page.evaluate(call, payload), timeout)
        except TimeoutError:
            # A closed page's renderer can go on spinning in a shader or an EEL loop: end the whole browser.
            await self.close_browser(kill=True)
            return _Outcome("timeout", [f"the pair took longer than pair_timeout_s={timeout:g} s"])
        except asyncio.CancelledError:
            self.page_dirty = True
            raise
        except Exception as error:
            self.page_dirty = True
            if self.browser is None or not self.browser.is_connected() or self.page.is_closed() \
                    or _looks_crashed(error):
                raise _BrowserLost(_first_line(error)) from None
            return _Outcome("load-failed", [f"page: {_first_line(error)}"])
        if not job.is_layer:
            return _Outcome(raw["status"], list(raw["errors"]), dict(raw["timings"]), raw["series"],
                            raw.get("thumb") or "")
        series = ({"frames": raw["frames"], "size": raw["size"], "count": raw["count"], "thumb": raw["thumb"]}
                  if raw["status"] == "ok" else None)
        return _Outcome(raw["status"], list(raw["errors"]), dict(raw["timings"]), series)


def _looks_crashed(error: Exception) -> bool:
    text = str(error).lower()
    return any(word in text for word in ("crash", "has been closed", "target closed", "disconnected"))


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class RenderPool:
    """Workers rendering pairs in headless Chromium; a context manager (closes every browser on exit).

    After construction: `renderer`, `vendor` (WebGL UNMASKED strings), `engine` (butterchurn + page
    version), `browser_version` (Chromium's), `chromium_path`, `gpu_mode_used` (off | safe | require; `safe`
    falls back to `off` on a software renderer and says why in `gpu_fallback`), `restarts` (unplanned
    page/browser restarts so far), `reloads` (planned).
    `on_event(kind, details)` is called in the caller's thread for launches, fallbacks, restarts and retries;
    `on_pair_start(worker_index, job)`, when set, on the pool's thread as a worker takes a job.
    `pinning` (a `render.gpus.Pinning`), when given, launches each worker's browser pinned to its GPU, and
    results say which (`gpu`).
    """

    def __init__(self, settings: SampleSettings, audio_frames, state_dir: Path,
                 on_event: Callable[[str, dict], None] | None = None, pinning=None):
        self.settings = settings.validate()
        self._render_settings = {name: value for name, value in vars(settings.render()).items()}
        self._budget = {"maxFrameMs": settings.max_frame_ms}
        self._audio_array = _checked_audio(audio_frames, settings.frames)
        self._audio_message = {"base64": base64.b64encode(self._audio_array.tobytes()).decode("ascii"),
                               "frames": int(self._audio_array.shape[0])}
        if not (NODE_MODULES_DIR / "butterchurn" / "dist" / "butterchurn.js").is_file():
            raise CqError(f"butterchurn is not installed in {NODE_MODULES_DIR} (run `doit web_deps`)")
        self.state_dir = Path(state_dir)
        self.on_event = on_event
        self.pinning = pinning
        self.on_pair_start: Callable[[int, PairJob], None] | None = None
        self._registry = BrowserRegistry(self.state_dir)
        self._web = _WebFiles()
        self._events: queue.Queue = queue.Queue()
        self.renderer = self.vendor = self.engine = self.browser_version = ""
        self.gpu_mode_used = settings.gpu_mode
        self.gpu_fallback = ""
        self.restarts = 0
        self.reloads = 0
        self.chromium_path = ""
        self._gpu = settings.gpu_mode in ("safe", "require")
        self._workers: list[_Worker] = []
        self._tasks: list[asyncio.Future] = []
        self._idle: asyncio.Queue | None = None  # workers free for render_one(), made on the loop
        self._quiet: _Quiet | None = None  # made on the loop by _start
        self._playwright = None
        self._playwright_manager = None
        self._closed = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="render-pool", daemon=True)
        self._thread.start()
        try:
            self._call(self._start())
        except BaseException:
            self.close()
            raise
        self._flush_events()

    # ------------------------------------------------------------------ plumbing between the threads

    def _call(self, coroutine):
        """Run a coroutine on the pool's loop and wait for it here (interruptible)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def _event(self, kind: str, **details) -> None:
        self._events.put((kind, details))

    def _flush_events(self) -> None:
        while True:
            try:
                kind, details = self._events.get_nowait()
            except queue.Empty:
                return
            if self.on_event is not None:
                self.on_event(kind, details)

    async def _serve(self, route) -> None:
        found = self._web.get(unquote(urlsplit(route.request.url).path))
        if found is None:
            await route.fulfill(status=404, body=b"not found", content_type="text/plain")
        else:
            body, content_type = found
            await route.fulfill(status=200, body=body, content_type=content_type)

    # ------------------------------------------------------------------ lifecycle

    async def _start(self) -> None:
        from playwright.async_api import async_playwright
        self._quiet = _Quiet()
        self._playwright_manager = async_playwright()
        self._playwright = await self._playwright_manager.start()
        own = self._playwright.chromium.executable_path
        self.chromium_path = find_chromium(self.settings.chromium, own)
        self._workers = [_Worker(self, index) for index in range(self.settings.worker_count)]
        first = self._workers[0]
        problem = ""
        try:
            await first.launch(self._gpu)
        except CqError as error:
            if not self._gpu:
                raise
            problem = f"Chromium with hardware WebGL flags failed: {error}"
        renderer = first.info.get("renderer", "")
        if self._gpu and not problem and is_software_renderer(renderer):
            problem = f"hardware WebGL flags gave a software renderer ({renderer})"
        if problem:
            if self.settings.gpu_mode == "require":
                raise CqError(f"gpu_mode=require, but {problem}: check the GPU driver and "
                              "$CQ_CHROMIUM_GPU_ARGS, or use gpu_mode safe or off")
            self.gpu_fallback = f"{problem}; using software rendering"
            self._event("gpu-fallback", reason=self.gpu_fallback)
            self._gpu = False
            self.gpu_mode_used = "off"
            await first.launch(False)
        await asyncio.gather(*(worker.launch(self._gpu) for worker in self._workers[1:]))
        self.renderer = first.info["renderer"]
        self.vendor = first.info["vendor"]
        self.engine = first.info["engine"]
        self.browser_version = first.browser.version
        for worker in self._workers:
            if worker.info.get("renderer") != self.renderer:
                raise CqError(f"worker {worker.index} renders with {worker.info.get('renderer')!r}, worker 0 "
                              f"with {self.renderer!r}: rows from different renderers cannot be mixed")
            self._event("launch", worker=worker.index, pid=worker.pid, renderer=self.renderer)

    async def _shutdown(self) -> None:
        await asyncio.gather(*(worker.close_browser() for worker in self._workers), return_exceptions=True)
        if self._playwright_manager is not None:
            try:
                await asyncio.wait_for(self._playwright_manager.__aexit__(None, None, None), CLOSE_TIMEOUT_S)
            except Exception:
                pass  # the driver is going away with its browsers already closed

    def close(self) -> None:
        """Close every page and browser (also after an error or Ctrl-C); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=3 * CLOSE_TIMEOUT_S)
            except BaseException:
                for worker in self._workers:
                    if worker.pid:
                        end_browser(worker.pid, worker.owner)
                        self._registry.remove(worker.pid)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()
        self._flush_events()

    def __enter__(self) -> "RenderPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ rendering

    async def _recover(self, worker: _Worker, reason: str) -> None:
        """Bring a worker back after its page or browser died (counts toward browser_max_restarts)."""
        self.restarts += 1
        self._event("restart", worker=worker.index, reason=reason, restarts=self.restarts)
        if self.restarts > self.settings.browser_max_restarts:
            raise CqError(f"pages or browsers were restarted {self.restarts} times, more than "
                          f"browser_max_restarts={self.settings.browser_max_restarts} (last: {reason}); "
                          "check memory and the GPU, or raise --browser-max-restarts")
        if worker.browser is not None and worker.browser.is_connected():
            try:
                await worker.open_page()
                return
            except CqError:
                pass  # the browser cannot open a page either: relaunch it
        await worker.launch(self._gpu)

    async def _fresh_page(self, worker: _Worker, job: PairJob) -> None:
        """A new page for the next attempt; a browser or page that died on its own counts as a restart."""
        if worker.died():
            await self._recover(worker, f"before pair {job.pair}: the browser or page had gone away")
            return
        if worker.browser is None:
            await worker.launch(self._gpu)
            return
        try:
            await worker.open_page()
        except CqError as error:
            await self._recover(worker, f"before pair {job.pair}: {error}")

    async def _render_job(self, worker: _Worker, job: PairJob, budget: dict) -> PairResult:
        started = time.perf_counter()
        outcome = _Outcome("crashed")
        attempts = 0
        needs_page = not worker.ready()
        for attempts in (1, 2):
            if attempts == 2:
                self._event("retry", pair=job.pair, worker=worker.index, status=outcome.status)
            if needs_page:
                await self._fresh_page(worker, job)
            try:
                outcome = await worker.attempt(job, budget)
            except _BrowserLost as lost:
                outcome = _Outcome("crashed", [f"the page or browser died: {lost}"])
                await self._recover(worker, f"pair {job.pair}: {lost}")  # the retry's fresh page
                needs_page = False
                continue
            if outcome.status in FINAL_STATUSES:
                break
            needs_page = True  # a retry runs in a fresh page
        worker.pairs_since_launch += 1
        page_errors, console_errors = worker.page_errors, worker.console_errors
        worker.page_errors = worker.console_errors = 0
        thumb = base64.b64decode(outcome.thumb) if outcome.thumb else None
        timings = {**outcome.timings, "pairMs": round((time.perf_counter() - started) * 1000, 1)}
        return PairResult(job, outcome.status, outcome.errors, timings, outcome.series, thumb,
                          page_errors, console_errors, attempts, worker.index, self.renderer, gpu=worker.gpu)

    async def _next_pair(self, worker: _Worker, job: PairJob) -> PairResult:
        async with self._quiet.job() as run:
            reload_every = self.settings.reload_every
            if reload_every > 0 and worker.pairs_since_launch >= reload_every:
                # relaunched when the next pair needs it, so a finished run never starts a browser
                self.reloads += 1
                self._event("reload", worker=worker.index, reloads=self.reloads)
                await worker.launch(self._gpu)
            if self.on_pair_start is not None:
                self.on_pair_start(worker.index, job)
            result = await self._render_job(worker, job, self._budget)
        cap = self.settings.max_frame_ms
        if result.status != "too-heavy" or not run.shared:
            result.timings.update(maxFrameMs=cap, alone=not run.shared)
            return result
        shared_cost = result.timings.get("frameMs", 0.0)
        self._event("recheck", pair=job.pair, worker=worker.index, frame_ms=shared_cost)
        async with self._quiet.alone():
            alone = await self._render_job(worker, job, self._budget)
        alone.attempts += result.attempts
        alone.timings.update(maxFrameMs=cap, alone=True, sharedFrameMs=shared_cost)
        return alone

    async def _work(self, worker: _Worker, next_job, out: queue.Queue, deadline: float | None) -> None:
        while True:
            if deadline is not None and time.time() >= deadline:
                return
            job = next_job()
            if job is None:
                return
            out.put(("result", await self._next_pair(worker, job)))

    async def _run(self, jobs: Iterator[PairJob], out: queue.Queue, deadline: float | None,
                   stop: threading.Event) -> None:
        def next_job():
            if stop.is_set():
                return None
            return next(jobs, None)

        tasks = [asyncio.ensure_future(self._work(worker, next_job, out, deadline)) for worker in self._workers]
        self._tasks = tasks
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                task.result()
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    def render(self, jobs: Iterable[PairJob], deadline: float | None = None) -> Iterator[PairResult]:
        """Render `jobs`, yielding each result here as it completes; stops taking jobs at `deadline`.

        Jobs are pulled from `jobs` on the pool's thread as workers free up: keep the iterable cheap (a
        list, or a generator that does no slow work). Leaving the loop early (break, Ctrl-C) stops the
        pairs in flight; the pool stays usable.
        """
        if self._closed:
            raise CqError("the render pool is closed")
        out: queue.Queue = queue.Queue()
        stop = threading.Event()
        future = asyncio.run_coroutine_threadsafe(self._run(iter(jobs), out, deadline, stop), self._loop)
        # "done" only once _run has really ended (its workers too), however it ended
        future.add_done_callback(lambda _: out.put(("done", None)))
        finished = False
        try:
            while True:
                kind, item = out.get()
                self._flush_events()
                if kind == "done":
                    finished = True
                    future.result()
                    return
                yield item
        finally:
            if not finished:
                stop.set()
                self._loop.call_soon_threadsafe(self._cancel_tasks)
                self._wait_done(out)
            self._flush_events()

    def render_one(self, job: PairJob) -> PairResult:
        """Render one job on the next free worker and return its result. Several threads may call it at
        once (each call waits for a free browser): how an executor's task threads share one pool. Not to be
        mixed with a running render()."""
        if self._closed:
            raise CqError("the render pool is closed")
        try:
            return self._call(self._render_on_free_worker(job))
        finally:
            self._flush_events()

    async def _render_on_free_worker(self, job: PairJob) -> PairResult:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for worker in self._workers:
                self._idle.put_nowait(worker)
        worker = await self._idle.get()
        try:
            return await self._next_pair(worker, job)
        finally:
            self._idle.put_nowait(worker)

    def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()

    def _wait_done(self, out: queue.Queue) -> None:
        """After an early exit from render(), wait until the workers have stopped (they were cancelled),
        but never forever: a Ctrl-C must end the run even if a worker is wedged (close() then ends the
        browsers by PID)."""
        deadline = time.monotonic() + 2 * CLOSE_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                kind, _ = out.get(timeout=left)
            except queue.Empty:
                return
            if kind == "done":
                return

    def self_test(self, job: PairJob) -> None:
        """Render `job` twice (on two workers when there are two) and require identical series and audio;
        under no cost cap, which would only stop the comparison (the cap judges pairs, not the renderer)."""
        require_audible(self._audio_array)
        uncapped = {"maxFrameMs": 0}

        async def twice():
            first = await self._render_job(self._workers[0], job, uncapped)
            second = await self._render_job(self._workers[min(1, len(self._workers) - 1)], job, uncapped)
            return first, second

        first, second = self._call(twice())
        self._flush_events()
        for result in (first, second):
            if result.status != "ok":
                detail = result.errors[0] if result.errors else "no error text"
                raise CqError(f"self-test: {job.fg_id} did not render: {result.status}: {detail}")
        what = "layer" if job.is_layer else "pair"
        for name, values in first.series.items():
            other = second.series.get(name)
            if other != values:
                where = ""
                if isinstance(values, list):
                    where = f" at frame {next((i for i, (a, b) in enumerate(zip(values, other or [])) if a != b), 0)}"
                raise CqError(f"self-test: {what} {job.fg_id} rendered twice gave different {name}{where} on "
                              f"{self.renderer}: rendering is not deterministic here")

    @property
    def browser_pids(self) -> list[int]:
        """PIDs of the workers' browser processes (0 while one is being relaunched)."""
        return [worker.pid for worker in self._workers]


def require_audible(audio_frames: np.ndarray) -> None:
    """A CqError when every audio byte is 128 (silence): the visuals would react to nothing."""
    if not np.any(np.asarray(audio_frames) != 128):
        raise CqError("self-test: the audio frames are silent (every byte 128): the visuals would not react; "
                      "check the audio file or use the built-in click track")


def _checked_audio(audio_frames, frames: int) -> np.ndarray:
    """The first `frames` audio frames as a contiguous (frames, 3, 1024) uint8 array (the page's layout)."""
    array = np.asarray(audio_frames)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[1:] != (3, AUDIO_SAMPLES):
        raise CqError(f"audio frames must be uint8 of shape (F, 3, {AUDIO_SAMPLES}), got {array.dtype} "
                      f"{array.shape}")
    if array.shape[0] < frames:
        raise CqError(f"{array.shape[0]} audio frames for {frames} rendered frames: compute at least {frames}")
    return np.ascontiguousarray(array[:frames])
