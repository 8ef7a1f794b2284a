// The model card: what the manifest says about how a model was trained and how well it disentangles.

import { requestPicture } from "./api.js";

const OBJECTIVES = {
  ae: "autoencoder",
  vae: "VAE",
  beta_vae: "β-VAE",
  beta_tcvae: "β-TCVAE",
};

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function formatNumber(value) {
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString("en");
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e4 ? value.toPrecision(3) : value.toExponential(2);
}

function definitions(pairs) {
  const list = element("dl");
  for (const [term, value] of pairs) {
    list.append(element("dt", term), element("dd", value));
  }
  return list;
}

function table(caption, headings, rows) {
  const node = element("table");
  node.append(element("caption", caption));
  const head = element("tr");
  for (const heading of headings) {
    const cell = element("th", heading);
    cell.scope = "col";
    head.append(cell);
  }
  node.append(element("thead"));
  node.tHead.append(head);
  const body = element("tbody");
  for (const [name, ...cells] of rows) {
    const row = element("tr");
    const header = element("th", name);
    header.scope = "row";
    row.append(header, ...cells.map((cell) => element("td", formatNumber(cell))));
    body.append(row);
  }
  node.append(body);
  return node;
}

function folded(summary, content) {
  const details = element("details");
  details.append(element("summary", summary), content);
  return details;
}

function datasetText(dataset) {
  const size = dataset.size ? `, ${formatNumber(dataset.size)} images` : "";
  const params = Object.entries(dataset.params).map(([k, v]) => `${k}=${v}`);
  return `${dataset.name}${size}${params.length ? ` (${params.join(", ")})` : ""}`;
}

function factorsText(factors) {
  if (!factors.length) return "none labelled";
  return factors.map((f) => `${f.name} (${f.values.length})`).join(", ");
}

const CAPTIONS = {
  "traversal.png": "Traversals: one row per dimension (by KL), the others held at their mean",
  "reconstructions.png": "Inputs (top) and their reconstructions (bottom)",
  "mutual_information.png": "Mutual information between dimensions and factors",
  "training_curves.png": "Training curves",
};

function cardPicture(name, file) {
  const figure = element("figure", undefined, "card-picture");
  const img = Object.assign(document.createElement("img"), { alt: CAPTIONS[file] ?? file, loading: "lazy" });
  const caption = element("figcaption", CAPTIONS[file] ?? file);
  figure.append(img, caption);
  requestPicture(`models/${encodeURIComponent(name)}/card/${encodeURIComponent(file)}`)
    .then((url) => (img.src = url))
    .catch((error) => (caption.textContent = `${file}: ${error.message}`));
  return figure;
}

export function renderCard(container, model) {
  const [channels, height, width] = model.image_shape;
  const active = model.active_dims.map((d) => `z${d}`).join(", ") || "none";
  const objective = OBJECTIVES[model.objective] ?? model.objective;
  const beta = model.hyperparameters.beta;
  const parts = [
    ["Objective", beta === undefined ? objective : `${objective}, β = ${beta}`],
    ["Architecture", `${model.architecture}, ${model.likelihood} likelihood`],
    ["Dataset", datasetText(model.dataset)],
    ["Factors", factorsText(model.dataset.factors)],
    ["Latent", `${model.latent_dim} dimensions, active: ${active}`],
    ["Images", `${width}×${height}, ${channels === 1 ? "grey" : "colour"}`],
    ["Created", new Date(model.created_at).toLocaleString("en")],
  ];
  const nodes = [definitions(parts)];

  // An evaluated model records dozens of metrics; the headline scores (numbers with plain names, like
  // "mig") come first, the per-factor parts and the definitions ("mig.definition") fold away.
  const metrics = Object.entries(model.metrics);
  const headline = metrics.filter(([name, value]) => !name.includes(".") && typeof value === "number");
  if (!metrics.length) nodes.push(element("p", "The manifest records no metrics for this model.", "note"));
  if (headline.length) nodes.push(table("Metrics", ["metric", "value"], headline));
  if (headline.length < metrics.length) {
    const all = table("All metrics", ["metric", "value"], metrics);
    nodes.push(folded(`All ${metrics.length} metrics, with their definitions`, all));
  }

  const calibration = model.calibration;
  if (calibration && Object.keys(calibration.recovery).length) {
    const rows = calibration.factors.map((f) => [f.name, f.dims.map((d) => `z${d}`).join(", ") || "none",
      calibration.recovery[f.name] ?? "–"]);
    nodes.push(table("Named factors: the dims that carry each, how often re-encoding recovers it",
      ["factor", "dims", "recovered"], rows));
    const agreement = Object.entries(calibration.agreement).map(([k, v]) => `${k} ${formatNumber(v)}`);
    if (agreement.length) nodes.push(element("p", `Synthesis against the dataset's own render: ${agreement.join(", ")}.`, "note"));
    for (const group of calibration.groups ?? []) {
      nodes.push(element("p", `Calibrated jointly, as they share dims: ${group.join(", ")}.`, "note"));
    }
  }

  for (const file of model.card ?? []) nodes.push(cardPicture(model.name, file));

  const hyper = Object.entries(model.hyperparameters);
  if (hyper.length) nodes.push(folded("Hyperparameters", table("Hyperparameters", ["name", "value"], hyper)));
  container.replaceChildren(...nodes);
}

export function renderBroken(container, broken) {
  if (!broken.length) {
    container.replaceChildren();
    return;
  }
  const list = element("ul");
  for (const b of broken) list.append(element("li", `${b.folder}: ${b.error}`));
  container.replaceChildren(element("p", `${broken.length} model folder(s) could not be loaded:`), list);
}
