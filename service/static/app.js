// The latent explorer: pick a model, move through its latent space, encode an image, traverse one
// dimension, and synthesise from named factors; every picture comes from the service's JSON endpoints.

import { Latest, request, setApiKey } from "./api.js";
import { renderBroken, renderCard } from "./card.js";
import { FactorControls } from "./factors.js";
import { formatValue, Sliders } from "./sliders.js";

// The key lives for this tab only: a reload keeps it, closing the tab forgets it.
const KEY_STORAGE = "disentangle.apiKey";
// Short enough to follow a dragged slider, long enough that a held arrow key sends a request per pause.
const SLIDER_DELAY_MS = 40;
// A traversal decodes a whole row, so it waits for the user to stop.
const TRAVERSE_DELAY_MS = 250;
const TRAVERSE_STEPS = 9;

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
  reset: $("reset"),
  sample: $("sample"),
  traverseDim: $("traverse-dim"),
  frames: $("frames"),
  factorsPanel: $("factors-panel"),
  synthesized: $("synthesized"),
  useSynthesized: $("use-synthesized"),
  card: $("card"),
  broken: $("broken"),
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
  encode: new Latest(0, (error) => showError("encode", error)),
  traverse: new Latest(TRAVERSE_DELAY_MS, (error) => showError("traverse", error)),
  synthesize: new Latest(SLIDER_DELAY_MS, (error) => showError("synthesize", error)),
};

let model = null; // the selected model's /models/{name} answer
let synthesizedLatent = null;

const sliders = new Sliders($("sliders"), (dim) => {
  ui.traverseDim.value = String(dim);
  channels.decode.schedule(decode);
  channels.traverse.schedule(traverse);
});
// Until the new picture arrives, the button would hand the sliders the latent of the old one.
const factorControls = new FactorControls($("factors"), () => {
  ui.useSynthesized.disabled = true;
  channels.synthesize.schedule(synthesize);
});

function pngSource(base64) {
  return `data:image/png;base64,${base64}`;
}

async function decode(signal) {
  const json = { model: model.name, latents: [sliders.latent] };
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

function showLatent(latent) {
  sliders.set(latent);
  channels.decode.now(decode);
  channels.traverse.schedule(traverse);
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
    });
    return button;
  });
  ui.frames.replaceChildren(...buttons);
}

async function traverse(signal) {
  const dim = Number(ui.traverseDim.value);
  const json = {
    model: model.name,
    latent: sliders.latent,
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
    if (ui.uploaded.src) URL.revokeObjectURL(ui.uploaded.src);
    ui.uploaded.src = URL.createObjectURL(file);
    ui.uploadedFigure.hidden = false;
    showLatent(body.mu[0]);
    say(`Encoded ${file.name}: the sliders show its latent mean.`);
    clearError("encode");
  };
}

function standardNormal() {
  // Box-Muller; 1 - random() keeps the logarithm finite.
  return Math.sqrt(-2 * Math.log(1 - Math.random())) * Math.cos(2 * Math.PI * Math.random());
}

function sample() {
  // A VAE generates from its prior N(0, 1); a plain autoencoder has none, so its codes' spread stands in.
  const fromPrior = model.objective !== "ae";
  return model.latent_stats.map((s) => (fromPrior ? standardNormal() : s.mean + s.std * standardNormal()));
}

function fillTraverseDims() {
  const ranked = [...model.latent_stats].sort((a, b) => b.kl - a.kl);
  ui.traverseDim.replaceChildren(...ranked.map((s) => new Option(`z${s.index}`, String(s.index))));
}

async function selectModel(name, signal) {
  const info = await request(`models/${encodeURIComponent(name)}`, { signal });
  if (signal.aborted) return;
  for (const channel of [channels.decode, channels.encode, channels.traverse, channels.synthesize]) channel.cancel();
  model = info;
  ui.title.textContent = `${model.name}: ${model.latent_dim} latent dimensions`;
  sliders.build(model);
  fillTraverseDims();
  renderCard(ui.card, model);
  ui.uploadedFigure.hidden = true;
  ui.factorsPanel.hidden = model.calibration === null;
  synthesizedLatent = null;
  ui.useSynthesized.disabled = true;
  ui.synthesized.removeAttribute("src");
  if (model.calibration !== null) {
    factorControls.build(model.calibration);
    channels.synthesize.now(synthesize);
  }
  ui.main.hidden = false;
  channels.decode.now(decode);
  channels.traverse.now(traverse);
  clearError("models");
  say(`Showing ${model.name}, trained on ${model.dataset.name}.`);
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
ui.upload.addEventListener("change", () => {
  const file = ui.upload.files[0];
  if (file) channels.encode.now(encode(file));
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
  if (file) channels.encode.now(encode(file));
});
ui.reset.addEventListener("click", () => showLatent(model.latent_stats.map((s) => s.mean)));
ui.sample.addEventListener("click", () => showLatent(sample()));
ui.traverseDim.addEventListener("change", () => channels.traverse.now(traverse));
ui.useSynthesized.addEventListener("click", () => showLatent(synthesizedLatent));

buildFrames();
ui.key.value = sessionStorage.getItem(KEY_STORAGE) ?? "";
setApiKey(ui.key.value);
channels.models.now(loadModels);
