// ferkit web page: send a photo to POST /predict, draw a box per face and its probabilities.
// Plain JavaScript, no build step. Colours come from GET /labels (ferkit.labels.COLORS).
"use strict";

const $ = (id) => document.getElementById(id);
let EMOTIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
let COLORS = {};
let stream = null;
let maxUpload = null;  // bytes, from GET /version

function say(text, kind) {
  const m = $("message");
  m.textContent = text;
  m.className = kind || "";
}

async function loadLabels() {
  try {
    const r = await fetch("/labels");
    const j = await r.json();
    EMOTIONS = j.emotions;
    COLORS = j.colors;
  } catch (e) { /* keep the defaults; the boxes are then grey */ }
  try {
    const v = await (await fetch("/version")).json();
    maxUpload = v.max_upload_bytes;
    const m = v.model || {};
    const acc = typeof m.val_acc === "number" ? `, validation accuracy ${(100 * m.val_acc).toFixed(1)}%` : "";
    $("about").textContent = `ferkit ${v.ferkit} - model ${m.name || "?"}${m.epoch ? ` (epoch ${m.epoch}${acc})` : ""} - API docs at /docs`;
  } catch (e) { /* the footer stays empty */ }
}

async function analyse(blob, name) {
  await ready;  // the colours and the upload limit
  if (maxUpload && blob.size > maxUpload) {  // refused here rather than cut off mid-upload
    const mb = (n) => (n / 2 ** 20).toFixed(1);
    say(`${name} is ${mb(blob.size)} MB; the limit is ${mb(maxUpload)} MB. Choose a smaller photo.`, "error");
    return;
  }
  say(`Analysing ${name}...`, "busy");
  $("result").hidden = true;
  const form = new FormData();
  form.append("file", blob, name);
  let res, body;
  try {
    res = await fetch("/predict", { method: "POST", body: form });
    body = await res.json();
  } catch (e) {
    say(`Could not reach the server (${e.message}). Is 'ferkit serve' still running?`, "error");
    return;
  }
  if (!res.ok) {
    say(body.error || `The server answered ${res.status}.`, "error");
    return;
  }
  await draw(blob, body);
  showBars(body.faces);
  $("result").hidden = false;
  if (body.count === 0) {
    say("No face found in this photo. Try a sharper, well-lit photo where the face looks at the camera.", "empty");
  } else {
    say(`Found ${body.count} face${body.count > 1 ? "s" : ""} in ${name}.`, "ok");
  }
}

async function draw(blob, body) {
  const canvas = $("canvas");
  canvas.width = body.width;
  canvas.height = body.height;
  const ctx = canvas.getContext("2d");
  try {
    const bitmap = await createImageBitmap(blob);
    ctx.drawImage(bitmap, 0, 0, body.width, body.height);
  } catch (e) {  // a format the server reads but this browser cannot show
    ctx.fillStyle = "#ccc";
    ctx.fillRect(0, 0, body.width, body.height);
  }
  const lw = 2 * Math.max(1, Math.round(Math.max(body.width, body.height) / 400));
  const fontPx = Math.max(12, Math.round(lw * 7));
  ctx.font = `bold ${fontPx}px system-ui, sans-serif`;
  ctx.textBaseline = "bottom";
  body.faces.forEach((f, i) => {
    const [x, y, w, h] = f.box;
    const color = COLORS[f.label] || "#888888";
    ctx.lineWidth = lw;
    ctx.strokeStyle = color;
    ctx.strokeRect(x, y, w, h);
    const text = `${i + 1} ${f.label} ${(100 * f.score).toFixed(0)}%`;
    const tw = ctx.measureText(text).width + 2 * lw;
    const ty = y - lw / 2 >= fontPx + 4 ? y - lw / 2 : y + h + lw / 2 + fontPx + 4;  // above the box, else below
    ctx.fillStyle = color;
    ctx.fillRect(x - lw / 2, ty - fontPx - 4, tw, fontPx + 4);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x - lw / 2 + lw, ty - 2);
  });
}

function showBars(faces) {
  const list = $("faces");
  list.replaceChildren();
  faces.forEach((f, i) => {
    const card = document.createElement("div");
    card.className = "face";
    card.dataset.label = f.label;
    card.dataset.box = f.box.join(",");
    card.style.setProperty("--color", COLORS[f.label] || "#888");
    const title = document.createElement("h2");
    title.textContent = `Face ${i + 1}: ${f.label} (${(100 * f.score).toFixed(0)}%)`;
    card.append(title);
    for (const emo of EMOTIONS) {
      const p = f.probs[emo] || 0;
      const row = document.createElement("div");
      row.className = "bar-row" + (emo === f.label ? " top" : "");
      row.dataset.emotion = emo;
      const label = document.createElement("span");
      label.className = "name";
      label.textContent = emo;
      const bar = document.createElement("div");
      bar.className = "bar";
      const fill = document.createElement("div");
      fill.className = "fill";
      fill.style.width = `${(100 * p).toFixed(1)}%`;
      fill.style.background = COLORS[emo] || "#888";
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = `${(100 * p).toFixed(1)}%`;
      row.append(label, bar, value);
      card.append(row);
    }
    list.append(card);
  });
}

function pick(files) {
  if (files && files.length) analyse(files[0], files[0].name);
}

function setupInput() {
  $("file").addEventListener("change", (e) => pick(e.target.files));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    pick(e.dataTransfer.files);
  });
}

function setupWebcam() {
  if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) return;  // stays hidden
  $("webcam").hidden = false;
  const video = $("video");
  const show = (on) => {
    $("camera-start").hidden = on;
    $("camera-capture").hidden = !on;
    $("camera-stop").hidden = !on;
    video.hidden = !on;
  };
  $("camera-start").addEventListener("click", async () => {
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
      video.srcObject = stream;
      show(true);
    } catch (e) {
      say(`The webcam is not available (${e.name}): allow camera access, or choose a photo instead.`, "error");
    }
  });
  $("camera-stop").addEventListener("click", () => {
    if (stream) stream.getTracks().forEach((t) => t.stop());
    stream = null;
    show(false);
  });
  $("camera-capture").addEventListener("click", () => {
    if (!video.videoWidth) return;
    const c = document.createElement("canvas");
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    c.getContext("2d").drawImage(video, 0, 0);
    c.toBlob((blob) => analyse(blob, "webcam.jpg"), "image/jpeg", 0.92);
  });
}

setupInput();
setupWebcam();
const ready = loadLabels();
