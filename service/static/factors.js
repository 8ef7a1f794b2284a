// Controls for a model's named factors (its calibration): a list for factors whose values are names or
// classes, a slider over the calibrated span for quantities, and a checkbox per factor to leave it out (it
// then keeps its average over the data).

import { formatValue } from "./sliders.js";

// A list, not a slider, where a value between two calibrated ones means nothing: names ("heart"), a factor the
// calibration put on a categorical latent part, and labels numbered 0..K-1 (the digit: halfway between 3 and
// 4 is no digit, and a slider would send 6.93 for a 7).
function isDiscrete(factor) {
  if (factor.part || factor.values.some((v) => typeof v === "string")) return true;
  return factor.values.every((v, i) => v === i);
}

// What the factor panel says beside a factor on a categorical part: the class its value is drawn with.
function classNote(factor, value) {
  const k = factor.classes[factor.values.findIndex((v) => String(v) === value)];
  return `${factor.part} class ${k}`;
}

export class FactorControls {
  // `onChange()` runs whenever the user changes a factor. With `keep`, for edits (the drawing pad), a factor
  // starts unticked, keeping the image's own value, which its control shows (`follow`); moving the control
  // ticks it.
  constructor(container, onChange, { keep = false, prefix = "factor" } = {}) {
    this.container = container;
    this.onChange = onChange;
    this.keep = keep;
    this.prefix = prefix;
    this.readers = [];
    this.followers = new Map();
  }

  build(calibration) {
    this.container.replaceChildren();
    this.followers = new Map();
    this.readers = calibration.factors.map((factor, i) => this.row(factor, i));
  }

  // Unticked controls show the values read from the image being edited ({name: value}).
  follow(read) {
    for (const [name, value] of Object.entries(read)) this.followers.get(name)?.(value);
  }

  row(factor, i) {
    const id = `${this.prefix}-${i}`;
    const row = document.createElement("div");
    row.className = "factor";

    const use = Object.assign(document.createElement("input"), { type: "checkbox", checked: !this.keep });
    use.setAttribute("aria-label", `set ${factor.name}`);
    use.title = this.keep
      ? "unticked, the drawing keeps its own value (shown); move the control to change it"
      : "leave unticked to keep this factor at its average";
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = factor.name;

    const discrete = isDiscrete(factor);
    const control = discrete ? this.select(factor) : this.slider(factor);
    control.id = id;
    const output = document.createElement("output");
    output.htmlFor = id;
    output.setAttribute("aria-hidden", "true"); // as for the latent sliders: the control speaks for itself
    const show = () => {
      if (factor.part) output.textContent = classNote(factor, control.value);
      if (discrete) return;
      output.textContent = formatValue(Number(control.value));
      control.setAttribute("aria-valuetext", output.textContent);
    };
    show();
    control.addEventListener("input", () => {
      use.checked ||= this.keep;
      show();
      this.onChange();
    });
    use.addEventListener("change", () => {
      control.disabled = !use.checked && !this.keep;
      this.onChange();
    });
    if (this.keep) {
      this.followers.set(factor.name, (value) => {
        if (use.checked) return;
        // A label read between two (a numbered class read off a continuous dim) shows as the nearest one.
        control.value = String(discrete && typeof value === "number" ? Math.round(value) : value);
        show();
      });
    }
    if (factor.dims.length === 0) {
      // The model does not carry this factor (no latent dim holds information about it): say so.
      use.checked = false;
      use.disabled = control.disabled = true;
      row.classList.add("inactive");
      label.title = "no latent dimension of this model carries this factor";
      use.setAttribute("aria-label", `set ${factor.name} (not carried by this model)`);
      output.textContent = "not carried";
    }
    row.append(use, label, control, output);
    this.container.append(row);
    // /synthesize takes a named value as its name and a numbered one as a number: the digit 7, not "7".
    const named = factor.values.some((v) => typeof v === "string");
    return () => (use.checked ? [factor.name, named ? control.value : Number(control.value)] : undefined);
  }

  select(factor) {
    const select = document.createElement("select");
    for (const value of factor.values) select.append(new Option(String(value), String(value)));
    return select;
  }

  slider(factor) {
    const numbers = factor.values.map(Number);
    const low = Math.min(...numbers);
    const high = Math.max(...numbers);
    return Object.assign(document.createElement("input"), {
      type: "range",
      min: String(low),
      max: String(high),
      step: "any",
      value: String((low + high) / 2),
    });
  }

  get factors() {
    return Object.fromEntries(this.readers.map((read) => read()).filter((entry) => entry !== undefined));
  }
}
