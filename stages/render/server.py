"""A small local HTTP server for the player: pages, presets, and the ratings it collects.

In: a `Workspace` (its `public/` holds the packs) and the `web/` folder with the player page.
Out: an HTTP server on 127.0.0.1 (never another interface) answering

    GET  /                         -> redirect to the player
    GET  /web/<file>               -> the player page and its script/style, from `web_dir`
    GET  /node_modules/<file>      -> the pinned renderer (butterchurn), from `modules_dir`
    GET  /presets/<pack>/<file>    -> files under the workspace's `public/presets/` (manifest, quality file)
    GET  /api/packs                -> {"packs": [...]} packs with a manifest
    GET  /api/preset?url=/presets/...  -> one preset as butterchurn JSON, through `presets.conversion.load_preset`
                                      (so every preset type it reads plays, `.milk` converted once and cached
                                      in the workspace's state dir); a preset it refuses -> 422 with why
    POST /api/rating               -> {pack, pair, score 1..5, ratingId}: one validated row appended (fsynced)
                                      to the workspace's ratings file; a repeated ratingId is not appended again
    GET  /api/watch                -> the numbers of the sampling run (`stages.render.watch`), for web/watch.html
    GET  /artifacts/<pack>/thumbs/<file> -> a pair's thumbnail, from the pack's eval folder

Run it for a user with `python -m stages.cli serve [--port 8765]`, then open the printed address.
"""
from __future__ import annotations

import contextlib
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from ..core.contracts import append_jsonl, dumps, load_manifest, now_iso, read_jsonl, resolve_url, validate_rating
from ..core.errors import ContractError, CqError
from ..core.workspace import NODE_MODULES_DIR, WEB_DIR, Workspace
from ..presets.conversion import load_preset
from .watch import Watcher

HOST = "127.0.0.1"
PLAYER_PATH = "/web/player.html"
WATCH_PATH = "/web/watch.html"
MAX_BODY_BYTES = 16 * 1024
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")


class RatingsLog:
    """Appends ratings to one JSON-lines file, each `ratingId` at most once, safe across server threads."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = threading.Lock()
        self.seen_ids = {row["ratingId"] for row in read_jsonl(self.path).rows
                         if isinstance(row.get("ratingId"), str)}

    def append(self, rating: dict) -> bool:
        """Append a validated rating, durably (fsynced) before returning; False when its ratingId was already
        recorded (a client retry). An OSError (a full disk) propagates: nothing is acknowledged."""
        with self.lock:
            if rating["ratingId"] in self.seen_ids:
                return False
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as handle:
                if handle.tell() and not self._ends_with_newline():
                    # a write cut short (a full disk, a kill) left a fragment: end it on its own line, kept
                    # as it is, so this rating is not glued onto it and lost to the reader
                    handle.write(b"\n")
                append_jsonl(handle, rating)
            self.seen_ids.add(rating["ratingId"])
            return True

    def _ends_with_newline(self) -> bool:
        with self.path.open("rb") as handle:
            handle.seek(-1, 2)
            return handle.read(1) == b"\n"


class PlayerServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, workspace: Workspace, port: int = 0, web_dir: Path = WEB_DIR,
                 modules_dir: Path | None = None):
        super().__init__((HOST, port), PlayerHandler)
        self.workspace = workspace
        self.web_dir = Path(web_dir).resolve()
        self.modules_dir = Path(modules_dir or NODE_MODULES_DIR).resolve()
        self.ratings = RatingsLog(workspace.ratings_path)
        self.watcher = Watcher(workspace)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}"


def _static_file(base: Path, relative: str) -> Path | None:
    """The file `relative` names under `base`, or None when it is missing or would escape `base`."""
    parts = PurePosixPath(relative).parts
    if not parts or any(part in ("..", "") or "\\" in part for part in parts):
        return None
    try:
        target = base.joinpath(*parts).resolve()
        if base not in target.parents or not target.is_file():
            return None
    except OSError:  # a name the file system refuses (over 255 bytes) names no file
        return None
    return target


class PlayerHandler(BaseHTTPRequestHandler):
    server: PlayerServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        """Quiet: the player polls nothing, and a request log would drown doit's output."""

    # -- responses
    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value) -> None:
        self._send(status, dumps(value), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _file(self, path: Path | None) -> None:
        if path is None:
            self._error(HTTPStatus.NOT_FOUND, f"not found: {unquote(urlsplit(self.path).path)}")
            return
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix == ".milk":
            content_type = "text/plain; charset=utf-8"
        self._send(HTTPStatus.OK, path.read_bytes(), content_type)

    # -- routes
    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        split = urlsplit(self.path)
        route = unquote(split.path)
        if "\0" in route or "\0" in unquote(split.query):
            self._error(HTTPStatus.BAD_REQUEST, "a path or query with a NUL byte names no file")
            return
        if route in ("/", "/index.html"):
            self._send(HTTPStatus.FOUND, b"", "text/plain", {"Location": PLAYER_PATH})
        elif route == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
        elif route.startswith("/web/"):
            self._file(_static_file(self.server.web_dir, route[len("/web/"):]))
        elif route.startswith("/node_modules/"):
            self._file(_static_file(self.server.modules_dir, route[len("/node_modules/"):]))
        elif route.startswith("/presets/"):
            self._file(_static_file((self.server.workspace.public / "presets").resolve(),
                                    route[len("/presets/"):]))
        elif route == "/api/packs":
            self._json(HTTPStatus.OK, {"packs": self.server.workspace.packs()})
        elif route == "/api/preset":
            self._preset(parse_qs(split.query).get("url", [""])[0])
        elif route == "/api/watch":
            self._watch()
        elif route.startswith("/artifacts/"):
            self._thumb(route[len("/artifacts/"):])
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such route: {route}")

    def _preset(self, url: str) -> None:
        if not url.startswith("/presets/"):
            self._error(HTTPStatus.BAD_REQUEST, "url must be a preset path like /presets/<pack>/fg/a.milk")
            return
        try:
            path = resolve_url(self.server.workspace.public, url, url)
            if not path.is_file():
                self._error(HTTPStatus.NOT_FOUND, f"preset file not found: {url}")
                return
            body = dumps(load_preset(path, cache_dir=self.server.workspace.conversion_cache_dir))
        except CqError as error:
            self._error(HTTPStatus.UNPROCESSABLE_ENTITY, str(error))
            return
        except OSError as error:  # a name the file system refuses (over 255 bytes), an unreadable file
            self._error(HTTPStatus.NOT_FOUND, f"preset file not readable: {url} ({error.strerror})")
            return
        self._send(HTTPStatus.OK, body, "application/json")

    def _watch(self) -> None:
        try:
            self._json(HTTPStatus.OK, self.server.watcher.snapshot())
        except CqError as error:
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, str(error))

    def _thumb(self, relative: str) -> None:
        pack, _, rest = relative.partition("/")
        if pack not in self.server.workspace.packs() or not rest.startswith("thumbs/"):
            self._file(None)
            return
        self._file(_static_file(self.server.workspace.thumbs_dir(pack).resolve(), rest[len("thumbs/"):]))

    def do_POST(self):
        if urlsplit(self.path).path != "/api/rating":
            self._error(HTTPStatus.NOT_FOUND, f"no such route: {self.path}")
            return
        length_header = self.headers.get("Content-Length") or "0"
        length = int(length_header) if length_header.isdigit() else -1
        if not 0 < length <= MAX_BODY_BYTES:
            self.close_connection = True  # the body's end is unknown: this connection cannot be reused
            self._error(HTTPStatus.BAD_REQUEST, f"Content-Length {length_header!r}: a rating is a JSON body of "
                                                f"1..{MAX_BODY_BYTES} bytes")
            return
        try:
            status, answer = self._rating(self.rfile.read(length))
        except CqError as error:
            status, answer = HTTPStatus.BAD_REQUEST, {"error": str(error)}
        except OSError as error:  # not durably written, so not acknowledged
            status, answer = HTTPStatus.INSUFFICIENT_STORAGE, {
                "error": f"the rating was not saved: {error.strerror} ({self.server.workspace.ratings_path}); "
                         "free some space and rate again"}
        self._json(status, answer)

    def _rating(self, body: bytes) -> tuple[int, dict]:
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ContractError("rating", "body is not JSON") from None
        if not isinstance(request, dict):
            raise ContractError("rating", "body must be a JSON object")
        rating_id = request.get("ratingId")
        if not isinstance(rating_id, str) or not 8 <= len(rating_id) <= 64:
            raise ContractError("rating", "ratingId must be a string of 8..64 characters")
        pack = request.get("pack")
        if not isinstance(pack, str) or pack not in self.server.workspace.packs():
            raise ContractError("rating", f"unknown pack {pack!r}")
        manifest = load_manifest(self.server.workspace.manifest_path(pack))
        pair = request.get("pair")
        # type(), not isinstance: JSON true is a bool, and a bool must not stand for pair 1
        entry = next((item for item in manifest.pairs if type(pair) is int and item.pair == pair), None)
        if entry is None:
            raise ContractError("rating", f"pair {request.get('pair')!r} is not in pack {pack!r}")
        rating = validate_rating({"pack": pack, "pair": entry.pair, "fgUrl": entry.fgUrl, "bgUrl": entry.bgUrl,
                                  "score": request.get("score"), "ratedAt": now_iso(), "ratingId": rating_id})
        created = self.server.ratings.append(rating)
        return (HTTPStatus.CREATED if created else HTTPStatus.OK), {"rating": rating, "recorded": created}


@contextlib.contextmanager
def serving(workspace: Workspace, port: int = 0, web_dir: Path = WEB_DIR, modules_dir: Path | None = None):
    """Run a `PlayerServer` in a background thread for the duration of a `with` block; yields it."""
    try:
        server = PlayerServer(workspace, port, web_dir, modules_dir)
    except OSError as error:
        raise CqError(f"cannot listen on {HOST}:{port}: {error.strerror} (pick another --port)") from None
    thread = threading.Thread(target=server.serve_forever, name="player-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
