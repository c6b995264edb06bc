"use strict";
// rtdet serve's page: send an image (a file or a webcam frame) to POST /v1/predict and draw the
// answer over it. Plain JavaScript, no libraries, nothing fetched from another site.
//
// The confidence slider is live: moving it up hides the detections below it at once (the answer
// holds every detection above the confidence it was asked with); releasing it, or moving it below
// that confidence, asks the server again, so what stays on screen is the server's answer at the
// slider's value.

const $ = (id) => document.getElementById(id);
const state = {
  model: null,        // GET /v1/models' entry
  blob: null,         // the bytes of the current image, as sent
  name: "image",
  picture: null,      // what the current image looks like: an ImageBitmap or a canvas (null: not decodable here)
  shown: null,        // the picture the last answer belongs to
  answer: null,       // the last successful answer
  answerConf: null,   // the confidence it was asked with
  inFlight: false,
  again: false,       // ask again when the request in flight returns
  webcam: null,       // the MediaStream while the webcam runs
};
// What the page shows, readable from the console and by tests: the answer, the detections drawn.
window.rtdet = { answer: null, drawn: [], requests: 0 };

function usesConf() { return Boolean(state.model && state.model.parameters.includes("conf")); }
function conf() { return Number($("conf").value); }

function setStatus(kind, text) {
  const el = $("status");
  el.dataset.state = kind;
  el.textContent = text;
}

async function loadModel() {
  try {
    const r = await fetch("/v1/models");
    state.model = (await r.json()).models[0];
  } catch (e) {
    setStatus("error", `cannot read /v1/models: ${e}`);
    return;
  }
  const m = state.model;
  $("model").textContent = `${m.name} · ${m.model || "model"} · ${m.task} · ${m.classes.length} classes · ` +
    `${m.backend} · ${m.imgsz} px`;
  $("conf-box").hidden = !usesConf();
  if (usesConf()) {
    $("conf").value = m.defaults.conf;
    $("conf-value").textContent = conf().toFixed(2);
  }
  const cam = $("webcam");
  if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
    cam.disabled = true;
    cam.title = "browsers allow the webcam on https:// pages and on http://localhost only";
  }
  setStatus("ready", "ready");
}

async function decodePicture(blob) {
  try {
    // rtdet reads the stored pixel grid and ignores EXIF rotation: so does this picture
    return await createImageBitmap(blob, { imageOrientation: "none" });
  } catch (e) {
    try { return await createImageBitmap(blob); } catch (e2) { return null; }  // the server will say what is wrong
  }
}

async function chooseFile(file) {
  if (!file) return;
  stopWebcam();
  state.blob = file;
  state.name = file.name || "image";
  state.picture = await decodePicture(file);
  predict();
}

async function predict() {
  if (!state.blob || !state.model) return;
  if (state.inFlight) { state.again = true; return; }
  state.inFlight = true;
  const asked = usesConf() ? conf() : null;
  const picture = state.picture;
  const form = new FormData();
  form.append("file", state.blob, state.name);
  if (asked !== null) form.append("conf", String(asked));
  setStatus("busy", "working…");
  let retry = 0;
  const t0 = performance.now();
  try {
    const r = await fetch("/v1/predict", { method: "POST", body: form });
    const body = await r.json().catch(() => ({ detail: r.statusText }));
    const ms = performance.now() - t0;
    if (r.ok) {
      state.answer = body;
      state.answerConf = asked;
      state.shown = picture;
      window.rtdet.requests += 1;
      showLatency(ms, body.timing_ms);
      await render();
    } else {
      retry = Number(r.headers.get("Retry-After") || 0);
      setStatus("error", `${r.status}: ${body.detail}` + (retry ? ` (retry in ${retry} s)` : ""));
    }
  } catch (e) {
    setStatus("error", `request failed: ${e}`);
  } finally {
    state.inFlight = false;
    if (state.again) {
      state.again = false;
      predict();
    } else if (state.webcam) {
      setTimeout(() => requestAnimationFrame(nextFrame), retry * 1000);
    }
  }
}

function showLatency(ms, t) {
  const parts = ["queue", "decode", "inference", "encode"].filter((k) => k in t).map((k) => `${k} ${t[k].toFixed(1)}`);
  $("latency").textContent = `round trip ${ms.toFixed(1)} ms · server ${t.total.toFixed(1)} ms (${parts.join(", ")})`;
}

async function render() {
  const a = state.answer;
  window.rtdet.answer = a;
  window.rtdet.drawn = [];
  if (!a) return;
  const canvas = $("view");
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  canvas.width = a.image.width;
  canvas.height = a.image.height;
  if (state.shown) {
    ctx.drawImage(state.shown, 0, 0, a.image.width, a.image.height);
  } else {
    ctx.fillStyle = "#888";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }
  canvas.hidden = false;
  $("hint").hidden = true;
  if (a.detections) drawDetections(ctx, a.detections);
  else if (a.top) drawTop(ctx, a.top);
  else if (a.mask) await drawMask(ctx, a);
}

function table(head, rows) {
  $("results").tHead.innerHTML = "<tr>" + head.map((h) => `<th>${h}</th>`).join("") + "</tr>";
  const body = $("results").tBodies[0];
  body.textContent = "";
  for (const cells of rows) {
    const tr = body.insertRow();
    for (const c of cells) {
      const td = tr.insertCell();
      if (c instanceof Node) td.append(c); else td.textContent = c;
    }
  }
}

function named(name, color) {
  const span = document.createElement("span");
  const sw = document.createElement("span");
  sw.className = "swatch";
  sw.style.background = color;
  span.append(sw, name);
  return span;
}

function colorOf(k) { return state.model.colors[k] || "#ff3030"; }

function drawDetections(ctx, dets) {
  const c = usesConf() ? conf() : 0;
  // the answer holds every detection above the confidence it was asked with; above that, filter here
  const shown = state.answerConf !== null && c > state.answerConf ? dets.filter((d) => d.score > c) : dets;
  const lw = Math.max(2, Math.round(Math.min(ctx.canvas.width, ctx.canvas.height) / 250));
  const size = Math.max(12, lw * 6);
  ctx.font = `${size}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  for (const d of shown) {
    const { x1, y1, x2, y2 } = d.box;
    ctx.lineWidth = lw;
    ctx.strokeStyle = colorOf(d.class_id);
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
  }
  for (const d of shown) {  // labels after every box, so no box covers a label
    const text = `${d.class_name} ${d.score.toFixed(2)}`;
    const w = ctx.measureText(text).width + 6;
    const y = d.box.y1 - size - 4 >= 0 ? d.box.y1 - size - 4 : d.box.y1;
    ctx.fillStyle = colorOf(d.class_id);
    ctx.fillRect(d.box.x1, y, w, size + 4);
    ctx.fillStyle = "#000";
    ctx.fillText(text, d.box.x1 + 3, y + 2);
  }
  window.rtdet.drawn = shown;
  table(["#", "class", "score", "x1", "y1", "x2", "y2"], shown.map((d, i) => [
    String(i + 1), named(d.class_name, colorOf(d.class_id)), d.score.toFixed(3),
    ...["x1", "y1", "x2", "y2"].map((k) => d.box[k].toFixed(1))]));
  setStatus("done", `${shown.length} detection${shown.length === 1 ? "" : "s"} with confidence > ${c.toFixed(2)}`);
}

function drawTop(ctx, top) {
  const size = Math.max(14, Math.round(ctx.canvas.height / 14));
  ctx.font = `${size}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  top.forEach((t, i) => {
    const text = `${t.class_name} ${t.probability.toFixed(2)}`;
    const y = 4 + i * (size + 6);
    ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
    ctx.fillRect(4, y, ctx.measureText(text).width + 8, size + 4);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, 8, y + 2);
  });
  window.rtdet.drawn = top;
  table(["#", "class", "probability"], top.map((t, i) => [String(i + 1), named(t.class_name, colorOf(t.class_id)),
    t.probability.toFixed(4)]));
  setStatus("done", `top ${top.length}: ${top[0].class_name} (${top[0].probability.toFixed(2)})`);
}

async function drawMask(ctx, a) {
  const img = new Image();
  img.src = "data:image/png;base64," + a.mask.png;
  await img.decode();
  const { width: w, height: h } = a.mask;
  const off = document.createElement("canvas");
  off.width = w;
  off.height = h;
  const octx = off.getContext("2d", { willReadFrequently: true });
  octx.drawImage(img, 0, 0);
  const labels = octx.getImageData(0, 0, w, h).data;  // grey PNG: the class index in every channel
  const pic = ctx.getImageData(0, 0, w, h);
  const px = pic.data;
  const alpha = state.model.defaults.overlay_alpha ?? 0.5;
  const rgb = a.classes.map((_, k) => [1, 3, 5].map((i) => parseInt(colorOf(k).slice(i, i + 2), 16)));
  for (let i = 0; i < w * h; i++) {  // the blend of rtdet predict's overlay: (1 - alpha) image + alpha colour
    const c = rgb[labels[4 * i]];
    if (!c) continue;
    for (let j = 0; j < 3; j++) px[4 * i + j] = Math.round((1 - alpha) * px[4 * i + j] + alpha * c[j]);
  }
  ctx.putImageData(pic, 0, 0);
  const total = w * h;
  const present = Object.entries(a.pixels).sort((p, q) => q[1] - p[1]);
  window.rtdet.drawn = present;
  table(["#", "class", "pixels", "share"], present.map(([name, n], i) => [
    String(i + 1), named(name, colorOf(a.classes.indexOf(name))), String(n), `${(100 * n / total).toFixed(1)}%`]));
  setStatus("done", `${present.length} class${present.length === 1 ? "" : "es"} present`);
}

async function startWebcam() {
  try {
    state.webcam = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
  } catch (e) {
    setStatus("error", `webcam: ${e.message || e}`);
    return;
  }
  const video = $("video");
  video.srcObject = state.webcam;
  await video.play();
  $("webcam").textContent = "Stop webcam";
  nextFrame();
}

function stopWebcam() {
  if (!state.webcam) return;
  for (const t of state.webcam.getTracks()) t.stop();
  state.webcam = null;
  $("video").srcObject = null;
  $("webcam").textContent = "Start webcam";
}

function nextFrame() {
  const video = $("video");
  if (!state.webcam) return;
  if (!video.videoWidth) { requestAnimationFrame(nextFrame); return; }
  const frame = document.createElement("canvas");
  frame.width = video.videoWidth;
  frame.height = video.videoHeight;
  frame.getContext("2d").drawImage(video, 0, 0);
  frame.toBlob((blob) => {
    state.blob = blob;
    state.name = "webcam.jpg";
    state.picture = frame;
    predict();
  }, "image/jpeg", 0.9);
}

function wire() {
  $("file").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  $("webcam").addEventListener("click", () => (state.webcam ? stopWebcam() : startWebcam()));
  $("conf").addEventListener("input", () => {
    $("conf-value").textContent = conf().toFixed(2);
    if (!state.answer) return;
    if (state.answerConf !== null && conf() < state.answerConf) predict();  // needs detections not in the answer
    else render();
  });
  $("conf").addEventListener("change", () => predict());  // the server's answer at the value let go of
  const drop = $("drop");
  for (const type of ["dragenter", "dragover"]) {
    drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    chooseFile(e.dataTransfer.files[0]);
  });
}

wire();
loadModel();
