// Latent values as range inputs: the continuous codes, the most informative (highest KL) first, and a GAN's
// noise. Each set of sliders holds its values by index (a continuous code's dim, or the noise entry).
// A slider spans its dim's range as /models/{name} answers it (`ranges`, one per dim of the flat latent): the
// service computes it by the rule /traverse and the model card use too, so the page computes none of its own.

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

// One row per continuous dim, most informative first, starting at the dim's mean over the data.
export function continuousRows(model) {
  const carried = factorsByDim(model.calibration);
  const ranked = [...model.latent_stats].sort((a, b) => b.kl - a.kl);
  return ranked.map((stat) => {
    const factors = carried.get(stat.index);
    return {
      index: stat.index,
      label: factors ? `z${stat.index}: ${factors.join(", ")}` : `z${stat.index}`,
      // A GAN's codes have no KL to the prior (its stats say 0): nothing to show for them.
      meta: !stat.active ? " inactive" : stat.kl > 0 ? ` KL ${stat.kl.toPrecision(2)}` : "",
      active: stat.active,
      range: model.ranges[stat.index],
      value: stat.mean,
    };
  });
}

// A GAN's noise is drawn from N(0, 1) and no encoder reads it back: its rows start at the prior's mean. The
// noise dims are the last `count` of the flat latent.
export function noiseRows(model, count) {
  const first = model.ranges.length - count;
  return Array.from({ length: count }, (_, k) => ({
    index: k,
    label: `n${k}`,
    meta: "",
    active: true,
    range: model.ranges[first + k],
    value: 0,
  }));
}

export class Sliders {
  // `onInput(index)` runs whenever the user moves a slider; `idPrefix` names the inputs ("z" gives z-3).
  constructor(container, onInput, idPrefix = "z") {
    this.container = container;
    this.onInput = onInput;
    this.idPrefix = idPrefix;
    this.inputs = [];
    this.outputs = [];
    this.numbers = [];
  }

  // `rows` in the order shown; their indices are 0..rows.length - 1.
  build(rows) {
    this.container.replaceChildren();
    this.inputs = new Array(rows.length);
    this.outputs = new Array(rows.length);
    this.numbers = new Array(rows.length);
    for (const row of rows) this.container.append(this.row(row));
  }

  row({ index, label: text, meta, active, range: [low, high], value }) {
    const id = `${this.idPrefix}-${index}`;
    const row = document.createElement("div");
    row.className = active ? "slider" : "slider inactive";

    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = text;
    if (meta) {
      const note = document.createElement("span");
      note.className = "meta";
      note.textContent = meta;
      label.append(note);
    }

    // step "any": an encoded image's latent must be shown exactly, not snapped to a grid; the arrow keys
    // then move by 1% of the range.
    const input = Object.assign(document.createElement("input"), {
      type: "range",
      id,
      min: String(low),
      max: String(high),
      step: "any",
    });
    input.dataset.dim = String(index);
    input.value = String(value);
    const output = document.createElement("output");
    output.htmlFor = id;
    // The slider itself announces its value (as aria-valuetext); an <output> is a live region, and ten of
    // them changing at once after an upload would talk over each other.
    output.setAttribute("aria-hidden", "true");
    this.inputs[index] = input;
    this.outputs[index] = output;
    this.numbers[index] = value;
    this.show(index, value);
    input.addEventListener("input", () => {
      this.numbers[index] = Number(input.value);
      this.show(index, this.numbers[index]);
      this.onInput(index);
    });

    row.append(label, input, output);
    return row;
  }

  get values() {
    return [...this.numbers];
  }

  set(values) {
    values.forEach((value, index) => this.setOne(index, value));
  }

  // A value outside a slider's range widens the range rather than being clamped: the slider must show
  // the latent that is decoded.
  setOne(index, value) {
    const input = this.inputs[index];
    // The service answers in float32: a value a rounding error past an end is at that end, not beyond it.
    const slack = 1e-6 * Math.max(1, Math.abs(value));
    if (value < Number(input.min) - slack) input.min = String(Math.floor(value));
    if (value > Number(input.max) + slack) input.max = String(Math.ceil(value));
    input.value = String(value);
    this.numbers[index] = value;
    this.show(index, value);
  }

  show(index, value) {
    const text = formatValue(value);
    this.inputs[index].setAttribute("aria-valuetext", text);
    this.outputs[index].textContent = text;
  }

  range(index) {
    const input = this.inputs[index];
    return [Number(input.min), Number(input.max)];
  }
}
