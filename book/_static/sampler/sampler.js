/* SRVP in the browser: the sampling loop of SRVP.predict and SRVP.generate
 * (srvp/model.py), transcribed step by step over the ONNX pieces that
 * `python -m srvp export onnx` writes. Its Python twin, which the tests run,
 * is srvp/export/sampler.py; the noise comes from srvp/export/noise.py's
 * generator, so one seed gives the same frames in both.
 *
 * One file, two roles. Loaded by a page, it builds the controls of every
 * <div class="srvp-sampler"> and starts itself again as a Web Worker; in the
 * worker it runs onnxruntime-web (ort/), so the page never waits on the model.
 */
"use strict";

// ------------------------------------------------------------------ noise
// Uniform numbers in (0, 1): 32 random bits per draw (mulberry32).
function mulberry32(seed) {
  let a = seed >>> 0;
  return function uniform() {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
}

// Standard normal numbers, one per pair of uniform draws (Box-Muller).
function gaussianStream(seed) {
  const uniform = mulberry32(seed);
  return function next(count) {
    const eps = new Float32Array(count);
    for (let i = 0; i < count; i++) {
      const u1 = uniform(), u2 = uniform();
      eps[i] = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }
    return eps;
  };
}

// ------------------------------------------------------ the model (worker)
async function loadPieces(base) {
  const manifest = await (await fetch(base + "sampler.json")).json();
  const sessions = {};
  for (const [name, spec] of Object.entries(manifest.pieces)) {
    sessions[name] = await ort.InferenceSession.create(base + spec.file);
  }
  return { manifest, sessions };
}

// Run one piece: inputs {name: [Float32Array, dims]} -> its output tensors.
async function run(pieces, name, inputs) {
  const feeds = {};
  for (const [key, [data, dims]] of Object.entries(inputs)) {
    feeds[key] = new ort.Tensor("float32", data, dims);
  }
  const out = await pieces.sessions[name].run(feeds);
  return pieces.manifest.pieces[name].outputs.map((key) => out[key]);
}

// `rows` copies of x, one after the other (samples stacked sample-major).
function repeat(x, rows) {
  const out = new Float32Array(x.length * rows);
  for (let r = 0; r < rows; r++) out.set(x, r * x.length);
  return out;
}

function concat(arrays) {  // torch.stack of equal-length arrays, flat
  const out = new Float32Array(arrays.length * arrays[0].length);
  arrays.forEach((a, i) => out.set(a, i * a.length));
  return out;
}

// softplus(raw) + 1e-8, as srvp.model.normal_scale (torch's threshold 20).
function normalScale(raw) {
  return (raw > 20 ? raw : Math.log1p(Math.exp(raw))) + 1e-8;
}

// loc + scale * eps from params = [loc, raw_scale] (rows, 2 n): rsample_normal.
function rsampleNormal(params, eps, n) {
  const z = new Float32Array(eps.length);
  for (let i = 0; i < eps.length; i++) {
    const row = Math.floor(i / n), j = i % n;
    z[i] = params[row * 2 * n + j] + normalScale(params[row * 2 * n + n + j]) * eps[i];
  }
  return z;
}

// One Euler step y_t+dt = y_t + dt f(y_t, z_t+1): SRVP._residual_step.
async function residualStep(pieces, y_t, z_tp1, dt, rows) {
  const m = pieces.manifest;
  const [out] = await run(pieces, "dynamics",
    { y: [y_t, [rows, m.ny]], z: [z_tp1, [rows, m.nz]] });
  if (m.dynamics === "direct") return out.data;
  const y = new Float32Array(y_t.length);
  for (let i = 0; i < y.length; i++) y[i] = y_t[i] + dt * out.data[i];
  return y;
}

// Conditioning frames (T_cond, 1, C, H, W) -> q(y_1), content w, q(z), skips.
async function condition(pieces, x_cond) {
  const m = pieces.manifest;
  const [hx, ...skips] = await run(pieces, "encode",
    { x: [x_cond, [m.nt_cond, 1, m.nc, m.nx, m.nx]] });
  const [q_y1, w, q_z] = await run(pieces, "infer", { hx: [hx.data, hx.dims] });
  return { q_y1: q_y1.data, w: w.data, q_z: q_z.data, skips };
}

// n futures of one video, every 1/K frame: SRVP.predict with intermediate=True.
async function sample(pieces, x_cond, job) {
  const m = pieces.manifest, n = job.nSamples, noise = gaussianStream(job.seed);
  const k_pred = job.nEulerSteps, k_cond = m.n_euler_steps, n_obs = m.nt_cond;
  const cond = await condition(pieces, x_cond);
  const drawn = job.x_content ? await condition(pieces, job.x_content) : cond;
  let y = rsampleNormal(repeat(cond.q_y1, n), noise(n * m.ny), m.ny);
  const ys = [];
  for (let t = 0; t < m.nt_cond + m.nt_pred - 1; t++) {
    // z_t+1 from q(z | x_1:t+1) while frames are observed, from p(z | y_t) after
    const observed = t + 1 < n_obs;
    const params = observed
      ? repeat(cond.q_z.subarray(t * 2 * m.nz, (t + 1) * 2 * m.nz), n)
      : (await run(pieces, "prior", { y: [y, [n, m.ny]] }))[0].data;
    const z = rsampleNormal(params, noise(n * m.nz), m.nz);
    const k = observed ? k_cond : k_pred;
    for (let j = 0; j < k; j++) {
      y = await residualStep(pieces, y, z, 1 / k, n);
      if (!observed) ys.push(y);  // every sub-step: intermediate frames too
    }
  }
  const feeds = { w: [repeat(drawn.w, n), [n, m.nw]], y: [concat(ys), [ys.length, n, m.ny]] };
  drawn.skips.forEach((s, i) => {
    feeds[m.skips[i]] = [repeat(s.data, n), [n, ...s.dims.slice(1)]];
  });
  const [x_hat] = await run(pieces, "decode", feeds);
  return { frames: x_hat.data, nt: ys.length };  // (T_out, n, C, H, W)
}

function startWorker() {
  const base = new URL("./", self.location.href).href;
  importScripts(base + "ort/ort.wasm.min.js");
  ort.env.wasm.numThreads = 1;  // the single-threaded runtime, no COOP/COEP
  ort.env.wasm.wasmPaths = base + "ort/";
  let loading = null;
  self.onmessage = async (event) => {
    const job = event.data;
    try {
      loading = loading || loadPieces(job.model);
      const pieces = await loading;
      const start = performance.now();
      const out = await sample(pieces, job.x_cond, job);
      self.postMessage({ ...out, ms: performance.now() - start,
                         manifest: pieces.manifest });
    } catch (err) {
      loading = null;
      self.postMessage({ error: String((err && err.message) || err) });
    }
  };
}

// --------------------------------------------------------------- the page
const SIZE = 64, SCALE = 2, GAP = 8, LABEL = 30;

function psnr(a, b) {  // srvp.metrics.pixel.psnr of one frame
  let mse = 0;
  for (let i = 0; i < a.length; i++) mse += (a[i] - b[i]) ** 2;
  return 10 * Math.log10(1 / (mse / a.length));
}

async function loadVideos(url) {  // the strip: (N, T) frames of SIZE x SIZE
  const img = new Image();
  img.src = url;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const nt = img.width / SIZE, videos = [];
  for (let v = 0; v < img.height / SIZE; v++) {
    const frames = [];
    for (let t = 0; t < nt; t++) {
      const rgba = ctx.getImageData(t * SIZE, v * SIZE, SIZE, SIZE).data;
      frames.push(Float32Array.from({ length: SIZE * SIZE }, (_, i) => rgba[4 * i] / 255));
    }
    videos.push(frames);
  }
  return videos;
}

function control(root, label, options, value) {
  const select = document.createElement("select");
  options.forEach(([text, v]) => select.add(new Option(text, v, false, v === value)));
  const wrap = document.createElement("label");
  wrap.append(label + " ", select, " ");
  root.querySelector(".srvp-controls").append(wrap);
  return select;
}

function buildControls(root, videos, opts) {
  root.innerHTML = '<div class="srvp-controls"></div><div class="srvp-status"></div>' +
    "<canvas></canvas>";
  const names = videos.map((_, i) => ["video " + (i + 1), String(i)]);
  const ui = { video: control(root, "video", names, String(opts.video)) };
  if (opts.swap) ui.content = control(root, "content from", [["the same", ""], ...names], "");
  if (opts.steps.length > 1) {
    ui.k = control(root, "Δt =", opts.steps.map((k) => [k === 1 ? "1" : "1/" + k, String(k)]),
                   String(opts.steps[Math.min(1, opts.steps.length - 1)]));
  }
  ui.seed = document.createElement("input");
  Object.assign(ui.seed, { type: "number", value: opts.seed, min: 0, style: "width: 6em" });
  ui.button = document.createElement("button");
  ui.button.textContent = "sample";
  ui.reseed = document.createElement("button");
  ui.reseed.textContent = "new seed";
  const wrap = document.createElement("label");
  wrap.append("seed ", ui.seed, " ");
  root.querySelector(".srvp-controls").append(wrap, ui.button, " ", ui.reseed);
  ui.status = root.querySelector(".srvp-status");
  ui.canvas = root.querySelector("canvas");
  return ui;
}

function unavailable(root, why) {  // one line; the static figure stays
  root.textContent = "The interactive sampler is unavailable here (" + why +
    "); the figures show stored samples.";
  root.dataset.state = "unavailable";
}

function score(result, truth, k) {  // PSNR of each sample at the integer times
  const per = SIZE * SIZE, n = result.n, nt = result.nt / k;
  const scores = [];
  for (let s = 0; s < n; s++) {
    let sum = 0;
    for (let i = 1; i <= nt; i++) {
      const off = ((i * k - 1) * n + s) * per;
      sum += psnr(result.frames.subarray(off, off + per), truth[result.ntCond + i - 1]);
    }
    scores.push(sum / nt);
  }
  return scores;
}

function drawTile(ctx, frame, x, label, color) {
  const image = ctx.createImageData(SIZE, SIZE);
  for (let i = 0; i < frame.length; i++) {
    const v = Math.round(Math.min(1, Math.max(0, frame[i])) * 255);
    image.data.set([v, v, v, 255], 4 * i);
  }
  const tile = document.createElement("canvas");
  tile.width = tile.height = SIZE;
  tile.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tile, x, 0, SIZE * SCALE, SIZE * SCALE);
  ctx.strokeStyle = color;
  ctx.lineWidth = 3;
  ctx.strokeRect(x + 1.5, 1.5, SIZE * SCALE - 3, SIZE * SCALE - 3);
  ctx.fillStyle = "#222";
  ctx.font = "12px sans-serif";
  ctx.fillText(label, x, SIZE * SCALE + 16);
}

// Frame `tick` of the prediction (every 1/K frame): truth, then each sample.
function drawTick(ui, result, truth, tick) {
  const k = result.k, n = result.n, per = SIZE * SIZE, ctx = ui.canvas.getContext("2d");
  const time = result.ntCond + (tick + 1) / k;
  ctx.clearRect(0, 0, ui.canvas.width, ui.canvas.height);
  drawTile(ctx, truth[Math.floor(time) - 1], 0, "truth  t = " + time.toFixed(2), "#2a2");
  for (let s = 0; s < n; s++) {
    const off = (tick * n + s) * per, best = s === result.best;
    drawTile(ctx, result.frames.subarray(off, off + per), (s + 1) * (SIZE * SCALE + GAP),
             (best ? "best " : "") + result.psnr[s].toFixed(1) + " dB", best ? "#d33" : "#888");
  }
}

function animate(ui, result, truth) {
  clearInterval(ui.timer);
  ui.canvas.width = (result.n + 1) * (SIZE * SCALE + GAP);
  ui.canvas.height = SIZE * SCALE + LABEL;
  let tick = 0;
  const step = () => { drawTick(ui, result, truth, tick); tick = (tick + 1) % result.nt; };
  step();
  ui.timer = setInterval(step, 480 / result.k);
}

function onResult(root, ui, videos, job, msg) {
  ui.button.disabled = false;
  if (msg.error) {
    ui.status.textContent = "The sampler failed: " + msg.error;
    root.dataset.state = "error";
    return;
  }
  const truth = videos[job.video];
  const result = { ...msg, k: job.nEulerSteps, n: job.nSamples, ntCond: msg.manifest.nt_cond,
                   seed: job.seed, video: job.video, content: job.content };
  result.psnr = score(result, truth, result.k);
  result.best = result.psnr.indexOf(Math.max(...result.psnr));
  ui.status.textContent = `seed ${job.seed}: ${job.nSamples} futures of ${result.nt / result.k}` +
    ` frames in ${(msg.ms / 1000).toFixed(2)} s; best PSNR ${result.psnr[result.best].toFixed(2)} dB`;
  window.srvpSampler.results.push(result);
  animate(ui, result, truth);
  root.dataset.state = "done";
}

function submit(root, ui, worker, videos, opts) {
  const m = opts.manifest, video = Number(ui.video.value);
  const content = ui.content && ui.content.value !== "" ? Number(ui.content.value) : null;
  const cond = (v) => concat(videos[v].slice(0, m.nt_cond));
  const job = { model: opts.model, seed: Number(ui.seed.value) >>> 0,
                video, content, nSamples: opts.n, x_cond: cond(video),
                x_content: content === null ? null : cond(content),
                nEulerSteps: ui.k ? Number(ui.k.value) : m.n_euler_steps };
  ui.button.disabled = true;
  root.dataset.state = "running";
  ui.status.textContent = `sampling with seed ${job.seed}…`;
  worker.onmessage = (event) => onResult(root, ui, videos, job, event.data);
  worker.postMessage(job);
}

async function setup(root, script) {
  const base = new URL("./", script).href, data = root.dataset;
  const opts = { model: new URL(data.model || "model/", base).href,
                 steps: (data.dt || "").split(",").filter(Boolean).map(Number),
                 swap: data.swap === "true", n: Number(data.n || 4),
                 seed: Number(data.seed || 0), video: Number(data.video || 0) };
  if (typeof WebAssembly !== "object" || typeof Worker !== "function") {
    return unavailable(root, "this browser has no WebAssembly or Web Workers");
  }
  let videos;
  try {
    const response = await fetch(opts.model + "sampler.json");
    if (!response.ok) throw new Error(response.status);
    opts.manifest = await response.json();
    videos = await loadVideos(new URL(data.videos || "videos.png", base).href);
  } catch (err) {
    return unavailable(root, "its model or video files are missing");
  }
  const ui = buildControls(root, videos, opts), worker = new Worker(script);
  ui.button.onclick = () => submit(root, ui, worker, videos, opts);
  ui.reseed.onclick = () => { ui.seed.value = Math.floor(Math.random() * 1e6); ui.button.click(); };
  root.dataset.state = "ready";
  if (data.autorun === "true") ui.button.click();
}

if (typeof document === "undefined") {
  startWorker();
} else if (!window.srvpSampler) {  // once per page, however often included
  const script = document.currentScript.src;
  window.srvpSampler = { results: [] };
  const start = () => document.querySelectorAll(".srvp-sampler").forEach((root) => setup(root, script));
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
}
