// Categorical latent parts as pickers: one button per class, each with a thumbnail of the image that class
// makes with the rest of the latent as it stands, the chosen class pressed (aria-pressed). The buttons are made
// once per model and updated in place, so a button keeps keyboard focus while its thumbnails are redrawn.

import { mostProbable, oneHot, oneHotClass } from "./latent.js";

// Arrow keys move along a picker's buttons, as in a toolbar; Enter or Space presses the focused one.
const MOVES = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };

function formatFactorValue(value) {
  return typeof value === "number" && !Number.isInteger(value) ? String(Number(value.toFixed(2))) : String(value);
}

function percent(p) {
  return `${Math.round(100 * p)}%`;
}

// Per class of `part`, the factor values the calibration maps onto it: ["digit 7"], or [] for none.
function calibratedValues(calibration, part) {
  const factor = calibration?.factors.find((f) => f.part === part.name);
  const byClass = Array.from({ length: part.classes }, () => []);
  factor?.classes.forEach((k, i) => byClass[k].push(formatFactorValue(factor.values[i])));
  return { factor: factor?.name ?? null, byClass };
}

export class ClassPickers {
  // `onPick(name, k)` runs when the user picks class k of part `name`; the picker has already marked it.
  constructor(container, onPick) {
    this.container = container;
    this.onPick = onPick;
    this.pickers = new Map();
  }

  // `parts`: the layout's categorical parts ({name, classes}); every part starts at class 0.
  build(parts, calibration) {
    this.pickers = new Map(parts.map((part) => [part.name, this.picker(part, calibration)]));
    this.container.replaceChildren(...[...this.pickers.values()].map((p) => p.fieldset));
    this.container.hidden = parts.length === 0;
  }

  picker(part, calibration) {
    const { factor, byClass } = calibratedValues(calibration, part);
    const fieldset = document.createElement("fieldset");
    fieldset.className = "classes";
    const legend = document.createElement("legend");
    legend.textContent = `${part.name}: ${part.classes} classes${factor ? `, tied to ${factor}` : ""}`;
    const buttons = byClass.map((values, k) => this.button(part.name, k, factor, values));
    const row = document.createElement("div");
    row.className = "class-buttons";
    row.append(...buttons);
    row.addEventListener("keydown", (event) => {
      const at = buttons.indexOf(document.activeElement);
      if (at < 0) return;
      const to =
        event.key === "Home" ? 0 : event.key === "End" ? buttons.length - 1 : at + (MOVES[event.key] ?? NaN);
      if (Number.isNaN(to)) return;
      event.preventDefault(); // the arrows would scroll the page
      buttons[Math.max(0, Math.min(buttons.length - 1, to))].focus();
    });
    const note = document.createElement("p");
    note.className = "note";
    fieldset.append(legend, row, note);
    const picker = { name: part.name, fieldset, buttons, note, probabilities: oneHot(part.classes, 0) };
    this.mark(picker, null);
    return picker;
  }

  button(name, k, factor, values) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.class = String(k);
    // The thumbnail shows what the class looks like; the text names it, so the image needs no alt text.
    const img = Object.assign(document.createElement("img"), { alt: "" });
    const label = Object.assign(document.createElement("span"), { textContent: String(k) });
    const meaning = document.createElement("span");
    meaning.className = "meta";
    meaning.textContent = values.length ? `${factor} ${values.join(", ")}` : "";
    // The name a screen reader says, and tests find the button by: "class 7: digit 7", then its share if shown.
    button.dataset.name = `class ${k}${values.length ? `: ${meaning.textContent}` : ""}`;
    const meter = Object.assign(document.createElement("meter"), { min: 0, max: 1, value: 0, hidden: true });
    meter.setAttribute("aria-hidden", "true"); // the percentage beside it says the same
    const share = document.createElement("span");
    share.className = "share";
    button.append(img, label, meaning, meter, share);
    button.addEventListener("click", () => {
      const picker = this.pickers.get(name);
      picker.probabilities = oneHot(picker.buttons.length, k);
      this.mark(picker, null);
      this.onPick(name, k);
    });
    return button;
  }

  // Mark the part's chosen class; show `shown` probabilities (an encoding's), else those of a mix of classes.
  mark(picker, shown) {
    const chosen = oneHotClass(picker.probabilities);
    const meters = shown ?? (chosen === null ? picker.probabilities : null);
    picker.buttons.forEach((button, k) => {
      button.setAttribute("aria-pressed", String(k === chosen));
      const [meter, share] = [button.querySelector("meter"), button.querySelector(".share")];
      meter.hidden = meters === null;
      meter.value = meters?.[k] ?? 0;
      share.textContent = meters === null ? "" : percent(meters[k]);
      button.setAttribute("aria-label", button.dataset.name + (meters === null ? "" : `, ${share.textContent}`));
    });
    if (meters === null) picker.note.textContent = "";
    else if (shown !== null) {
      const top = mostProbable(shown);
      picker.note.textContent = `The uploaded image: class ${top} at ${percent(shown[top])}.`;
    } else picker.note.textContent = "A mix of classes, weighted as shown.";
  }

  get values() {
    return new Map([...this.pickers].map(([name, picker]) => [name, [...picker.probabilities]]));
  }

  // `parts`: Map(name -> the probabilities to decode); `shown`: Map(name -> probabilities to show), or none.
  set(parts, shown = new Map()) {
    for (const [name, picker] of this.pickers) {
      picker.probabilities = [...parts.get(name)];
      this.mark(picker, shown.get(name) ?? null);
    }
  }

  showThumbnails(name, frames) {
    this.pickers.get(name).buttons.forEach((button, k) => {
      button.querySelector("img").src = frames[k];
    });
  }
}
