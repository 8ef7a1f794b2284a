// The latent vector as one range input per dimension, the most informative (highest KL) first.

// N(0, 1), the prior, has 99.7% of its mass within 3 standard deviations; so does a dimension's spread of
// encodings. A slider covers both, so a VAE's prior and an autoencoder's codes are both in reach.
const SPAN = 3;

export function sliderRange(stat) {
  return [Math.min(-SPAN, stat.mean - SPAN * stat.std), Math.max(SPAN, stat.mean + SPAN * stat.std)];
}

export function formatValue(value) {
  const text = value.toFixed(2);
  return text === "-0.00" ? "0.00" : text;
}

// For a calibrated model, the factors each dimension carries: the label then reads "z3: posX".
function factorsByDim(calibration) {
  const carried = new Map();
  for (const factor of calibration?.factors ?? []) {
    for (const dim of factor.dims) carried.set(dim, [...(carried.get(dim) ?? []), factor.name]);
  }
  return carried;
}

export class Sliders {
  // `onInput(dim)` runs whenever the user moves a slider.
  constructor(container, onInput) {
    this.container = container;
    this.onInput = onInput;
    this.inputs = [];
    this.outputs = [];
    this.values = [];
  }

  build(model) {
    this.container.replaceChildren();
    this.inputs = new Array(model.latent_dim);
    this.outputs = new Array(model.latent_dim);
    this.values = model.latent_stats.map((stat) => stat.mean);
    this.carried = factorsByDim(model.calibration);
    const ranked = [...model.latent_stats].sort((a, b) => b.kl - a.kl);
    for (const stat of ranked) this.container.append(this.row(stat));
  }

  row(stat) {
    const dim = stat.index;
    const id = `z-${dim}`;
    const [low, high] = sliderRange(stat);
    const row = document.createElement("div");
    row.className = stat.active ? "slider" : "slider inactive";

    const label = document.createElement("label");
    label.htmlFor = id;
    const factors = this.carried.get(dim);
    label.textContent = factors ? `z${dim}: ${factors.join(", ")}` : `z${dim}`;
    const kl = document.createElement("span");
    kl.className = "meta";
    kl.textContent = stat.active ? ` KL ${stat.kl.toPrecision(2)}` : " inactive";
    label.append(kl);

    // step "any": an encoded image's latent must be shown exactly, not snapped to a grid; the arrow keys
    // then move by 1% of the range.
    const input = Object.assign(document.createElement("input"), {
      type: "range",
      id,
      min: String(low),
      max: String(high),
      step: "any",
    });
    input.dataset.dim = String(dim);
    input.value = String(this.values[dim]);
    const output = document.createElement("output");
    output.htmlFor = id;
    // The slider itself announces its value (as aria-valuetext); an <output> is a live region, and ten of
    // them changing at once after an upload would talk over each other.
    output.setAttribute("aria-hidden", "true");
    this.inputs[dim] = input;
    this.outputs[dim] = output;
    this.show(dim, this.values[dim]);
    input.addEventListener("input", () => {
      this.values[dim] = Number(input.value);
      this.show(dim, this.values[dim]);
      this.onInput(dim);
    });

    row.append(label, input, output);
    return row;
  }

  get latent() {
    return [...this.values];
  }

  set(latent) {
    latent.forEach((value, dim) => this.setOne(dim, value));
  }

  // A value outside a slider's range widens the range rather than being clamped: the slider must show
  // the latent that is decoded.
  setOne(dim, value) {
    const input = this.inputs[dim];
    // The service answers in float32: a value a rounding error past an end is at that end, not beyond it.
    const slack = 1e-6 * Math.max(1, Math.abs(value));
    if (value < Number(input.min) - slack) input.min = String(Math.floor(value));
    if (value > Number(input.max) + slack) input.max = String(Math.ceil(value));
    input.value = String(value);
    this.values[dim] = value;
    this.show(dim, value);
  }

  show(dim, value) {
    const text = formatValue(value);
    this.inputs[dim].setAttribute("aria-valuetext", text);
    this.outputs[dim].textContent = text;
  }

  range(dim) {
    const input = this.inputs[dim];
    return [Number(input.min), Number(input.max)];
  }
}
