// The page of `panda app`. All of a tab's state lives here and goes with every request, so the
// server holds none of it and tabs never meet.
//
// What the page shows is always one state's: `state` is what the controls ask for, `shown` the
// state whose answers are on screen. A change of `state` runs `refresh`, which asks the server
// for what that state needs (the sample, the region's gallery, the edit) and paints it all at
// once when every answer is in; while it works the page says so. If a newer state arrives
// meanwhile, the older answers are never painted; if a request fails, the controls go back to
// `shown`, and the error is said.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN = document.querySelector('meta[name="panda-token"]').content;
// The token came in the address: keep it out of the address bar, the history and shared links.
history.replaceState(null, "", location.pathname + location.hash);

const DEFAULTS = { seed: 0, photo: null, parts: "global", part: null, mask: null, appearance: null, alpha: 0, action: "edit", source: null };
// A mask is too large for an address; a photo is named there, and found again while the app keeps it.
const KEPT_IN_ADDRESS = ["seed", "photo", "parts", "part", "appearance", "alpha", "action", "source"];
const TEXT_IN_ADDRESS = ["photo", "parts", "action"];

let state = { ...DEFAULTS };
let shown = null;
const undoStack = [];
let info = null;
let tool = "pick";

window.pandaState = () => state;  // read by the browser tests
window.pandaShown = () => shown;
window.pandaEdits = 0;            // edits painted so far
window.pandaBusy = 0;             // requests on their way

// -- requests ---------------------------------------------------------------------------------

class Stopped extends Error {}

// The page says it is working while anything is asked, or answers wait to be painted.
function showWorking() {
  document.body.classList.toggle("busy", running || window.pandaBusy > 0);
}
window.pandaWorking = () => document.body.classList.contains("busy");

async function post(path, payload) {
  window.pandaBusy += 1;
  showWorking();
  try {
    let response;
    try {
      response = await fetch(path, {
        method: "POST", body: JSON.stringify(payload),
        headers: { "Content-Type": "application/json", "X-PandA-Token": TOKEN },
      });
    } catch (error) {
      throw new Stopped("the server stopped");
    }
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(answer.error || `${response.status} ${response.statusText}`);
    return answer;
  } finally {
    window.pandaBusy -= 1;
    showWorking();
  }
}

// The last answer of each kind, by its request: a move of the slider asks for the edit alone.
const answers = {};
async function ask(kind, payload) {
  const key = JSON.stringify(payload);
  if (!answers[kind] || answers[kind].key !== key) answers[kind] = { key, answer: await post(`/api/${kind}`, payload) };
  return answers[kind].answer;
}

function say(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

// -- the state --------------------------------------------------------------------------------

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function region(s) {
  if (s.mask !== null) return { mask: s.mask };
  return s.part === null ? null : { part: s.part };
}

// What is edited: a sample by its seed, or an inverted photo by its name.
function subject(s) {
  return s.photo === null ? { seed: s.seed, parts: s.parts } : { seed: s.seed, parts: s.parts, photo: s.photo };
}

function editRequest(s) {
  const payload = { ...subject(s), action: s.action, alpha: s.alpha, appearance: s.appearance, ...region(s) };
  if (s.action === "rewrite") payload.source = s.source;
  return payload;
}

function canEdit(s) {
  if (s.appearance === null) return false;
  return s.action === "rewrite" ? s.source !== null : region(s) !== null;
}

// Before the user changes what is asked: the state on screen is where Ctrl-Z returns.
function markUndoPoint() {
  if (shown !== null && (undoStack.length === 0 || !same(undoStack[undoStack.length - 1], shown))) undoStack.push({ ...shown });
  $("undo").disabled = undoStack.length === 0;
}

function change(values) {
  markUndoPoint();
  Object.assign(state, values);
  refresh();
}

function undo() {
  const previous = undoStack.pop();
  $("undo").disabled = undoStack.length === 0;
  if (previous) { state = { ...previous }; refresh(); }
}

// -- one refresh at a time, the latest state wins -------------------------------------------------

let running = false, again = false, failure = null;

async function refresh() {
  if (running) { again = true; return; }
  running = true;
  failure = null;
  showWorking();
  try {
    do {
      again = false;
      await refreshOnce({ ...state });
    } while (again);
  } finally {
    running = false;
    showWorking();
  }
}

async function refreshOnce(wanted) {
  try {
    const sample = await ask("sample", subject(wanted));
    let gallery = null;
    if (region(wanted) !== null) {
      gallery = await ask("gallery", { ...subject(wanted), ...region(wanted), action: "edit", alpha: 0 });
      const ranked = gallery.items.map((item) => item.appearance);
      if (wanted.appearance === null) wanted.appearance = ranked[0];
      if (wanted.source === null) wanted.source = ranked[0];
    }
    const edit = canEdit(wanted) ? await ask("edit", editRequest(wanted)) : null;
    if (!same(wanted, stateAsAsked(wanted))) { again = true; return; }  // the user moved on: paint the newer state
    state = wanted;
    paint(sample, gallery, edit);
    shown = { ...wanted };
    history.replaceState(null, "", "#" + address(shown));
    const what = sample.photo ? `photo ${sample.photo.name}` : `sample of seed ${shown.seed}`;
    if (failure === null) say(edit ? `${shown.action}: ${edit.milliseconds} ms on the server` : `${what} (${sample.milliseconds} ms)`);
  } catch (error) {
    failure = error.message;
    if (error instanceof Stopped) stopped();
    else say(error.message, true);
    if (!same(wanted, stateAsAsked(wanted))) { again = true; return; }  // the user moved on meanwhile: ask for that
    if (undoStack.length && same(undoStack[undoStack.length - 1], shown)) undoStack.pop();
    $("undo").disabled = undoStack.length === 0;
    if (shown === null && !(error instanceof Stopped) && !same(wanted, DEFAULTS)) {
      state = { ...DEFAULTS };  // an address whose state is not valid here: start from the defaults
      again = true;
      return;
    }
    if (shown !== null) state = { ...shown };
    paintControls();
  }
}

// `state` with the defaults `refreshOnce` fills in taken as `wanted` took them: so that a gallery's
// first appearance chosen for the user does not count as the user moving on.
function stateAsAsked(wanted) {
  return { ...state, appearance: state.appearance ?? wanted.appearance, source: state.source ?? wanted.source };
}

function stopped() {
  document.body.classList.add("stopped");
  $("stopped").hidden = false;
  document.querySelectorAll("input, select, button, textarea").forEach((control) => { control.disabled = true; });
}

// -- painting: everything from one state and its answers --------------------------------------------

let shownSize = null;  // [height, width] of the sample on screen

function paint(sample, gallery, edit) {
  shownSize = sample.size;
  const upscaled = sample.size[1] < 256;
  for (const id of ["image", "overlay", "original", "edited", "difference"]) $(id).classList.toggle("pixelated", upscaled);
  $("image").src = sample.image;
  $("overlay").src = sample.overlay;
  $("original").src = sample.photo ? sample.photo.image : sample.image;  // a photo at its own size
  $("photo-name").hidden = !sample.photo;
  if (sample.photo) $("photo-name").textContent = `Photo ${sample.photo.name}, box ${sample.photo.box.join(",")} of ${sample.photo.size[1]} x ${sample.photo.size[0]} px (back to samples: a seed).`;
  $("download-inversion").hidden = !sample.photo;
  if (sample.photo) $("download-inversion").download = sample.photo.name.replace(/\.[^.]+$/, "") + ".inversion.pt";
  const canvas = $("mask-canvas");
  if (canvas.width !== sample.size[1] || canvas.height !== sample.size[0]) [canvas.width, canvas.height] = [sample.size[1], sample.size[0]];
  paintGallery(gallery);
  if (edit) {
    $("edited").src = edit.edited;
    $("difference").src = edit.difference;
    $("download").href = edit.edited;  // (not whole: the whole image is asked for on a click)
    $("download").dataset.whole = edit.whole ? "yes" : "no";
    $("download").download = edit.output;
    $("command").value = edit.command;
    $("options").textContent = JSON.stringify(edit.options, null, 2);
    window.pandaEdits += 1;
  } else {
    for (const id of ["edited", "difference"]) $(id).removeAttribute("src");
    $("command").value = "";
    $("options").textContent = "";
  }
  $("download").hidden = !edit;
  const mask = edit && edit.mask;
  $("download-mask").hidden = !mask;
  const files = [...(sample.photo ? [sample.photo.name, $("download-inversion").download] : []), ...(mask ? [edit.mask_file] : [])];
  $("mask-hint").hidden = files.length === 0;
  if (mask) {
    $("download-mask").href = edit.mask;
    $("download-mask").download = edit.mask_file;
  }
  if (files.length) $("mask-hint").textContent = `The command reads ${files.join(", ")}: save ${files.length > 1 ? "them" : "it"} under ${files.length > 1 ? "those names" : "that name"} in the folder where you run it.`;
  paintControls();
}

let galleryKey = null;

function paintGallery(gallery) {
  const panel = $("gallery");
  const key = gallery && answers.gallery.key;
  if (key !== galleryKey) {
    galleryKey = key;
    panel.replaceChildren(...(gallery ? gallery.items : []).map((item) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "thumb";
      button.dataset.appearance = item.appearance;
      button.title = `appearance ${item.appearance}: spread ${item.spread.toFixed(3)} at this region`;
      const image = new Image();
      image.src = item.image;
      image.alt = `the sample with appearance ${item.appearance} added here`;
      const caption = document.createElement("span");
      caption.textContent = `appearance ${item.appearance}`;
      button.append(image, caption);
      button.addEventListener("click", () => change({ appearance: item.appearance }));
      return button;
    }));
  }
}

// The controls from `state`: after a paint, and after a rollback.
function paintControls() {
  $("seed").value = state.seed;
  $("parts").value = state.parts;
  $("alpha").value = state.alpha;
  $("alpha-value").textContent = state.alpha.toFixed(1);
  document.querySelectorAll("input[name=action]").forEach((radio) => { radio.checked = radio.value === state.action; });
  if (state.source !== null) $("source").value = state.source;
  document.querySelectorAll("#legend button").forEach((b) => b.classList.toggle("on", state.mask === null && Number(b.dataset.part) === state.part));
  document.querySelectorAll("#gallery button").forEach((b) => {
    const on = Number(b.dataset.appearance) === state.appearance;
    b.classList.toggle("on", on);
    b.setAttribute("aria-pressed", on);
  });
  $("region-name").textContent = state.mask !== null ? "at the painted mask" : state.part === null ? "no region yet" : `at part ${state.part}`;
  drawMask(state.mask);
}

// -- the address: a reload or a shared link shows the same edit -------------------------------------

function address(s) {
  const values = new URLSearchParams();
  for (const name of KEPT_IN_ADDRESS) if (s[name] !== null && !(name === "part" && s.mask !== null)) values.set(name, s[name]);
  return values.toString();
}

function fromAddress() {
  const values = new URLSearchParams(location.hash.slice(1));
  const read = { ...DEFAULTS };
  for (const name of KEPT_IN_ADDRESS) {
    if (!values.has(name)) continue;
    const text = values.get(name);
    read[name] = TEXT_IN_ADDRESS.includes(name) ? text : Number(text);
    if (typeof read[name] === "number" && !Number.isFinite(read[name])) read[name] = DEFAULTS[name];
  }
  return read;
}

// -- the brush: strokes are lines between pointer events, in stripes seen over any part ---------------

let stroke = null;     // the last point of the stroke being drawn
let drawnMask = null;  // the mask the canvas holds

function stripes(context) {
  const tile = document.createElement("canvas");
  tile.width = tile.height = 8;
  const pen = tile.getContext("2d");
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, 8, 8);
  pen.strokeStyle = "#000";
  pen.lineWidth = 3;
  for (const offset of [-8, 0, 8]) { pen.beginPath(); pen.moveTo(offset, 8); pen.lineTo(offset + 8, 0); pen.stroke(); }
  return context.createPattern(tile, "repeat");
}

function canvasPoint(event) {
  const canvas = $("mask-canvas"), box = canvas.getBoundingClientRect();
  return { x: ((event.clientX - box.left) / box.width) * canvas.width, y: ((event.clientY - box.top) / box.height) * canvas.height };
}

function drawTo(point) {
  const canvas = $("mask-canvas"), context = canvas.getContext("2d");
  const width = (Number($("brush-size").value) * canvas.width) / canvas.getBoundingClientRect().width;
  context.globalCompositeOperation = tool === "erase" ? "destination-out" : "source-over";
  context.strokeStyle = context.fillStyle = stripes(context);
  if (stroke === null) {
    context.beginPath();
    context.arc(point.x, point.y, width / 2, 0, 2 * Math.PI);
    context.fill();
  } else {
    context.lineWidth = width;
    context.lineCap = context.lineJoin = "round";
    context.beginPath();
    context.moveTo(stroke.x, stroke.y);
    context.lineTo(point.x, point.y);
    context.stroke();
  }
  stroke = point;
  drawnMask = undefined;  // (the canvas now holds strokes no state has yet)
}

function canvasIsEmpty() {
  const canvas = $("mask-canvas");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return false;
  return true;
}

function drawMask(mask) {
  if (mask === drawnMask) return;
  drawnMask = mask;
  const canvas = $("mask-canvas"), context = canvas.getContext("2d");
  context.globalCompositeOperation = "source-over";
  context.clearRect(0, 0, canvas.width, canvas.height);
  if (mask === null) return;
  const image = new Image();
  image.onload = () => { if (drawnMask === mask) context.drawImage(image, 0, 0); };
  image.src = mask;
}

function endStroke() {
  if (stroke === null) return;
  stroke = null;
  const mask = canvasIsEmpty() ? null : $("mask-canvas").toDataURL("image/png");
  drawnMask = mask;
  change({ mask, part: null, appearance: null });
}


// -- a photo: opened, its box chosen, inverted with its progress shown --------------------------

const photoFile = { url: null, name: null, width: 0, height: 0, box: null };
let photoJob = null;

function openPhoto(file) {
  if (!file) return;
  if (!["image/png", "image/jpeg"].includes(file.type)) { say(`${file.name.slice(0, 60)} is not a PNG or JPEG photo.`, true); return; }
  const reader = new FileReader();
  reader.onload = () => {
    const image = $("photo-image");
    image.onload = () => {
      Object.assign(photoFile, { url: reader.result, name: file.name, width: image.naturalWidth, height: image.naturalHeight });
      const size = Math.min(image.naturalWidth, image.naturalHeight);
      setBox({ x: Math.floor((image.naturalWidth - size) / 2), y: Math.floor((image.naturalHeight - size) / 2), size });
      $("photo-status").textContent = `${file.name}: ${image.naturalWidth} x ${image.naturalHeight} px`;
    };
    image.src = reader.result;
    $("photo-panel").hidden = false;
  };
  reader.readAsDataURL(file);
}

// The box, in the photo's pixels: within the photo, at least 32 a side.
function setBox(box) {
  const size = Math.max(32, Math.min(Math.round(box.size), photoFile.width, photoFile.height));
  const x = Math.max(0, Math.min(Math.round(box.x), photoFile.width - size));
  const y = Math.max(0, Math.min(Math.round(box.y), photoFile.height - size));
  photoFile.box = { x, y, size };
  $("box-x").value = x; $("box-y").value = y; $("box-size").value = size;
  const scale = $("photo-image").clientWidth / photoFile.width;
  Object.assign($("photo-box").style, { left: `${x * scale}px`, top: `${y * scale}px`, width: `${size * scale}px`, height: `${size * scale}px` });
}

function dragBox(event, resize) {
  event.preventDefault();
  event.stopPropagation();
  const scale = photoFile.width / $("photo-image").clientWidth;
  const from = { pointerX: event.clientX, pointerY: event.clientY, ...photoFile.box };
  const move = (e) => {
    const dx = (e.clientX - from.pointerX) * scale, dy = (e.clientY - from.pointerY) * scale;
    setBox(resize ? { x: from.x, y: from.y, size: from.size + Math.max(dx, dy) } : { x: from.x + dx, y: from.y + dy, size: from.size });
  };
  const stop = () => { document.removeEventListener("pointermove", move); document.removeEventListener("pointerup", stop); };
  document.addEventListener("pointermove", move);
  document.addEventListener("pointerup", stop);
}

async function invertPhoto() {
  if (!photoFile.url) return;
  $("invert").disabled = true;
  $("cancel-invert").hidden = false;
  $("photo-progress").hidden = false;
  $("photo-progress").value = 0;
  try {
    const box = [photoFile.box.x, photoFile.box.y, photoFile.box.size];
    photoJob = (await post("/api/photo", { image: photoFile.url, name: photoFile.name, box })).job;
    let progress;
    do {
      await new Promise((resolve) => setTimeout(resolve, 250));
      progress = await post("/api/photo/progress", { job: photoJob });
      const fraction = progress.steps ? progress.step / progress.steps : 0;
      $("photo-progress").value = progress.stage === "layer" ? 0.5 + fraction / 2 : fraction / 2;
      $("photo-status").textContent = `inverting: ${progress.stage} ${progress.step}/${progress.steps}, ${progress.seconds} s`;
    } while (!progress.done);
    if (progress.error) throw new Error(progress.error);
    if (progress.cancelled) { $("photo-status").textContent = "cancelled"; return; }
    $("photo-status").textContent = Object.entries(progress.stages).map(([stage, report]) => `${stage}: ${report}`).join("; ");
    $("photo-panel").hidden = true;
    change({ photo: progress.photo, part: null, mask: null, appearance: null });
  } catch (error) {
    if (error instanceof Stopped) stopped(); else { $("photo-status").textContent = error.message; say(error.message, true); }
  } finally {
    photoJob = null;
    $("invert").disabled = false;
    $("cancel-invert").hidden = true;
    $("photo-progress").hidden = true;
  }
}

function wirePhotos() {
  $("photo-file").addEventListener("change", () => { openPhoto($("photo-file").files[0]); $("photo-file").value = ""; });
  document.addEventListener("dragover", (event) => { event.preventDefault(); document.body.classList.add("dragging"); });
  document.addEventListener("dragleave", () => document.body.classList.remove("dragging"));
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    document.body.classList.remove("dragging");
    openPhoto(event.dataTransfer.files[0]);
  });
  $("photo-box").addEventListener("pointerdown", (event) => dragBox(event, false));
  $("photo-handle").addEventListener("pointerdown", (event) => dragBox(event, true));
  for (const id of ["box-x", "box-y", "box-size"]) {
    $(id).addEventListener("change", () => setBox({ x: Number($("box-x").value), y: Number($("box-y").value), size: Number($("box-size").value) }));
  }
  window.addEventListener("resize", () => { if (photoFile.box) setBox(photoFile.box); });
  $("invert").addEventListener("click", invertPhoto);
  $("cancel-invert").addEventListener("click", () => { if (photoJob) post("/api/photo/cancel", { job: photoJob }).catch(() => {}); });
  $("close-photo").addEventListener("click", () => { $("photo-panel").hidden = true; });
}

// -- wiring -----------------------------------------------------------------------------------

function setTool(chosen) {
  tool = chosen;
  document.querySelectorAll("button.tool").forEach((b) => b.classList.toggle("on", b.dataset.tool === chosen));
}

async function pickAt(event) {
  if (shown === null) return;
  const size = shownSize;
  const stage = $("stage").getBoundingClientRect();
  const x = Math.min(size[1] - 1, Math.floor(((event.clientX - stage.left) / stage.width) * size[1]));
  const y = Math.min(size[0] - 1, Math.floor(((event.clientY - stage.top) / stage.height) * size[0]));
  try {
    const answer = await post("/api/part", { ...subject(shown), x, y });
    change({ part: answer.part, mask: null, appearance: null });
  } catch (error) {
    if (error instanceof Stopped) stopped(); else say(error.message, true);
  }
}

async function start() {
  info = await post("/api/info", {});
  $("model").textContent = `${info.generator}, layer ${info.layer}: ${info.num_parts} parts, ${info.num_appearances} appearances`;
  $("legend").replaceChildren(...info.colours.map((colour, part) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `part ${part}`;
    button.dataset.part = part;
    button.style.background = colour;
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
    button.style.color = r + g + b > 380 ? "#000" : "#fff";
    button.addEventListener("click", () => change({ part, mask: null, appearance: null }));
    return button;
  }));
  $("source").replaceChildren(...Array.from({ length: info.num_appearances }, (_, j) => new Option(`appearance ${j}`, j)));

  $("seed").addEventListener("change", () => {
    const seed = Number($("seed").value);
    if ($("seed").value.trim() !== "" && Number.isInteger(seed) && seed >= 0) { change({ seed, photo: null, mask: null }); return; }
    say(`seed=${$("seed").value.slice(0, 40)} must be a non-negative integer.`, true);
    $("seed").value = state.seed;
  });
  $("new-sample").addEventListener("click", () => change({ seed: Math.floor(Math.random() * 100000), photo: null, mask: null }));
  $("parts").addEventListener("change", () => change({ parts: $("parts").value }));
  $("show-parts").addEventListener("change", () => $("overlay").classList.toggle("hidden", !$("show-parts").checked));
  document.querySelectorAll("button.tool").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  $("clear-mask").addEventListener("click", () => { if (state.mask !== null) change({ mask: null, appearance: null }); });
  $("undo").addEventListener("click", undo);
  document.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z" && !event.target.matches("input[type=number], textarea")) {
      event.preventDefault();
      undo();
    }
  });

  const canvas = $("mask-canvas");
  canvas.addEventListener("pointerdown", (event) => {
    if (tool === "pick") { pickAt(event); return; }
    canvas.setPointerCapture(event.pointerId);
    stroke = null;
    drawTo(canvasPoint(event));
  });
  canvas.addEventListener("pointermove", (event) => { if (stroke !== null) drawTo(canvasPoint(event)); });
  canvas.addEventListener("pointerup", endStroke);
  canvas.addEventListener("pointercancel", endStroke);

  let sliding = false;  // one drag of the slider is one step of undo
  $("alpha").addEventListener("input", () => {
    if (!sliding) { markUndoPoint(); sliding = true; }
    state.alpha = Number($("alpha").value);
    $("alpha-value").textContent = state.alpha.toFixed(1);
    refresh();
  });
  $("alpha").addEventListener("change", () => { sliding = false; });
  document.querySelectorAll("input[name=action]").forEach((radio) => radio.addEventListener("change", () => change({ action: radio.value })));
  $("source").addEventListener("change", () => change({ source: Number($("source").value) }));
  $("download").addEventListener("click", async (event) => {
    const link = $("download");
    if (link.dataset.whole !== "no") return;  // the link holds the whole image
    event.preventDefault();
    try {
      const answer = await post("/api/edit", { ...editRequest(shown), full: true });
      link.href = answer.edited;
      link.dataset.whole = "yes";
      link.click();
    } catch (error) {
      if (error instanceof Stopped) stopped(); else say(error.message, true);
    }
  });

  $("download-inversion").addEventListener("click", async (event) => {
    const link = $("download-inversion");
    if (link.dataset.photo === shown.photo) return;  // the link holds this photo's inversion
    event.preventDefault();
    try {
      const answer = await post("/api/photo/inversion", { photo: shown.photo });
      link.href = answer.inversion;
      link.dataset.photo = shown.photo;
      link.click();
    } catch (error) {
      if (error instanceof Stopped) stopped(); else say(error.message, true);
    }
  });
  wirePhotos();

  state = fromAddress();
  refresh();
}

start().catch((error) => { if (error instanceof Stopped) stopped(); else say(error.message, true); });
