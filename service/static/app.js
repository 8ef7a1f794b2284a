// The latent explorer: pick a model, move through its latent space (sliders for continuous codes and noise,
// a picker per categorical part), encode an image, draw one and redraw it with named factors changed,
// traverse one dimension, and synthesise from named factors; every picture comes from the service's JSON
// endpoints.

import { Latest, request, setApiKey } from "./api.js";
import { renderBroken, renderCard } from "./card.js";
import { ClassPickers } from "./classes.js";
import { FactorControls } from "./factors.js";
import { LatentLayout, oneHot } from "./latent.js";
import { DrawingPad } from "./pad.js";
import { continuousRows, formatValue, noiseRows, Sliders } from "./sliders.js";

// The key lives for this tab only: a reload keeps it, closing the tab forgets it.
const KEY_STORAGE = "disentangle.apiKey";
// Short enough to follow a dragged slider, long enough that a held arrow key sends a request per pause.
const SLIDER_DELAY_MS = 40;
// A traversal decodes a whole row, so it waits for the user to stop.
const TRAVERSE_DELAY_MS = 250;
const TRAVERSE_STEPS = 9;
// The pad is read while the pen moves: often enough to follow the drawing, not once per pointer event.
const PAD_DELAY_MS = 150;

const $ = (id) => document.getElementById(id);
const ui = {
  connection: $("connection"),
  key: $("api-key"),
  models: $("model"),
  error: $("error"),
  status: $("status"),
  main: $("main"),
  title: $("explorer-title"),
  decoded: $("decoded"),
  upload: $("upload"),
  uploaded: $("uploaded"),
  uploadedFigure: $("uploaded-figure"),
  slidersLegend: $("sliders-legend"),
  noise: $("noise-details"),
  reset: $("reset"),
  sample: $("sample"),
  traverseDim: $("traverse-dim"),
  frames: $("frames"),
  factorsPanel: $("factors-panel"),
  synthesized: $("synthesized"),
  useSynthesized: $("use-synthesized"),
  card: $("card"),
  broken: $("broken"),
  padPanel: $("pad-panel"),
};

// One error is shown at a time; a later success of the same kind of request takes it away, a success of
// another kind leaves it, so the user does not miss it.
let errorSource = null;

function showError(source, error) {
  errorSource = source;
  ui.error.textContent = error.message;
}

function clearError(source) {
  if (errorSource !== source) return;
  errorSource = null;
  ui.error.textContent = "";
}

function say(text) {
  ui.status.textContent = text;
}

const channels = {
  models: new Latest(0, (error) => {
    showError("models", error);
    if (error.status === 401) {
      say("This service needs an API key: enter it above.");
      ui.key.focus();
    }
  }),
  decode: new Latest(SLIDER_DELAY_MS, (error) => showError("decode", error)),
  encode: new Latest(0, (error) => {
    pendingUpload = null;
    showError("encode", error);
  }),
  traverse: new Latest(TRAVERSE_DELAY_MS, (error) => showError("traverse", error)),
  synthesize: new Latest(SLIDER_DELAY_MS, (error) => showError("synthesize", error)),
  // The class thumbnails decode a row per part, like a traversal, so they too wait for the user to stop.
  thumbnails: new Latest(TRAVERSE_DELAY_MS, (error) => showError("thumbnails", error)),
  edit: new Latest(PAD_DELAY_MS, (error) => showError("edit", error)),
};

let model = null; // the selected model's /models/{name} answer
let layout = null; // its LatentLayout
let synthesizedLatent = null;
// The image on show beside the sliders, and one given since whose latent has not arrived. A newly chosen
// model encodes the newest of them again: models can be compared on one picture, and an upload made while
// the model loads, whose request the switch cancels, is not lost.
let shownUpload = null;
let pendingUpload = null;

// Something the decoded picture depends on changed: redraw it, and the pictures made from it.
function latentChanged() {
  channels.decode.schedule(decode);
  channels.traverse.schedule(traverse);
  if (layout.hasParts) channels.thumbnails.schedule(drawThumbnails);
}

const sliders = new Sliders($("sliders"), (dim) => {
  ui.traverseDim.value = String(dim);
  latentChanged();
});
const noise = new Sliders($("noise"), () => latentChanged(), "noise");
// A part's own thumbnails hold every class of it, so picking one leaves them as they are; the other parts'
// thumbnails are drawn with the new class.
const pickers = new ClassPickers($("classes"), () => {
  channels.decode.now(decode);
  channels.traverse.schedule(traverse);
  if (layout.parts.length > 1) channels.thumbnails.schedule(drawThumbnails);
});
// Until the new picture arrives, the button would hand the sliders the latent of the old one.
const factorControls = new FactorControls($("factors"), () => {
  ui.useSynthesized.disabled = true;
  channels.synthesize.schedule(synthesize);
});

const pad = new DrawingPad({
  canvas: $("pad"),
  clear: $("pad-clear"),
  redrawn: $("pad-redrawn"),
  reading: $("pad-reading"),
  knobs: new FactorControls($("pad-knobs"), () => pad.knobsChanged(), { keep: true, prefix: "knob" }),
  use: $("pad-use"),
  channel: channels.edit,
  send: async (form, signal) => {
    const body = await request("edit", { form, signal });
    if (!signal.aborted) clearError("edit");
    return body;
  },
  onLatent: (latent) => {
    showLatent(latent);
    say("The sliders show the redrawn drawing's latent.");
  },
});

function pngSource(base64) {
  return `data:image/png;base64,${base64}`;
}

function latentParts() {
  return { continuous: sliders.values, parts: pickers.values, noise: noise.values };
}

function flatLatent() {
  return layout.join(latentParts());
}

async function decode(signal) {
  const json = layout.decodeBody(model.name, latentParts());
  const body = await request("decode", { json, signal });
  if (signal.aborted) return;
  ui.decoded.src = pngSource(body.images[0]);
  showUsage(json);
  clearError("decode");
}

// What an app developer pastes: the body of the request that made the picture, and the same as curl. The key
// itself never lands in the text (it would end up in shell histories): the command reads it from the shell.
function showUsage(json) {
  const body = JSON.stringify(json);
  $("latent-json").value = body;
  const auth = ui.key.value.trim() ? ` -H "Authorization: Bearer $DISENTANGLE_API_KEY"` : "";
  const url = new URL("decode", window.location.href).href;
  $("latent-curl").value =
    `curl -s ${url} -H 'Content-Type: application/json' -H 'Accept: image/png'${auth} -d '${body}' -o decoded.png`;
}

async function copy(textarea, what) {
  try {
    await navigator.clipboard.writeText(textarea.value);
    say(`Copied the ${what}.`);
  } catch {
    textarea.select(); // no clipboard access (an insecure origin, a denied permission): the user copies it
    say(`Selected the ${what}: press Ctrl+C (or Cmd+C) to copy it.`);
  }
}

// `shown`: per part, probabilities to show beside the classes (an encoding's), if any.
function showLatent(latent, shown = new Map()) {
  const { continuous, parts, noise: noiseValues } = layout.split(latent);
  sliders.set(continuous);
  pickers.set(parts, shown);
  noise.set(noiseValues);
  channels.decode.now(decode);
  channels.traverse.schedule(traverse);
  if (layout.hasParts) channels.thumbnails.now(drawThumbnails);
}

// The frame buttons are made once and updated in place, so a button keeps keyboard focus after a click.
function buildFrames() {
  const buttons = Array.from({ length: TRAVERSE_STEPS }, () => {
    const button = document.createElement("button");
    button.type = "button";
    button.append(document.createElement("img"));
    button.addEventListener("click", () => {
      sliders.setOne(Number(button.dataset.dim), Number(button.dataset.value));
      channels.decode.now(decode);
      if (layout.hasParts) channels.thumbnails.schedule(drawThumbnails);
    });
    return button;
  });
  ui.frames.replaceChildren(...buttons);
}

async function traverse(signal) {
  if (!ui.traverseDim.options.length) return; // a model with no continuous codes has nothing to sweep
  const dim = Number(ui.traverseDim.value);
  const json = {
    model: model.name,
    latent: flatLatent(),
    dims: [dim],
    range: sliders.range(dim),
    steps: TRAVERSE_STEPS,
    format: "frames",
  };
  const body = await request("traverse", { json, signal });
  if (signal.aborted) return;
  [...ui.frames.children].forEach((button, step) => {
    const value = body.values[0][step];
    button.dataset.dim = String(dim);
    button.dataset.value = String(value);
    button.title = `set z${dim} to ${formatValue(value)}`;
    const img = button.firstChild;
    img.src = pngSource(body.frames[0][step]);
    img.alt = `z${dim} = ${formatValue(value)}`;
  });
  clearError("traverse");
}

// Each class's thumbnail is the picture the current latent makes with that class: what a click on it shows.
// (The mean code's pictures would never change, and would not be what the button gives once the sliders move.)
async function drawThumbnails(signal) {
  const latent = flatLatent();
  const rows = await Promise.all(
    layout.parts.map(({ name }) =>
      request("traverse", { json: { model: model.name, latent, part: name, format: "frames" }, signal }),
    ),
  );
  if (signal.aborted) return;
  rows.forEach((body) => pickers.showThumbnails(body.part, body.frames[0].map(pngSource)));
  clearError("thumbnails");
}

async function synthesize(signal) {
  const json = { model: model.name, factors: factorControls.factors };
  const body = await request("synthesize", { json, signal });
  if (signal.aborted) return;
  ui.synthesized.src = pngSource(body.image);
  synthesizedLatent = body.latent;
  ui.useSynthesized.disabled = false;
  clearError("synthesize");
}

function encode(file) {
  return async (signal) => {
    const form = new FormData();
    form.append("images", file);
    form.append("model", model.name);
    // People upload whatever they have: the service resizes it to the model's resolution.
    form.append("resize", "true");
    const body = await request("encode", { form, signal });
    if (signal.aborted) return;
    shownUpload = file;
    pendingUpload = null;
    if (ui.uploaded.src) URL.revokeObjectURL(ui.uploaded.src);
    ui.uploaded.src = URL.createObjectURL(file);
    ui.uploadedFigure.hidden = false;
    // The latent the service reconstructs from: mu, each part's most probable class (its probabilities stay on
    // show beside the classes) and, since no encoder reads a GAN's noise back, the noise's mean.
    const shown = new Map(Object.entries(body.probabilities ?? {}).map(([name, rows]) => [name, rows[0]]));
    showLatent(body.latent[0], shown);
    const classes = layout.hasParts ? " and the pickers its most probable classes" : "";
    say(`Encoded ${file.name}: the sliders show its latent mean${classes}.`);
    clearError("encode");
  };
}

function standardNormal() {
  // Box-Muller; 1 - random() keeps the logarithm finite.
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}

// A draw from the prior the model generates from, as its manifest's layout.prior says: N(0, 1) or U(low, high)
// for the continuous codes (a model without a prior: its codes' spread over the data stands in), N(0, 1) for
// a GAN's noise, a uniform class per categorical part.
function sample() {
  const prior = model.layout.prior;
  const draw = {
    normal: standardNormal,
    uniform: () => prior.low + (prior.high - prior.low) * Math.random(),
    none: (s) => s.mean + s.std * standardNormal(),
  }[prior.kind];
  const parts = new Map(layout.parts.map((p) => [p.name, oneHot(p.classes, Math.floor(Math.random() * p.classes))]));
  const noiseValues = Array.from({ length: layout.noise }, standardNormal);
  return layout.join({ continuous: model.latent_stats.map(draw), parts, noise: noiseValues });
}

// The average over the data of the continuous codes, the prior's mean noise. A part keeps its class: the
// average of a categorical code is a blend of every class, a picture nobody asked for.
function average() {
  return layout.join({
    continuous: model.latent_stats.map((s) => s.mean),
    parts: pickers.values,
    noise: new Array(layout.noise).fill(0),
  });
}

// The explorer's title: "10 latent dimensions" as ever, or the parts a layout with more than one kind holds.
function describe(parts) {
  if (!parts.hasParts && !parts.noise) return `${parts.size} latent dimensions`;
  const named = parts.parts.map((p) => `${p.name} (${p.classes} classes)`);
  const noiseText = parts.noise ? [`${parts.noise} noise dimensions`] : [];
  return [`${parts.continuous} continuous codes`, ...named, ...noiseText].join(", ");
}

function fillTraverseDims() {
  const ranked = [...model.latent_stats].sort((a, b) => b.kl - a.kl);
  ui.traverseDim.replaceChildren(...ranked.map((s) => new Option(`z${s.index}`, String(s.index))));
}

async function selectModel(name, signal) {
  const info = await request(`models/${encodeURIComponent(name)}`, { signal });
  if (signal.aborted) return;
  const working = [
    channels.decode,
    channels.encode,
    channels.traverse,
    channels.synthesize,
    channels.thumbnails,
    channels.edit,
  ];
  for (const channel of working) channel.cancel();
  model = info;
  layout = new LatentLayout(model.layout);
  ui.title.textContent = `${model.name}: ${describe(layout)}`;
  ui.slidersLegend.textContent = layout.hasParts
    ? "Continuous codes, most informative first"
    : "Latent dimensions, most informative first";
  sliders.build(continuousRows(model));
  pickers.build(layout.parts, model.calibration);
  noise.build(noiseRows(model, layout.noise));
  ui.noise.hidden = layout.noise === 0;
  fillTraverseDims();
  renderCard(ui.card, model);
  const upload = pendingUpload ?? shownUpload;
  ui.uploadedFigure.hidden = shownUpload === null;
  ui.factorsPanel.hidden = model.calibration === null;
  synthesizedLatent = null;
  ui.useSynthesized.disabled = true;
  ui.synthesized.removeAttribute("src");
  ui.padPanel.hidden = model.calibration === null; // reading and redrawing a drawing need the calibration
  if (model.calibration !== null) {
    factorControls.build(model.calibration);
    channels.synthesize.now(synthesize);
    pad.show(model);
  }
  ui.main.hidden = false;
  channels.decode.now(decode);
  channels.traverse.now(traverse);
  if (layout.hasParts) channels.thumbnails.now(drawThumbnails);
  clearError("models");
  say(`Showing ${model.name}, trained on ${model.dataset.name}.`);
  if (upload) channels.encode.now(encode(upload));
}

async function loadModels(signal) {
  say("Loading models…");
  const listing = await request("models", { signal });
  if (signal.aborted) return;
  const names = listing.models.map((m) => m.name);
  renderBroken(ui.broken, listing.broken);
  if (!names.length) {
    ui.models.replaceChildren();
    ui.main.hidden = true;
    say("The service has no models loaded.");
    clearError("models");
    return;
  }
  const keep = names.includes(ui.models.value) ? ui.models.value : listing.default ?? names[0];
  ui.models.replaceChildren(...names.map((n) => new Option(n, n, false, n === keep)));
  await selectModel(keep, signal);
}

ui.connection.addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey(ui.key.value);
  sessionStorage.setItem(KEY_STORAGE, ui.key.value);
  channels.models.now(loadModels);
});
ui.models.addEventListener("change", () => channels.models.now((signal) => selectModel(ui.models.value, signal)));
function encodeUpload(file) {
  pendingUpload = file;
  channels.encode.now(encode(file));
}

ui.upload.addEventListener("change", () => {
  const file = ui.upload.files[0];
  if (file) encodeUpload(file);
});
$("copy-json").addEventListener("click", () => copy($("latent-json"), "latent as JSON"));
$("copy-curl").addEventListener("click", () => copy($("latent-curl"), "curl command"));
const dropZone = $("drop-zone");
dropZone.addEventListener("dragover", (event) => {
  event.preventDefault(); // without it the browser opens the dropped file instead
  dropZone.classList.add("dropping");
});
dropZone.addEventListener("dragleave", () => dropZone.classList.remove("dropping"));
dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  dropZone.classList.remove("dropping");
  const file = event.dataTransfer?.files[0];
  if (file) encodeUpload(file);
});
ui.reset.addEventListener("click", () => showLatent(average()));
ui.sample.addEventListener("click", () => showLatent(sample()));
ui.traverseDim.addEventListener("change", () => channels.traverse.now(traverse));
ui.useSynthesized.addEventListener("click", () => showLatent(synthesizedLatent));

buildFrames();
ui.key.value = sessionStorage.getItem(KEY_STORAGE) ?? "";
setApiKey(ui.key.value);
channels.models.now(loadModels);
