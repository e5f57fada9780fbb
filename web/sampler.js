/*
 * The sampling page: renders one fg/bg pair of MilkDrop presets deterministically and measures each frame.
 *
 * In (driven by stages/render.py through window.cq, once loaded the page sets window.cqReady = true):
 *   cq.setAudio({base64, frames})   the audio of every pair, once per page load: `frames` audio frames,
 *                                   bytes laid out [frame][timeByteArray, L, R][1024] (numpy (F, 3, 1024)
 *                                   uint8, C order), 128 = silence.
 *   cq.renderPair({fg, bg, settings, budget})  fg/bg: butterchurn preset objects; settings: RenderSettings
 *                                   (width, height, frames, dt, seed, fg_opacity, blend, readback, thumb_frame);
 *                                   budget: {maxFrameMs} (0: none), the render cost a pair may have.
 *   cq.renderLayer({preset, settings, size, budget})  one preset alone, what sampling renders (a layer of
 *                                   any pair, and its fingerprint): its frames reduced to size x size, see
 *                                   renderLayer below. renderPair renders both layers together (screening,
 *                                   the fidelity bench, and the proof that composing layers in Python gives
 *                                   the page's statistics: tests/test_render.py).
 *   cq.warmUp(settings)             renders an empty pair for 2 frames, so the first real pair of a page
 *                                   does not pay for compiling butterchurn's shaders and code.
 *   cq.info()                       {vendor, renderer, engine}: the WebGL renderer and the engine version.
 * Out of renderPair: {status: ok | shader-failed | eel-error | load-failed | too-heavy, errors: [text],
 *   timings: {createMs, loadMs, renderMs, framesMs, readbackMs, statsMs, thumbMs, frameMs, peakFrameMs,
 *   framesRendered, costClock}, series: {luma, lumaStd, colour, delta, black, white, fgLuma, bgLuma,
 *   fgShare} (one number per frame, null unless ok), thumb: base64 PNG of the composite or ""}.
 *
 * Render cost: frameMs is renderMs / framesRendered, the wall time of a frame of the pair (both layers,
 * readback and statistics included) at the sampling size; costClock says which clock ("wall": Chromium
 * exposes no GPU timer queries to pages by default). framesMs is the time spent in butterchurn's render
 * calls (script and GL command submission), readbackMs the time waiting for the GPU at the reads. When a
 * budget is set and the frames so far cost more than maxFrameMs each at a read, the pair stops there with
 * status too-heavy (a live show could not play it; it must not hold a worker). Every read but the last is
 * such a check; peakFrameMs is the highest cost so far at one of them, with or without a budget, so a pair
 * that was not cut would be cut by any budget below its peakFrameMs (how rows are judged again when the
 * budget is lowered, stages/core/rows.py).
 *
 * Readback: each frame's downsample is blitted into a slot of a strip (one per layer, frames one above the
 * other) and the strip is read at once every CHUNK_FRAMES frames: 2 synchronous reads per chunk, not per
 * frame, so the GPU is not drained after every frame. The statistics of a frame are computed from its slot
 * exactly as from a frame read alone (same pixels, same order of arithmetic), whatever the chunking.
 *
 * Determinism (RENDERING.md): two fresh visualizers per pair with deterministic:true and the pair's seed,
 * built-in textures loaded before the first frame, rng.reset(seed) after loading, a fixed elapsedTime and
 * the same audio frame f for frame f. Nothing here reads the clock or Math.random into the pixels.
 *
 * The composite (the documented blend): each layer is reduced on the GPU to a readback x readback image
 * (blits that halve the frame, each an exact 2x2 box average, then one bilinear blit to the final size),
 * and the layers are composited here per pixel in sRGB-encoded values, as the runtime's canvas stack does,
 * with a = fg_opacity (the original runtime: normal blend, a = 0.7):
 *   normal  c = a*fg + (1-a)*bg          (canvas 'source-over' with globalAlpha a)
 *   screen  c = bg + a*fg*(1-bg)         (canvas 'screen')
 *   add     c = min(1, bg + a*fg)        (canvas 'lighter')
 * The thumbnail is the full-size composite drawn the same way with the canvas operations named above.
 *
 * Per-frame statistics of the composite (values in [0,1]; luma is Rec.709 of the encoded values):
 *   luma, lumaStd   mean and standard deviation of luma
 *   colour          Hasler-Suesstrunk colourfulness on [0,1] channels (0 = grey, ~1 = extreme)
 *   delta           mean |luma_t - luma_t-1| per pixel (0 at frame 0)
 *   black, white    fraction of pixels with luma < 0.05 / > 0.95
 *   fgLuma, bgLuma  mean luma of each layer alone
 *   fgShare         how much of the composite's visible structure comes from fg:
 *                   max(0, cov(Yc, Yfg)) / (max(0, cov(Yc, Yfg)) + max(0, cov(Yc, Ybg))), 0.5 when both are 0.
 *                   (The ratio of mean|comp-bg| to mean|comp-fg| is not used: under the normal blend it is
 *                   exactly fg_opacity for every pair.)
 */
import butterchurn from "./node_modules/butterchurn/dist/butterchurn.js";
import {setDotSize} from "./sampler.dots.js";

// Bump when the pixels or statistics this page produces change: it is part of every row's content key.
const PAGE_VERSION = 4;
const CHUNK_FRAMES = 24;
const TEXTURE_WAIT_MS = 10000;
const BLACK_LUMA = 0.05;
const WHITE_LUMA = 0.95;
const FLAT_COVARIANCE = 1e-9;

let audioBytes = null;
let audioFrames = 0;

// ------------------------------------------------------------------------------ error collection

// What went wrong during the current pair: shader link logs and exceptions, as text.
let linkFailures = [];
let pageErrors = [];
let phase = "idle";

const gl2 = WebGL2RenderingContext.prototype;
setDotSize(gl2);  // reproducible dotted waves
const originalLinkProgram = gl2.linkProgram;
// butterchurn never checks LINK_STATUS: a broken preset shader would silently draw nothing.
gl2.linkProgram = function linkProgramChecked(program) {
  originalLinkProgram.call(this, program);
  if (this.isContextLost() || this.getProgramParameter(program, this.LINK_STATUS)) {
    return;
  }
  const lines = [`${phase}: shader program failed to link: ${(this.getProgramInfoLog(program) || "").trim()}`];
  for (const shader of this.getAttachedShaders(program) || []) {
    if (!this.getShaderParameter(shader, this.COMPILE_STATUS)) {
      const kind = this.getShaderParameter(shader, this.SHADER_TYPE) === this.VERTEX_SHADER ? "vertex" : "fragment";
      lines.push(`${phase}: ${kind} shader failed to compile: ${(this.getShaderInfoLog(shader) || "").trim()}`);
    }
  }
  linkFailures.push(lines.join("\n"));
};

window.addEventListener("error", (event) => {
  pageErrors.push(`${phase}: page error: ${event.message}`);
});
window.addEventListener("unhandledrejection", (event) => {
  pageErrors.push(`${phase}: unhandled rejection: ${describe(event.reason)}`);
});

function describe(error) {
  if (error && error.message) {
    return `${error.name || "Error"}: ${error.message}`;
  }
  return String(error);
}

// EEL compile errors (eel-wasm's parser and compiler) and traps in the compiled wasm.
function isEelError(error) {
  if (!error) return false;
  if (error instanceof WebAssembly.RuntimeError || error instanceof WebAssembly.CompileError ||
      error instanceof WebAssembly.LinkError) {
    return true;
  }
  if (error.loc !== undefined || error.sourceContext !== undefined) return true;
  const message = String(error.message || "");
  return /^Parse error|^Lexical error|Undefined local function|was declared as using a variable/i.test(message);
}

// ------------------------------------------------------------------------------ readback

// Reduces a visualizer's frames (its default framebuffer) to size x size on the GPU, each into its slot of a
// strip `slots` frames tall, and reads the strip back at once. Renderbuffers only, and every binding it
// touches restored, so butterchurn's own state is unaffected.
function makeReader(gl, width, height, size, slots) {
  const renderbufferFor = (lw, lh) => {
    const renderbuffer = gl.createRenderbuffer();
    gl.bindRenderbuffer(gl.RENDERBUFFER, renderbuffer);
    gl.renderbufferStorage(gl.RENDERBUFFER, gl.RGBA8, lw, lh);
    const framebuffer = gl.createFramebuffer();
    gl.bindFramebuffer(gl.FRAMEBUFFER, framebuffer);
    gl.framebufferRenderbuffer(gl.FRAMEBUFFER, gl.COLOR_ATTACHMENT0, gl.RENDERBUFFER, renderbuffer);
    return framebuffer;
  };
  // halving levels, each an exact 2x2 box average, then one bilinear blit to size x size unless a
  // halving lands on it; the last level is the frame's slot in the strip
  const sizes = [];
  let w = width;
  let h = height;
  while (w >= 2 * size || h >= 2 * size) {
    w = w >= 2 * size ? Math.floor(w / 2) : w;
    h = h >= 2 * size ? Math.floor(h / 2) : h;
    sizes.push([w, h]);
  }
  if (w !== size || h !== size) {
    sizes.push([size, size]);
  }
  const strip = renderbufferFor(size, size * slots);
  const levels = sizes.slice(0, -1).map(([lw, lh]) => ({framebuffer: renderbufferFor(lw, lh), w: lw, h: lh}));
  gl.bindRenderbuffer(gl.RENDERBUFFER, null);
  gl.bindFramebuffer(gl.FRAMEBUFFER, null);

  return {
    capture(slot) {
      let source = null;
      let sw = width;
      let sh = height;
      for (const level of levels) {
        gl.bindFramebuffer(gl.READ_FRAMEBUFFER, source);
        gl.bindFramebuffer(gl.DRAW_FRAMEBUFFER, level.framebuffer);
        gl.blitFramebuffer(0, 0, sw, sh, 0, 0, level.w, level.h, gl.COLOR_BUFFER_BIT, gl.LINEAR);
        source = level.framebuffer;
        sw = level.w;
        sh = level.h;
      }
      gl.bindFramebuffer(gl.READ_FRAMEBUFFER, source);
      gl.bindFramebuffer(gl.DRAW_FRAMEBUFFER, strip);
      const y = slot * size;
      gl.blitFramebuffer(0, 0, sw, sh, 0, y, size, y + size, gl.COLOR_BUFFER_BIT, gl.LINEAR);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    },
    read(out, count) {
      gl.bindFramebuffer(gl.READ_FRAMEBUFFER, strip);
      gl.readPixels(0, 0, size, size * count, gl.RGBA, gl.UNSIGNED_BYTE, out);
      gl.bindFramebuffer(gl.FRAMEBUFFER, null);
    },
  };
}

// ------------------------------------------------------------------------------ statistics

const SERIES = ["luma", "lumaStd", "colour", "delta", "black", "white", "fgLuma", "bgLuma", "fgShare"];

function blendFunction(blend, a) {
  if (blend === "screen") return (f, b) => b + a * f * (1 - b);
  if (blend === "add") return (f, b) => Math.min(1, b + a * f);
  return (f, b) => a * f + (1 - a) * b;
}

// Measures one frame from the fg and bg downsamples (RGBA bytes); `lumaPrev`/`lumaNow` hold the
// composite's luma per pixel of the previous and this frame.
function measureFrame(series, frame, fgPixels, bgPixels, mix, lumaPrev, lumaNow) {
  const n = lumaNow.length;
  let sumY = 0, sumY2 = 0, black = 0, white = 0, delta = 0;
  let sumRg = 0, sumRg2 = 0, sumYb = 0, sumYb2 = 0;
  let sumF = 0, sumB = 0, sumYF = 0, sumYB = 0;
  for (let i = 0, p = 0; i < n; i++, p += 4) {
    const fr = fgPixels[p] / 255, fg = fgPixels[p + 1] / 255, fb = fgPixels[p + 2] / 255;
    const br = bgPixels[p] / 255, bg = bgPixels[p + 1] / 255, bb = bgPixels[p + 2] / 255;
    const cr = mix(fr, br), cg = mix(fg, bg), cb = mix(fb, bb);
    const y = 0.2126 * cr + 0.7152 * cg + 0.0722 * cb;
    const yf = 0.2126 * fr + 0.7152 * fg + 0.0722 * fb;
    const yb = 0.2126 * br + 0.7152 * bg + 0.0722 * bb;
    sumY += y;
    sumY2 += y * y;
    if (y < BLACK_LUMA) black++;
    if (y > WHITE_LUMA) white++;
    delta += Math.abs(y - lumaPrev[i]);
    lumaNow[i] = y;
    const rg = cr - cg;
    const ybChroma = 0.5 * (cr + cg) - cb;
    sumRg += rg;
    sumRg2 += rg * rg;
    sumYb += ybChroma;
    sumYb2 += ybChroma * ybChroma;
    sumF += yf;
    sumB += yb;
    sumYF += y * yf;
    sumYB += y * yb;
  }
  const meanY = sumY / n;
  const meanRg = sumRg / n, meanYb = sumYb / n;
  const varRg = Math.max(0, sumRg2 / n - meanRg * meanRg);
  const varYb = Math.max(0, sumYb2 / n - meanYb * meanYb);
  const meanF = sumF / n, meanB = sumB / n;
  const covF = Math.max(0, sumYF / n - meanY * meanF);
  const covB = Math.max(0, sumYB / n - meanY * meanB);
  series.luma[frame] = meanY;
  series.lumaStd[frame] = Math.sqrt(Math.max(0, sumY2 / n - meanY * meanY));
  series.colour[frame] = Math.sqrt(varRg + varYb) + 0.3 * Math.sqrt(meanRg * meanRg + meanYb * meanYb);
  series.delta[frame] = frame === 0 ? 0 : delta / n;
  series.black[frame] = black / n;
  series.white[frame] = white / n;
  series.fgLuma[frame] = meanF;
  series.bgLuma[frame] = meanB;
  series.fgShare[frame] = covF + covB > FLAT_COVARIANCE ? covF / (covF + covB) : 0.5;
}

// ------------------------------------------------------------------------------ rendering

const scratchCanvas = document.createElement("canvas");
scratchCanvas.width = 1;
scratchCanvas.height = 1;

function createVisualizer(settings) {
  const viz = butterchurn.createVisualizer(null, scratchCanvas, {
    deterministic: true, seed: settings.seed, width: settings.width, height: settings.height,
  });
  viz.outputGl = null;  // measure the internal frame; skip the copy to an output canvas
  return viz;
}

async function texturesReady(viz) {
  const images = viz.renderer.image;
  await Promise.all([images.clouds2Image.decode(), images.emptyImage.decode()]).catch(() => undefined);
  const start = performance.now();
  while (!(images.samplers.clouds2 && images.samplers.empty)) {
    if (performance.now() - start > TEXTURE_WAIT_MS) {
      throw new Error("butterchurn's built-in textures did not load");
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

function thumbnail(fgViz, bgViz, settings) {
  const canvas = document.createElement("canvas");
  canvas.width = settings.width;
  canvas.height = settings.height;
  const context = canvas.getContext("2d");
  context.drawImage(bgViz.internalCanvas, 0, 0);
  context.globalAlpha = settings.fg_opacity;
  context.globalCompositeOperation = {normal: "source-over", screen: "screen", add: "lighter"}[settings.blend];
  context.drawImage(fgViz.internalCanvas, 0, 0);
  return canvas.toDataURL("image/png").split(",")[1];
}

// The audio butterchurn hears at frame f: the f-th of the frames set by setAudio.
function audioLevelsAt(frame) {
  const offset = frame * 3 * 1024;
  return {
    timeByteArray: audioBytes.subarray(offset, offset + 1024),
    timeByteArrayL: audioBytes.subarray(offset + 1024, offset + 2048),
    timeByteArrayR: audioBytes.subarray(offset + 2048, offset + 3072),
  };
}

function thumbnailFrame(settings) {
  return settings.thumb_frame < 0 ? Math.floor(settings.frames / 2) : Math.min(settings.thumb_frame, settings.frames - 1);
}

// Books the frames read back so far into `timings` (their wall cost since `start`) and says why the render
// must stop, or "" while it may go on: the cost is judged only where frames are left to cut.
function overBudget(timings, start, done, frames, maxFrameMs) {
  timings.framesRendered = done;
  timings.renderMs = performance.now() - start;
  timings.frameMs = timings.renderMs / done;
  if (done >= frames) return "";
  timings.peakFrameMs = Math.max(timings.peakFrameMs, timings.frameMs);
  if (timings.frameMs <= maxFrameMs) return "";
  return `frames cost ${timings.frameMs.toFixed(1)} ms each (wall, over the first ${done} of ${frames}), ` +
         `above the budget of ${maxFrameMs} ms`;
}

function checkSettings(settings) {
  for (const key of ["width", "height", "frames", "readback"]) {
    if (!Number.isInteger(settings[key]) || settings[key] < 1) {
      throw new Error(`settings.${key} must be a positive integer, got ${settings[key]}`);
    }
  }
  if (!(settings.dt > 0)) throw new Error(`settings.dt must be > 0, got ${settings.dt}`);
  if (!["normal", "screen", "add"].includes(settings.blend)) {
    throw new Error(`settings.blend must be normal, screen or add, got ${settings.blend}`);
  }
  if (!audioBytes) throw new Error("no audio: call cq.setAudio before cq.renderPair");
  if (settings.frames > audioFrames) {
    throw new Error(`${settings.frames} frames asked for but only ${audioFrames} audio frames were set`);
  }
}

async function renderPair({fg, bg, settings, budget = {}}) {
  linkFailures = [];
  pageErrors = [];
  const timings = {createMs: 0, loadMs: 0, renderMs: 0, framesMs: 0, readbackMs: 0, statsMs: 0, thumbMs: 0,
                   frameMs: 0, peakFrameMs: 0, framesRendered: 0, costClock: "wall"};
  const result = (status, errors, series = null, thumb = "") => {
    phase = "idle";
    return {status, errors: [...errors, ...linkFailures, ...pageErrors], timings, series, thumb};
  };
  const visualizers = [];
  try {
    phase = "settings";
    checkSettings(settings);
    for (const [name, preset] of [["fg", fg], ["bg", bg]]) {
      if (!preset || typeof preset !== "object" || typeof preset.baseVals !== "object") {
        return result("load-failed", [`${name}: not a butterchurn preset (no baseVals object)`]);
      }
    }

    let start = performance.now();
    phase = "create";
    const fgViz = createVisualizer(settings);
    visualizers.push(fgViz);
    const bgViz = createVisualizer(settings);
    visualizers.push(bgViz);
    await Promise.all([texturesReady(fgViz), texturesReady(bgViz)]);
    timings.createMs = performance.now() - start;

    start = performance.now();
    for (const [name, viz, preset] of [["fg", fgViz, fg], ["bg", bgViz, bg]]) {
      phase = `${name} load`;
      try {
        await viz.loadPreset(preset, 0);
      } catch (error) {
        const status = isEelError(error) ? "eel-error" : "load-failed";
        return result(status, [`${name}: preset failed to load: ${describe(error)}`]);
      }
    }
    timings.loadMs = performance.now() - start;
    if (linkFailures.length) {
      return result("shader-failed", []);
    }
    fgViz.rng.reset(settings.seed);
    bgViz.rng.reset(settings.seed);

    start = performance.now();
    const size = settings.readback;
    const frames = settings.frames;
    const pixels = size * size;
    const maxStrip = Math.min(fgViz.gl.getParameter(fgViz.gl.MAX_RENDERBUFFER_SIZE),
                              bgViz.gl.getParameter(bgViz.gl.MAX_RENDERBUFFER_SIZE));
    const slots = Math.max(1, Math.min(CHUNK_FRAMES, frames, Math.floor(maxStrip / size)));
    const readerFg = makeReader(fgViz.gl, settings.width, settings.height, size, slots);
    const readerBg = makeReader(bgViz.gl, settings.width, settings.height, size, slots);
    const fgPixels = new Uint8Array(pixels * 4 * slots);
    const bgPixels = new Uint8Array(pixels * 4 * slots);
    let lumaPrev = new Float64Array(pixels);
    let lumaNow = new Float64Array(pixels);
    const series = Object.fromEntries(SERIES.map((name) => [name, new Array(frames)]));
    const mix = blendFunction(settings.blend, settings.fg_opacity);
    const thumbFrame = thumbnailFrame(settings);
    const maxFrameMs = budget.maxFrameMs > 0 ? budget.maxFrameMs : Infinity;
    let thumb = "";
    let chunkStart = 0;
    for (let frame = 0; frame < frames; frame++) {
      const audioLevels = audioLevelsAt(frame);
      let clock = performance.now();
      for (const [name, viz] of [["fg", fgViz], ["bg", bgViz]]) {
        phase = `${name} frame ${frame}`;
        try {
          viz.render({audioLevels, elapsedTime: settings.dt});
        } catch (error) {
          const status = isEelError(error) ? "eel-error" : "load-failed";
          return result(status, [`${name}: frame ${frame} failed: ${describe(error)}`]);
        }
      }
      readerFg.capture(frame - chunkStart);
      readerBg.capture(frame - chunkStart);
      timings.framesMs += performance.now() - clock;
      if (frame === thumbFrame) {
        clock = performance.now();
        thumb = thumbnail(fgViz, bgViz, settings);
        timings.thumbMs += performance.now() - clock;
      }
      const count = frame + 1 - chunkStart;
      if (count < slots && frame < frames - 1) {
        continue;
      }
      phase = `readback ${frame}`;
      clock = performance.now();
      readerFg.read(fgPixels, count);
      readerBg.read(bgPixels, count);
      timings.readbackMs += performance.now() - clock;
      if (fgViz.gl.isContextLost() || bgViz.gl.isContextLost()) {
        return result("load-failed", [`frame ${frame}: the WebGL context was lost`]);
      }
      clock = performance.now();
      for (let slot = 0; slot < count; slot++) {
        const block = slot * pixels * 4;
        measureFrame(series, chunkStart + slot, fgPixels.subarray(block, block + pixels * 4),
                     bgPixels.subarray(block, block + pixels * 4), mix, lumaPrev, lumaNow);
        [lumaPrev, lumaNow] = [lumaNow, lumaPrev];
      }
      timings.statsMs += performance.now() - clock;
      chunkStart = frame + 1;
      const overspent = overBudget(timings, start, chunkStart, frames, maxFrameMs);
      if (overspent) return result("too-heavy", [overspent]);
    }
    if (linkFailures.length) {
      return result("shader-failed", [], series, thumb);
    }
    return result("ok", [], series, thumb);
  } catch (error) {
    return result("load-failed", [`${phase}: ${describe(error)}`]);
  } finally {
    for (const viz of visualizers) {
      viz.loseGLContext();
    }
  }
}

function toBase64(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

function dropAlpha(rgba) {
  const rgb = new Uint8Array(rgba.length / 4 * 3);
  for (let i = 0, o = 0; i < rgba.length; i += 4, o += 3) {
    rgb[o] = rgba[i];
    rgb[o + 1] = rgba[i + 1];
    rgb[o + 2] = rgba[i + 2];
  }
  return rgb;
}

// The visualizer's full-size frame as it stands (its default framebuffer), base64 RGBA, rows bottom-up.
function readFrame(gl, width, height) {
  const pixels = new Uint8Array(width * height * 4);
  gl.bindFramebuffer(gl.READ_FRAMEBUFFER, null);
  gl.readPixels(0, 0, width, height, gl.RGBA, gl.UNSIGNED_BYTE, pixels);
  return toBase64(pixels);
}

// ------------------------------------------------------------------------------ one layer alone

// Renders one preset alone under the same settings and audio as a pair and returns its frames reduced on the
// GPU to size x size, all of them: {status, errors, timings, frames: base64 RGB bytes (alpha dropped), frame
// after frame, rows bottom-up as GL reads them, size, count, thumb: base64 RGBA bytes of the full-size frame
// at the thumbnail frame, bottom-up, or ""}. A pair's statistics and thumbnail are the composite of its two
// layers' frames, computed in Python (stages/render/pairstats.py) exactly as renderPair computes them here,
// so each preset renders once whatever number of pairs it is in, and its fingerprint comes from the same
// frames (stages/render/fingerprint.py). A fresh visualizer with its own seeded random stream, the same seed
// and rng reset as a pair's layer.
async function renderLayer({preset, settings, size, budget = {}}) {
  linkFailures = [];
  pageErrors = [];
  const timings = {createMs: 0, loadMs: 0, renderMs: 0, framesMs: 0, readbackMs: 0, thumbMs: 0, frameMs: 0,
                   peakFrameMs: 0, framesRendered: 0, costClock: "wall"};
  const result = (status, errors, frames = "", thumb = "") => {
    phase = "idle";
    return {status, errors: [...errors, ...linkFailures, ...pageErrors], timings, frames, size,
            count: timings.framesRendered, thumb};
  };
  let viz = null;
  try {
    phase = "settings";
    checkSettings(settings);
    if (!Number.isInteger(size) || size < 1) throw new Error(`size must be a positive integer, got ${size}`);
    if (!preset || typeof preset !== "object" || typeof preset.baseVals !== "object") {
      return result("load-failed", ["layer: not a butterchurn preset (no baseVals object)"]);
    }
    let start = performance.now();
    phase = "create";
    viz = createVisualizer(settings);
    await texturesReady(viz);
    timings.createMs = performance.now() - start;
    start = performance.now();
    phase = "layer load";
    try {
      await viz.loadPreset(preset, 0);
    } catch (error) {
      return result(isEelError(error) ? "eel-error" : "load-failed", [`layer: preset failed to load: ${describe(error)}`]);
    }
    timings.loadMs = performance.now() - start;
    if (linkFailures.length) return result("shader-failed", []);
    viz.rng.reset(settings.seed);

    start = performance.now();
    const frames = settings.frames;
    const bytesPerFrame = size * size * 4;
    const slots = Math.max(1, Math.min(CHUNK_FRAMES, frames, Math.floor(viz.gl.getParameter(viz.gl.MAX_RENDERBUFFER_SIZE) / size)));
    const reader = makeReader(viz.gl, settings.width, settings.height, size, slots);
    const pixels = new Uint8Array(bytesPerFrame * frames);
    const thumbFrame = thumbnailFrame(settings);
    const maxFrameMs = budget.maxFrameMs > 0 ? budget.maxFrameMs : Infinity;
    let thumb = "";
    let chunkStart = 0;
    for (let frame = 0; frame < frames; frame++) {
      const audioLevels = audioLevelsAt(frame);
      let clock = performance.now();
      phase = `layer frame ${frame}`;
      try {
        viz.render({audioLevels, elapsedTime: settings.dt});
      } catch (error) {
        return result(isEelError(error) ? "eel-error" : "load-failed", [`layer: frame ${frame} failed: ${describe(error)}`]);
      }
      reader.capture(frame - chunkStart);
      timings.framesMs += performance.now() - clock;
      if (frame === thumbFrame) {
        clock = performance.now();
        thumb = readFrame(viz.gl, settings.width, settings.height);
        timings.thumbMs += performance.now() - clock;
      }
      const count = frame + 1 - chunkStart;
      if (count < slots && frame < frames - 1) continue;
      phase = `layer readback ${frame}`;
      clock = performance.now();
      reader.read(pixels.subarray(chunkStart * bytesPerFrame, (chunkStart + count) * bytesPerFrame), count);
      timings.readbackMs += performance.now() - clock;
      if (viz.gl.isContextLost()) return result("load-failed", [`frame ${frame}: the WebGL context was lost`]);
      chunkStart = frame + 1;
      const overspent = overBudget(timings, start, chunkStart, frames, maxFrameMs);
      if (overspent) return result("too-heavy", [overspent]);
    }
    if (linkFailures.length) return result("shader-failed", []);
    return result("ok", [], toBase64(dropAlpha(pixels)), thumb);
  } catch (error) {
    return result("load-failed", [`${phase}: ${describe(error)}`]);
  } finally {
    if (viz) viz.loseGLContext();
  }
}

// ------------------------------------------------------------------------------ audio and info

function setAudio({base64, frames}) {
  const binary = atob(base64);
  if (binary.length !== frames * 3 * 1024) {
    throw new Error(`audio: ${binary.length} bytes for ${frames} frames, expected ${frames * 3 * 1024}`);
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) {
    bytes[i] = binary.charCodeAt(i);
  }
  audioBytes = bytes;
  audioFrames = frames;
  return frames;
}

async function info() {
  const canvas = document.createElement("canvas");
  const gl = canvas.getContext("webgl2");
  if (!gl) {
    return {vendor: "", renderer: "", engine: "", webgl2: false};
  }
  const debug = gl.getExtension("WEBGL_debug_renderer_info");
  const vendor = debug ? gl.getParameter(debug.UNMASKED_VENDOR_WEBGL) : gl.getParameter(gl.VENDOR);
  const renderer = debug ? gl.getParameter(debug.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER);
  gl.getExtension("WEBGL_lose_context").loseContext();
  const packageJson = await (await fetch("node_modules/butterchurn/package.json")).json();
  return {vendor, renderer, engine: `butterchurn@${packageJson.version}+sampler.${PAGE_VERSION}`, webgl2: true};
}

const DISABLED = {baseVals: {enabled: 0}, init_eqs_eel: "", frame_eqs_eel: "", point_eqs_eel: ""};
const EMPTY_PRESET = {
  version: 2, baseVals: {}, shapes: [DISABLED, DISABLED, DISABLED, DISABLED],
  waves: [DISABLED, DISABLED, DISABLED, DISABLED], init_eqs_eel: "", frame_eqs_eel: "", pixel_eqs_eel: "",
  warp: "", comp: "",
};

async function warmUp(settings) {
  const result = await renderPair({fg: EMPTY_PRESET, bg: EMPTY_PRESET, settings: {...settings, frames: 2}});
  if (result.status !== "ok") {
    throw new Error(`warm-up render failed: ${result.status}: ${result.errors.join("; ")}`);
  }
  return result.timings;
}

window.cq = {setAudio, renderPair, renderLayer, warmUp, info};
window.cqReady = true;
