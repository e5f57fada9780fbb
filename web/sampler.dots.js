// Dotted waves (RENDERING.md): butterchurn draws a preset's waveform with gl.POINTS when the preset sets
// wave_dots, but none of its vertex shaders writes gl_PointSize, so the dot size is undefined: on SwiftShader
// it follows whatever the GPU process drew before, and the same preset renders differently run to run.
// `setDotSize()` gives every vertex shader that lacks it MilkDrop's one-pixel dot before it is compiled.
// Both the sampling page and the player load this file; it is named sampler.* so the engine version
// (a hash of web/sampler.*) changes when it does.
const MAIN_OPENING = /\bvoid\s+main\s*\(\s*(?:void\s*)?\)\s*\{/;

export function setDotSize(prototype = WebGL2RenderingContext.prototype) {
  if (prototype.shaderSource.cqDotSize) return;
  const shaderSource = prototype.shaderSource;
  const withDotSize = function shaderSourceWithDotSize(shader, source) {
    if (!/\bgl_PointSize\b/.test(source) &&
        this.getShaderParameter(shader, this.SHADER_TYPE) === this.VERTEX_SHADER) {
      source = source.replace(MAIN_OPENING, (opening) => `${opening}\n  gl_PointSize = 1.0;`);
    }
    shaderSource.call(this, shader, source);
  };
  withDotSize.cqDotSize = true;
  prototype.shaderSource = withDotSize;
}
