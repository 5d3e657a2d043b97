// The page of `panda app`. All of a tab's state lives here and goes with every request, so the
// server holds none of it and tabs never meet. Requests of a kind are coalesced: while one is
// on its way, a newer state waits, and only the latest is sent when it returns.
"use strict";

const $ = (id) => document.getElementById(id);

const state = {
  seed: 0,
  parts: "global",
  part: null,        // the chosen part, or
  masked: false,     // a painted mask (the canvas) as the region
  appearance: null,
  alpha: 0,
  action: "edit",
  source: null,
  tool: "pick",
  size: null,        // [height, width] of the generator's images
};
window.pandaState = state;  // read by the browser test
window.pandaEdits = 0;      // edits shown so far
window.pandaBusy = 0;       // requests on their way

// -- requests ---------------------------------------------------------------------------------

async function post(path, payload) {
  window.pandaBusy += 1;
  try {
    const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
    return answer;
  } finally {
    window.pandaBusy -= 1;
  }
}

function say(message, isError = false) {
  $("status").textContent = message;
  $("status").classList.toggle("error", isError);
}

// One request of a kind at a time; the latest state wins.
function coalesced(send) {
  let running = false, again = false;
  const run = async () => {
    if (running) { again = true; return; }
    running = true;
    try { await send(); } catch (error) { say(error.message, true); }
    running = false;
    if (again) { again = false; run(); }
  };
  return run;
}

function region() {
  if (state.masked) return { mask: $("mask-canvas").toDataURL("image/png") };
  return state.part === null ? null : { part: state.part };
}

function request() {
  const payload = { seed: state.seed, parts: state.parts, action: state.action, alpha: state.alpha };
  Object.assign(payload, region() || {});
  if (state.appearance !== null) payload.appearance = state.appearance;
  if (state.action === "rewrite") payload.source = state.source;
  return payload;
}

// -- the sample and its parts -------------------------------------------------------------------

const loadSample = coalesced(async () => {
  const wanted = state.seed;
  const answer = await post("/api/sample", { seed: wanted, parts: state.parts });
  if (wanted !== state.seed) return;  // a newer seed is on its way
  state.size = answer.size;
  const upscaled = answer.size[1] < 256;
  for (const id of ["image", "overlay", "edited", "difference"]) $(id).classList.toggle("pixelated", upscaled);
  $("image").src = answer.image;
  $("overlay").src = answer.overlay;
  const canvas = $("mask-canvas");
  if (canvas.width !== answer.size[1] || canvas.height !== answer.size[0]) {
    canvas.width = answer.size[1];
    canvas.height = answer.size[0];
    state.masked = false;
  }
  say(`sample of seed ${wanted} (${answer.milliseconds} ms)`);
  regionChanged();
});

function setSeed(seed) {
  state.seed = seed;
  $("seed").value = seed;
  loadSample();
}

function regionChanged() {
  document.querySelectorAll("#legend button").forEach((b) => b.classList.toggle("on", !state.masked && Number(b.dataset.part) === state.part));
  $("region-name").textContent = state.masked ? "at the painted mask" : state.part === null ? "no region yet" : `at part ${state.part}`;
  loadGallery();
  editNow();
}

async function pickAt(event) {
  const stage = $("stage").getBoundingClientRect();
  const x = Math.min(state.size[1] - 1, Math.floor(((event.clientX - stage.left) / stage.width) * state.size[1]));
  const y = Math.min(state.size[0] - 1, Math.floor(((event.clientY - stage.top) / stage.height) * state.size[0]));
  try {
    const answer = await post("/api/part", { seed: state.seed, parts: state.parts, x, y });
    choosePart(answer.part);
  } catch (error) { say(error.message, true); }
}

function choosePart(part) {
  state.part = part;
  state.masked = false;
  regionChanged();
}

// -- the brush ------------------------------------------------------------------------------------

let painting = false;

function paint(event) {
  const canvas = $("mask-canvas"), box = canvas.getBoundingClientRect();
  const context = canvas.getContext("2d");
  const scale = canvas.width / box.width;
  context.globalCompositeOperation = state.tool === "erase" ? "destination-out" : "source-over";
  context.fillStyle = "rgb(255, 40, 40)";
  context.beginPath();
  context.arc((event.clientX - box.left) * scale, (event.clientY - box.top) * scale, (Number($("brush-size").value) / 2) * scale, 0, 2 * Math.PI);
  context.fill();
}

function maskIsEmpty() {
  const canvas = $("mask-canvas");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) return false;
  return true;
}

function clearMask() {
  const canvas = $("mask-canvas");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  if (state.masked) { state.masked = false; regionChanged(); }
}

function setTool(tool) {
  state.tool = tool;
  document.querySelectorAll("button.tool").forEach((b) => b.classList.toggle("on", b.dataset.tool === tool));
}

// -- the gallery and the edit --------------------------------------------------------------------

let galleryGeneration = 0;

const loadGallery = coalesced(async () => {
  const generation = ++galleryGeneration;
  const gallery = $("gallery");
  if (!region()) { gallery.replaceChildren(); return; }
  const answer = await post("/api/gallery", { ...request(), action: "edit", alpha: 0 });
  if (generation !== galleryGeneration) return;
  const ranked = answer.items.map((item) => item.appearance);
  if (state.appearance === null || !ranked.includes(state.appearance)) state.appearance = ranked[0];
  gallery.replaceChildren(...answer.items.map((item) => {
    const figure = document.createElement("figure");
    figure.dataset.appearance = item.appearance;
    figure.classList.toggle("on", item.appearance === state.appearance);
    figure.title = `appearance ${item.appearance}: spread ${item.spread.toFixed(3)} at this region`;
    const image = new Image();
    image.src = item.image;
    const caption = document.createElement("figcaption");
    caption.textContent = `appearance ${item.appearance}`;
    figure.append(image, caption);
    figure.addEventListener("click", () => chooseAppearance(item.appearance));
    return figure;
  }));
  const source = $("source");
  const previous = state.source;
  source.replaceChildren(...ranked.map((j) => new Option(`appearance ${j}`, j)));
  state.source = ranked.includes(previous) ? previous : ranked[0];
  source.value = state.source;
  editNow();
});

function chooseAppearance(appearance) {
  state.appearance = appearance;
  document.querySelectorAll("#gallery figure").forEach((f) => f.classList.toggle("on", Number(f.dataset.appearance) === appearance));
  editNow();
}

const editNow = coalesced(async () => {
  if (state.action !== "rewrite" && !region()) return;
  if (state.appearance === null) return;
  const answer = await post("/api/edit", request());
  $("edited").src = answer.edited;
  $("difference").src = answer.difference;
  $("download").href = answer.edited;  // (shrunk: the whole image is asked for on a click)
  $("download").dataset.whole = answer.shrunk ? "no" : "yes";
  $("download").download = `${state.action}-seed${state.seed}.png`;
  $("download-mask").hidden = !answer.mask;
  if (answer.mask) $("download-mask").href = answer.mask;
  $("command").value = answer.command;
  $("options").textContent = JSON.stringify(answer.options, null, 2);
  say(`${state.action}: ${answer.milliseconds} ms on the server`);
  window.pandaEdits += 1;
});

// -- wiring -----------------------------------------------------------------------------------

async function start() {
  const info = await post("/api/info", {});
  $("model").textContent = `${info.generator}, layer ${info.layer}: ${info.num_parts} parts, ${info.num_appearances} appearances`;
  $("legend").replaceChildren(...info.colours.map((colour, part) => {
    const button = document.createElement("button");
    button.textContent = `part ${part}`;
    button.dataset.part = part;
    button.style.background = colour;
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
    button.style.color = r + g + b > 380 ? "#000" : "#fff";
    button.addEventListener("click", () => choosePart(part));
    return button;
  }));

  $("seed").addEventListener("change", () => {
    const seed = Number($("seed").value);
    if (Number.isInteger(seed) && seed >= 0) setSeed(seed); else say(`seed=${$("seed").value} must be a non-negative integer.`, true);
  });
  $("new-sample").addEventListener("click", () => setSeed(Math.floor(Math.random() * 100000)));
  $("parts").addEventListener("change", () => { state.parts = $("parts").value; loadSample(); });
  $("show-parts").addEventListener("change", () => $("overlay").classList.toggle("hidden", !$("show-parts").checked));
  document.querySelectorAll("button.tool").forEach((b) => b.addEventListener("click", () => setTool(b.dataset.tool)));
  $("clear-mask").addEventListener("click", clearMask);

  const canvas = $("mask-canvas");
  canvas.addEventListener("pointerdown", (event) => {
    if (state.tool === "pick") { pickAt(event); return; }
    painting = true;
    canvas.setPointerCapture(event.pointerId);
    paint(event);
  });
  canvas.addEventListener("pointermove", (event) => { if (painting) paint(event); });
  canvas.addEventListener("pointerup", () => {
    if (!painting) return;
    painting = false;
    state.masked = !maskIsEmpty();
    regionChanged();
  });

  $("alpha").addEventListener("input", () => {
    state.alpha = Number($("alpha").value);
    $("alpha-value").textContent = state.alpha.toFixed(1);
    editNow();
  });
  document.querySelectorAll("input[name=action]").forEach((radio) => radio.addEventListener("change", () => {
    state.action = radio.value;
    editNow();
  }));
  $("source").addEventListener("change", () => { state.source = Number($("source").value); editNow(); });
  $("download").addEventListener("click", async (event) => {
    const link = $("download");
    if (link.dataset.whole !== "no") return;  // the link holds the whole image
    event.preventDefault();
    try {
      const answer = await post("/api/edit", { ...request(), full: true });
      link.href = answer.edited;
      link.dataset.whole = "yes";
      link.click();
    } catch (error) { say(error.message, true); }
  });

  setSeed(0);
}

start().catch((error) => say(error.message, true));
