// The quality-weighted player: plays a pack's fg/bg pairs the way the runtime does (fg over bg at 0.7,
// real time, audible audio) and lets the user rate pairs 1–5.
//
// In: URL parameters `pack`, `mode` (weighted | shuffle | random), `gamma`, `explore`, `dedup`,
// `dedupPenalty`, `hold` (seconds per pair, default 30, 0 = until N), `seed`; the pack's manifest and quality file
// from /presets/<pack>/; presets as butterchurn JSON from /api/preset.
// Out: pictures and sound; ratings POSTed to /api/rating. With `verify=1` the page also picks `picks`
// times without waiting, plays for `seconds`, and publishes `window.cqVerifyResult` for `stages/verify.py`.
//
// For a show: live input (microphone or line-in through getUserMedia, key I), fullscreen with the cursor
// hidden (F), previous pair (P, Backspace), lock the current pair against the hold timer (K, Scroll Lock).
// The pick settings (mode, gamma, explore, hold) set in the overlay are kept in localStorage and come back
// next session; URL parameters still win, and a verify run ignores what is stored. An export (E) writes the
// top-N scored pairs as a playlist: JSON in the pairs-manifest form the runtime loads (the pairs a filtered
// manifest would keep), M3U8 (each pair's fg and bg preset paths, best first, for players and scripts
// that read file lists) or CSV (rank, pair, quality, both URLs, for a spreadsheet).
import butterchurn from "/node_modules/butterchurn/dist/butterchurn.js";
import {setDotSize} from "./sampler.dots.js";

setDotSize();  // dotted waves drawn as the sampler draws them

const params = new URLSearchParams(location.search);
const number = (name, fallback) => {
  const value = Number(params.get(name));
  return params.has(name) && Number.isFinite(value) ? value : fallback;
};

const STORE_KEY = "cq.player.pickSettings";
// The pick settings a user chose last session (never in a verify run: it must be reproducible).
const stored = (() => {
  if (params.get("verify") === "1") return {};
  try {
    const value = JSON.parse(localStorage.getItem(STORE_KEY) || "{}");
    return value && typeof value === "object" ? value : {};
  } catch {
    return {};
  }
})();
const storedNumber = (name, fallback) => (Number.isFinite(stored[name]) ? stored[name] : fallback);

const settings = {
  pack: params.get("pack") || "",
  mode: params.get("mode") || stored.mode || "weighted",
  gamma: number("gamma", storedNumber("gamma", 2)),
  explore: number("explore", storedNumber("explore", 0.1)),
  dedupN: Math.max(0, Math.round(number("dedup", 8))),
  dedupPenalty: number("dedupPenalty", 0.05),
  hold: number("hold", storedNumber("hold", 30)),
  blendSeconds: number("blend", 1.5),
  fgOpacity: number("opacity", 0.7),
  seed: Math.round(number("seed", Date.now() % 2147483647)),
  verify: params.get("verify") === "1",
  verifyPicks: Math.round(number("picks", 400)),
  verifySeconds: number("seconds", 4),
};
const MODES = ["weighted", "shuffle", "random"];
const PICK_SETTINGS = ["gamma", "explore", "hold"];
const MAX_RENDER_WIDTH = 1280;

const $ = (id) => document.getElementById(id);
const view = {
  canvas: $("stage"), pack: $("pack"), mode: $("mode"), pair: $("pair"), rank: $("rank"),
  score: $("score"), scoreBar: $("score-bar"), visited: $("visited"), fg: $("fg"), bg: $("bg"),
  rms: $("rms"), rmsBar: $("rms-bar"), audioSource: $("audio-source"), rating: $("rating"),
  status: $("status"), toast: $("toast"), audioFile: $("audio-file"), lock: $("lock"),
  gamma: $("gamma"), explore: $("explore"), hold: $("hold"), exportCount: $("export-count"),
  exportFormat: $("export-format"), exportButton: $("export-button"),
};

// ---------------------------------------------------------------------------------------- picking

// mulberry32: a small seeded generator, so a verify run's picks are reproducible.
function seededRandom(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Picks the next pair: `weighted` by the runtime's rule w = (1-explore)·q^gamma + explore, with the last
// dedupN picks' weights multiplied by dedupPenalty; `shuffle` walks a reshuffled order; `random` is uniform.
export class PairPicker {
  constructor(pairs, options, random) {
    this.pairs = pairs;
    this.options = options;
    this.random = random;
    this.recent = [];
    this.order = [];
    this.weights = pairs.map((entry) =>
      (1 - options.explore) * Math.pow(entry.quality, options.gamma) + options.explore);
  }

  get dedupWindow() {
    // never penalise more than half the pack, or a small pack's best pairs could not come back
    return Math.min(this.options.dedupN, Math.floor(this.pairs.length / 2));
  }

  next(mode) {
    const index = mode === "shuffle" ? this.nextShuffled()
      : mode === "random" ? Math.floor(this.random() * this.pairs.length)
        : this.nextWeighted();
    this.recent.push(index);
    while (this.recent.length > this.dedupWindow) this.recent.shift();
    return this.pairs[index];
  }

  nextWeighted() {
    const penalised = new Set(this.recent);
    const weights = this.weights.map((w, i) => (penalised.has(i) ? w * this.options.dedupPenalty : w));
    const total = weights.reduce((sum, w) => sum + w, 0);
    let target = this.random() * total;
    for (let i = 0; i < weights.length; i++) {
      target -= weights[i];
      if (target < 0) return i;
    }
    return weights.length - 1;
  }

  nextShuffled() {
    if (this.order.length === 0) {
      this.order = this.pairs.map((_, i) => i);
      for (let i = this.order.length - 1; i > 0; i--) {
        const j = Math.floor(this.random() * (i + 1));
        [this.order[i], this.order[j]] = [this.order[j], this.order[i]];
      }
      const last = this.recent[this.recent.length - 1];
      if (this.order.length > 1 && this.order[this.order.length - 1] === last) {
        [this.order[0], this.order[this.order.length - 1]] = [this.order[this.order.length - 1], this.order[0]];
      }
    }
    return this.order.pop();
  }
}

// ---------------------------------------------------------------------------------------- loading

async function fetchJson(url) {
  const response = await fetch(url);
  let body = null;
  try {
    body = await response.json();
  } catch {
    throw new Error(`${url}: the answer is not JSON (HTTP ${response.status})`);
  }
  if (!response.ok) throw new Error(body && body.error ? body.error : `${url}: HTTP ${response.status}`);
  return body;
}

// The pack's manifest and quality file, joined per pair; a quality file of another pack is refused.
async function loadPack(pack) {
  const base = `/presets/${encodeURIComponent(pack)}`;
  const manifest = await fetchJson(`${base}/pairs-manifest.v0.json`);
  const quality = await fetchJson(`${base}/pairs-quality.v0.json`).catch((error) => {
    throw new Error(`pack "${pack}" has no usable scores (${error.message}): run \`doit\` to sample and score it`);
  });
  if (quality.pack !== manifest.pack) {
    throw new Error(`pairs-quality.v0.json is for pack "${quality.pack}" but the manifest is for "${manifest.pack}"`
      + " — rescore this pack (doit score)");
  }
  const scores = new Map(quality.pairs.map((entry) => [entry.pair, entry.quality01]));
  const fallback = quality.qualityStats.p50;
  const pairs = manifest.pairs.map((entry) => ({
    pair: entry.pair, fgUrl: entry.fgUrl, bgUrl: entry.bgUrl,
    quality: scores.has(entry.pair) ? scores.get(entry.pair) : fallback,
    scored: scores.has(entry.pair),
  }));
  const ranked = [...pairs].sort((a, b) => b.quality - a.quality);
  ranked.forEach((entry, i) => { entry.rank = i + 1; });
  const loaded = [...scores.values()];
  const mean = loaded.reduce((sum, q) => sum + q, 0) / Math.max(1, loaded.length);
  const std = Math.sqrt(loaded.reduce((sum, q) => sum + (q - mean) ** 2, 0) / Math.max(1, loaded.length));
  return {
    pack: manifest.pack, qualityPack: quality.pack, pairs,
    manifestPairs: manifest.pairs.length, qualityPairs: quality.pairs.length, qualityStd: std,
    fileStd: quality.qualityStats.std,
  };
}

const fileName = (url) => decodeURIComponent(url.split("/").pop());

// ------------------------------------------------------------------------------------------ audio

// The built-in track: 8 seconds at 120 bpm (kick, off-beat hats, a bass line, a soft chord), looped.
function clickTrack(context) {
  const seconds = 8;
  const rate = context.sampleRate;
  const buffer = context.createBuffer(2, seconds * rate, rate);
  const left = buffer.getChannelData(0);
  const right = buffer.getChannelData(1);
  const noise = seededRandom(99);
  const bass = [55, 55, 65.41, 49];
  const beat = 0.5;
  for (let i = 0; i < left.length; i++) {
    const t = i / rate;
    const inBeat = t % beat;
    const kickPhase = 2 * Math.PI * (45 * inBeat + 60 * (1 - Math.exp(-inBeat * 30)) / 30);
    const kick = Math.sin(kickPhase) * Math.exp(-inBeat * 9);
    const inHat = (t + beat / 2) % beat;
    const hat = (noise() * 2 - 1) * Math.exp(-inHat * 60) * 0.25;
    const note = bass[Math.floor(t / 2) % bass.length];
    const bassTone = Math.sin(2 * Math.PI * note * t) * 0.22 * (0.6 + 0.4 * Math.exp(-inBeat * 4));
    const chord = [220, 277.18, 329.63].reduce((sum, f) => sum + Math.sin(2 * Math.PI * f * t), 0) * 0.03;
    left[i] = 0.6 * kick + hat + bassTone + chord;
    right[i] = 0.6 * kick + 0.7 * hat + bassTone + chord * 1.2;
  }
  return buffer;
}

class AudioInput {
  constructor() {
    this.context = new AudioContext();
    this.input = this.context.createGain();
    this.analyser = this.context.createAnalyser();
    this.analyser.fftSize = 2048;
    this.samples = new Float32Array(this.analyser.fftSize);
    this.input.connect(this.analyser);
    this.source = null;
    this.live = null;
    this.label = "";
    this.lastBuffer = null;
  }

  stopSources() {
    if (this.source) this.source.stop();
    this.source = null;
    if (this.live) {
      this.live.source.disconnect();
      for (const track of this.live.stream.getTracks()) track.stop();
    }
    this.live = null;
  }

  // A track or file reaches the visuals and the speakers.
  play(buffer, label) {
    this.stopSources();
    this.source = this.context.createBufferSource();
    this.source.buffer = buffer;
    this.source.loop = true;
    this.source.connect(this.input);
    this.source.connect(this.context.destination);
    this.source.start();
    this.label = label;
    this.lastBuffer = { buffer, label };
  }

  // Live input reaches the visuals only: sending a microphone to the speakers would feed back. The
  // browser's voice processing is off so the visuals hear the music as it is.
  async playLive() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      throw new Error("this browser offers no live input here (a page must come from 127.0.0.1 or https)");
    }
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false },
    });
    this.stopSources();
    const source = this.context.createMediaStreamSource(stream);
    source.connect(this.input);
    this.live = { stream, source };
    const track = stream.getAudioTracks()[0];
    this.label = `live: ${(track && track.label) || "input"}`;
  }

  async playFile(file) {
    const buffer = await this.context.decodeAudioData(await file.arrayBuffer());
    this.play(buffer, file.name);
  }

  rms() {
    this.analyser.getFloatTimeDomainData(this.samples);
    let sum = 0;
    for (const value of this.samples) sum += value * value;
    return Math.sqrt(sum / this.samples.length);
  }
}

// ------------------------------------------------------------------------------------------ errors

// butterchurn never checks shader links; a failed link draws nothing, so record it for the overlay.
const linkFailures = [];
const linkProgram = WebGL2RenderingContext.prototype.linkProgram;
WebGL2RenderingContext.prototype.linkProgram = function checkedLinkProgram(program) {
  linkProgram.call(this, program);
  if (!this.getProgramParameter(program, this.LINK_STATUS)) {
    linkFailures.push(this.getProgramInfoLog(program) || "shader program did not link");
  }
};

// ------------------------------------------------------------------------------------------ player

class Player {
  constructor() {
    this.audio = new AudioInput();
    this.audio.play(clickTrack(this.audio.context), "built-in click track");
    this.context2d = view.canvas.getContext("2d", { alpha: false });
    this.layers = {};
    for (const name of ["bg", "fg"]) {
      this.layers[name] = butterchurn.createVisualizer(this.audio.context, document.createElement("canvas"),
        { width: 64, height: 64, pixelRatio: 1 });
      // composite straight from the renderer's own canvas; skip its copy to an unused output canvas
      this.layers[name].outputGl = null;
      this.layers[name].connectAudio(this.audio.input);
    }
    this.random = seededRandom(settings.seed);
    this.mode = MODES.includes(settings.mode) ? settings.mode : "weighted";
    this.pack = null;
    this.current = null;
    this.back = [];  // pairs shown before the current one, for "previous"
    this.locked = false;
    this.visited = new Set();
    this.loadToken = 0;
    this.shownAt = 0;
    this.onFrame = null;
    this.resize();
    addEventListener("resize", () => this.resize());
  }

  resize() {
    const scale = Math.min(devicePixelRatio || 1, MAX_RENDER_WIDTH / Math.max(1, innerWidth));
    const width = Math.max(64, Math.round(innerWidth * scale));
    const height = Math.max(64, Math.round(innerHeight * scale));
    view.canvas.width = width;
    view.canvas.height = height;
    for (const layer of Object.values(this.layers)) layer.setRendererSize(width, height);
  }

  async open(pack) {
    this.pack = await loadPack(pack);
    // a pair without a score (its presets could not be read) is listed but never picked
    const scored = this.pack.pairs.filter((entry) => entry.scored);
    if (!scored.length) throw new Error(`pack "${pack}" has no scored pair: run \`doit\` to score it`);
    this.picker = new PairPicker(scored, settings, this.random);
    this.visited.clear();
    this.back = [];
    const url = new URL(location.href);
    url.searchParams.set("pack", pack);
    history.replaceState(null, "", url);
  }

  async next() {
    if (this.current) this.back.push(this.current);
    await this.show(this.picker.next(this.mode));
  }

  async previous() {
    if (this.back.length === 0) {
      toast("no previous pair");
      return;
    }
    await this.show(this.back.pop());
  }

  toggleLock() {
    this.locked = !this.locked;
    this.shownAt = performance.now();
    this.renderInfo();
    toast(this.locked ? `pair ${this.current ? this.current.pair : ""} locked` : "unlocked");
  }

  // The picker again with the current settings (its weights depend on gamma and explore).
  repick() {
    if (this.pack) this.picker = new PairPicker(this.pack.pairs, settings, this.random);
  }

  // The best scored pairs, best first (an unscored pair is never exported: its score is a stand-in).
  topPairs(count) {
    return this.pack.pairs.filter((entry) => entry.scored)
      .sort((a, b) => b.quality - a.quality || a.pair - b.pair).slice(0, Math.max(1, count));
  }

  // Loads both presets of a pair; a preset that fails is reported and the pair is skipped by the caller.
  async show(entry) {
    const token = ++this.loadToken;
    this.current = entry;
    this.visited.add(entry.pair);
    this.shownAt = performance.now();
    view.rating.textContent = "press 1–5";
    view.rating.className = "dim";
    this.renderInfo();
    setStatus(`loading pair ${entry.pair}…`);
    const failuresBefore = linkFailures.length;
    const [fg, bg] = await Promise.all([entry.fgUrl, entry.bgUrl].map(
      (url) => fetchJson(`/api/preset?url=${encodeURIComponent(url)}`)));
    if (token !== this.loadToken) return;
    await Promise.all([
      this.layers.fg.loadPreset(fg, settings.blendSeconds),
      this.layers.bg.loadPreset(bg, settings.blendSeconds),
    ]);
    if (token !== this.loadToken) return;
    const failed = linkFailures.length - failuresBefore;
    setStatus(failed ? `${failed} shader program(s) of this pair did not link: parts of it draw nothing` : "",
      failed > 0);
  }

  renderInfo() {
    const entry = this.current;
    const total = this.pack.pairs.length;
    view.pair.textContent = String(entry.pair);
    view.rank.textContent = `rank ${entry.rank}/${total}`;
    view.score.textContent = entry.scored ? entry.quality.toFixed(3) : `${entry.quality.toFixed(3)} (unscored: median)`;
    view.scoreBar.style.width = `${Math.round(entry.quality * 100)}%`;
    view.visited.textContent = `${this.visited.size}/${total} (${Math.round(100 * this.visited.size / total)}%)`;
    view.fg.textContent = fileName(entry.fgUrl);
    view.fg.title = entry.fgUrl;
    view.bg.textContent = fileName(entry.bgUrl);
    view.bg.title = entry.bgUrl;
    view.mode.value = this.mode;
    view.lock.hidden = !this.locked;
  }

  frame() {
    const canvas = view.canvas;
    this.layers.bg.render();
    this.layers.fg.render();
    this.context2d.globalAlpha = 1;
    this.context2d.drawImage(this.layers.bg.internalCanvas, 0, 0, canvas.width, canvas.height);
    this.context2d.globalAlpha = settings.fgOpacity;
    this.context2d.drawImage(this.layers.fg.internalCanvas, 0, 0, canvas.width, canvas.height);
    this.context2d.globalAlpha = 1;
    const rms = this.audio.rms();
    view.rms.textContent = rms.toFixed(3);
    view.rmsBar.style.width = `${Math.min(100, Math.round(rms * 250))}%`;
    view.audioSource.textContent = this.audio.label;
    if (this.onFrame) this.onFrame(rms);
  }

  async rate(score) {
    if (!this.current) return;
    const entry = this.current;
    const body = { pack: this.pack.pack, pair: entry.pair, score, ratingId: crypto.randomUUID() };
    view.rating.textContent = `sending ${score}…`;
    try {
      const response = await fetch("/api/rating", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.error || `HTTP ${response.status}`);
      if (this.current === entry) {
        view.rating.textContent = `${"★".repeat(score)}${"☆".repeat(5 - score)} saved`;
        view.rating.className = "";
      }
      toast(`pair ${entry.pair} rated ${score}/5`);
    } catch (error) {
      view.rating.textContent = "not saved";
      toast(`rating not saved: ${error.message}`, true);
    }
  }
}

function setStatus(text, isError = false) {
  view.status.textContent = text;
  view.status.className = isError ? "error" : "dim";
}

let toastTimer = 0;
function toast(text, isError = false) {
  view.toast.textContent = text;
  view.toast.className = `shown${isError ? " error" : ""}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { view.toast.className = ""; }, 2500);
}

// ----------------------------------------------------------------------------------------- export

const csvField = (value) => (/[",\n]/.test(String(value)) ? `"${String(value).replace(/"/g, '""')}"` : String(value));

// A preset URL relative to its pack folder (`/presets/<pack>/fg/a.milk` -> `fg/a.milk`), as an M3U path.
function packRelative(pack, url) {
  const prefix = `/presets/${pack}/`;
  const path = decodeURIComponent(url);
  return path.startsWith(prefix) ? path.slice(prefix.length) : path.replace(/^\//, "");
}

// The playlist file of the top pairs: {name, type, text}.
export function playlist(pack, top, format, totalPairs) {
  const stem = `${pack}-top${top.length}`;
  if (format === "m3u8") {
    const lines = ["#EXTM3U", `#PLAYLIST:${pack}: top ${top.length} pairs by quality`];
    top.forEach((entry, i) => {
      for (const layer of ["fg", "bg"]) {
        lines.push(`#EXTINF:-1,#${i + 1} pair ${entry.pair} ${layer} (quality ${entry.quality.toFixed(3)})`);
        lines.push(packRelative(pack, layer === "fg" ? entry.fgUrl : entry.bgUrl));
      }
    });
    return { name: `${stem}.m3u8`, type: "audio/x-mpegurl", text: `${lines.join("\n")}\n` };
  }
  if (format === "csv") {
    const rows = [["rank", "pair", "quality01", "fgUrl", "bgUrl"],
      ...top.map((entry, i) => [i + 1, entry.pair, entry.quality, entry.fgUrl, entry.bgUrl])];
    return { name: `${stem}.csv`, type: "text/csv", text: `${rows.map((row) => row.map(csvField).join(",")).join("\n")}\n` };
  }
  const manifest = {
    version: "v0", generatedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z"), pack,
    pairs: top.map((entry) => ({ pair: entry.pair, fgUrl: entry.fgUrl, bgUrl: entry.bgUrl, quality01: entry.quality })),
    keptPairs: top.length, totalPairs,
    generatedFrom: { manifest: "pairs-manifest.v0.json", quality: "pairs-quality.v0.json", rule: "", top: top.length,
      by: "player export" },
  };
  return { name: `${stem}.json`, type: "application/json", text: `${JSON.stringify(manifest, null, 2)}\n` };
}

function exportPlaylist(player) {
  if (!player.pack) return;
  const count = Math.max(1, Math.round(Number(view.exportCount.value) || 50));
  const file = playlist(player.pack.pack, player.topPairs(count), view.exportFormat.value, player.pack.pairs.length);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([file.text], { type: file.type }));
  link.download = file.name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  toast(`exported ${file.name}`);
}

// ------------------------------------------------------------------------------------ verify mode

// Fast picks first (their counts show whether good pairs come up more often), then real playback of the
// best pair and one picked pair, sampling the composite's luma and change over time.
async function runVerify(player) {
  const counts = {};
  for (let i = 0; i < settings.verifyPicks; i++) {
    const entry = player.picker.next(player.mode);
    counts[entry.pair] = (counts[entry.pair] || 0) + 1;
  }
  const sampler = document.createElement("canvas");
  sampler.width = sampler.height = 32;
  const sampleContext = sampler.getContext("2d", { willReadFrequently: true });
  const frames = [];
  let previous = null;
  let rendered = 0;
  let lastSample = 0;
  player.onFrame = (rms) => {
    rendered += 1;
    const now = performance.now();
    if (now - lastSample < 150) return;
    lastSample = now;
    sampleContext.drawImage(view.canvas, 0, 0, 32, 32);
    const pixels = sampleContext.getImageData(0, 0, 32, 32).data;
    const luma = new Float32Array(32 * 32);
    let sum = 0;
    let delta = 0;
    for (let i = 0; i < luma.length; i++) {
      luma[i] = (0.2126 * pixels[4 * i] + 0.7152 * pixels[4 * i + 1] + 0.0722 * pixels[4 * i + 2]) / 255;
      sum += luma[i];
      if (previous) delta += Math.abs(luma[i] - previous[i]);
    }
    const mean = sum / luma.length;
    const spread = Math.sqrt(luma.reduce((total, value) => total + (value - mean) ** 2, 0) / luma.length);
    frames.push({ tMs: Math.round(now), pair: player.current.pair, luma: mean, spread,
      delta: previous ? delta / luma.length : null, audioRms: rms });
    previous = luma;
  };
  const best = player.picker.pairs.reduce((a, b) => (b.quality > a.quality ? b : a));
  const shown = [];
  const failures = [];
  window.cqVerifyStep = 1;  // steps for the caller's progress bar: picks done, then each pair played
  for (const entry of [best, player.picker.next(player.mode)]) {
    try {
      await player.show(entry);
      shown.push(entry.pair);
      await new Promise((resolve) => setTimeout(resolve, (settings.verifySeconds * 1000) / 2));
    } catch (error) {
      failures.push({ pair: entry.pair, error: String(error.message || error) });
    }
    window.cqVerifyStep += 1;
  }
  player.onFrame = null;
  return {
    pack: player.pack.pack, qualityPack: player.pack.qualityPack,
    manifestPairs: player.pack.manifestPairs, qualityPairs: player.pack.qualityPairs,
    qualityStd: player.pack.qualityStd, mode: player.mode,
    pickSettings: { gamma: settings.gamma, explore: settings.explore, dedupN: player.picker.dedupWindow,
      dedupPenalty: settings.dedupPenalty, seed: settings.seed },
    picks: settings.verifyPicks, pickCounts: counts, shownPairs: shown, presetFailures: failures,
    renderedFrames: rendered, frames, linkFailures: [...linkFailures],
    renderer: rendererName(), audioState: player.audio.context.state,
  };
}

function rendererName() {
  const gl = document.createElement("canvas").getContext("webgl2");
  const info = gl && gl.getExtension("WEBGL_debug_renderer_info");
  return info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : "unknown";
}

// -------------------------------------------------------------------------------------------- main

async function populatePacks(current) {
  const { packs } = await fetchJson("/api/packs");
  view.pack.replaceChildren(...packs.map((name) => new Option(name, name, false, name === current)));
  return packs;
}

function bindKeys(player) {
  const context = player.audio.context;
  const showAudioState = () => document.body.classList.toggle("audio-running", context.state === "running");
  context.addEventListener("statechange", showAudioState);
  showAudioState();
  const startAudio = () => context.resume();
  addEventListener("pointerdown", startAudio);
  addEventListener("keydown", (event) => {
    startAudio();
    if (event.target instanceof HTMLSelectElement || event.target instanceof HTMLInputElement
      || event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    if (/^[1-5]$/.test(key)) {
      // one rating per keypress: a held key's auto-repeat sends nothing more
      if (!event.repeat) player.rate(Number(key));
    } else if (key === "n" || key === "arrowright" || key === " ") {
      event.preventDefault();
      advance(player);
    } else if (key === "p" || key === "arrowleft" || key === "backspace") {
      event.preventDefault();
      player.previous().catch((error) => setStatus(`previous pair: ${error.message}`, true));
    } else if (key === "k" || key === "scrolllock") {
      player.toggleLock();
    } else if (key === "f") {
      toggleFullscreen();
    } else if (key === "i") {
      toggleLiveInput(player);
    } else if (key === "e") {
      exportPlaylist(player);
    } else if (key === "m") {
      player.mode = MODES[(MODES.indexOf(player.mode) + 1) % MODES.length];
      player.renderInfo();
      storePickSettings(player);
      toast(`mode: ${player.mode}`);
    } else if (key === "a") {
      view.audioFile.click();
    } else if (key === "o") {
      document.body.classList.toggle("hide-overlay");
    }
  });
  const useAudioFile = async (file) => {
    if (!file) return;
    try {
      await player.audio.playFile(file);
      startAudio();
      toast(`audio: ${file.name}`);
    } catch (error) {
      toast(`cannot play ${file.name}: ${error.message}`, true);
    }
  };
  view.audioFile.addEventListener("change", () => useAudioFile(view.audioFile.files[0]));
  addEventListener("dragover", (event) => event.preventDefault());
  addEventListener("drop", (event) => {
    event.preventDefault();
    useAudioFile(event.dataTransfer.files[0]);
  });
  view.mode.addEventListener("change", () => {
    player.mode = view.mode.value;
    storePickSettings(player);
  });
  for (const name of PICK_SETTINGS) {
    view[name].value = String(settings[name]);
    view[name].addEventListener("change", () => {
      const value = Number(view[name].value);
      if (!Number.isFinite(value) || value < Number(view[name].min)) {
        view[name].value = String(settings[name]);
        toast(`${name} must be a number of at least ${view[name].min}`, true);
        return;
      }
      settings[name] = value;
      player.repick();
      storePickSettings(player);
    });
  }
  view.exportButton.addEventListener("click", () => exportPlaylist(player));
  document.addEventListener("fullscreenchange", () => {
    const full = Boolean(document.fullscreenElement);
    document.body.classList.toggle("fullscreen", full);
    document.body.classList.toggle("hide-overlay", full);
  });
  view.pack.addEventListener("change", async () => {
    try {
      await player.open(view.pack.value);
      advance(player);
    } catch (error) {
      setStatus(error.message, true);
    }
  });
}

function storePickSettings(player) {
  if (settings.verify) return;
  const value = { mode: player.mode };
  for (const name of PICK_SETTINGS) value[name] = settings[name];
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify(value));
  } catch (error) {
    toast(`pick settings not kept: ${error.message}`, true);
  }
}

function toggleFullscreen() {
  const request = document.fullscreenElement ? document.exitFullscreen() : document.documentElement.requestFullscreen();
  request.catch((error) => toast(`fullscreen: ${error.message}`, true));
}

// Live input on, or back to the last track or file.
async function toggleLiveInput(player) {
  const audio = player.audio;
  try {
    if (audio.live) {
      const last = audio.lastBuffer || { buffer: clickTrack(audio.context), label: "built-in click track" };
      audio.play(last.buffer, last.label);
    } else {
      await audio.playLive();
    }
    await audio.context.resume();
    toast(`audio: ${audio.label}`);
  } catch (error) {
    toast(`live input: ${error.message}`, true);
  }
}

// Shows the next pair; a pair whose presets fail to load is reported and skipped after a moment.
async function advance(player) {
  if (!player.picker) return;
  try {
    await player.next();
  } catch (error) {
    setStatus(`pair ${player.current.pair} skipped: ${error.message}`, true);
    setTimeout(() => advance(player), 1500);
  }
}

async function main() {
  const player = new Player();
  window.cqPlayer = player;
  const loop = () => {
    player.frame();
    if (settings.hold > 0 && !settings.verify && !player.locked
      && performance.now() - player.shownAt > settings.hold * 1000) {
      player.shownAt = performance.now();
      advance(player);
    }
    requestAnimationFrame(loop);
  };
  try {
    const packs = await populatePacks(settings.pack);
    // keys and the pack menu work even when the requested pack does not load, so another can be picked
    bindKeys(player);
    requestAnimationFrame(loop);
    const pack = settings.pack || packs[0];
    if (!pack) throw new Error("no packs in this workspace: add public/presets/<pack>/pairs-manifest.v0.json");
    if (!packs.includes(pack)) {
      const known = packs.join(", ") || "none";
      throw new Error(`there is no pack "${pack}" in this workspace (it has ${known}): pick one above`);
    }
    await player.open(pack);
    view.pack.value = pack;
    if (settings.verify) {
      window.cqVerifyResult = await runVerify(player);
    } else {
      await advance(player);
    }
  } catch (error) {
    setStatus(error.message, true);
    if (settings.verify) window.cqVerifyResult = { fatal: error.message };
  }
}

main();
