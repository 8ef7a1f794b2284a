// The drawing pad: draw a digit (mouse, finger or pen, through pointer events) and the model reads it as you
// draw; the knobs redraw it in your hand. Every request is one /edit: the drawing as the base image, the
// ticked knobs as the factors to change. What the model reads (its class and every calibrated factor) is
// shown beside the pad, and the knobs left unticked follow it.

import { formatValue } from "./sliders.js";

// Strokes as thick, for the pad's size, as the digits' own at full scale (about 3 px of 64).
const STROKE_FRACTION = 0.055;
const INK = "#fff";
const PAPER = "#000";

function percent(p) {
  return `${Math.round(100 * p)}%`;
}

// "digit 3 (97%)": the class a part reads most probable, by the value the calibration ties to it.
function classReading(calibration, name, probabilities) {
  const top = probabilities.indexOf(Math.max(...probabilities));
  const factor = calibration.factors.find((f) => f.part === name);
  const at = factor ? factor.classes.indexOf(top) : -1;
  const label = at >= 0 ? `${factor.name} ${factor.values[at]}` : `${name} class ${top}`;
  return `${label} (${percent(probabilities[top])})`;
}

export class DrawingPad {
  // `send(form, signal)` sends one /edit and returns its answer; `channel` (a Latest) runs the requests, so
  // that only the newest counts; `knobs` are FactorControls that keep the drawing's values while unticked;
  // `onLatent(latent)` hands the redrawn latent to the explorer's sliders.
  constructor({ canvas, clear, redrawn, reading, knobs, use, channel, send, onLatent }) {
    Object.assign(this, { canvas, redrawn, reading, knobs, use, channel, send });
    this.context = canvas.getContext("2d");
    this.model = null;
    this.drawn = false;
    this.latent = null;
    this.last = null;
    this.clear();
    canvas.addEventListener("pointerdown", (event) => this.down(event));
    canvas.addEventListener("pointermove", (event) => this.move(event));
    for (const end of ["pointerup", "pointercancel"]) canvas.addEventListener(end, (event) => this.up(event));
    clear.addEventListener("click", () => this.clear());
    use.addEventListener("click", () => {
      if (this.latent) onLatent(this.latent);
    });
  }

  // A new model: its calibration names the knobs. The drawing stays, and is read by the new model.
  show(model) {
    this.model = model;
    this.knobs.build(model.calibration);
    if (this.drawn) this.channel.now((signal) => this.edit(signal));
  }

  clear() {
    this.context.fillStyle = PAPER;
    this.context.fillRect(0, 0, this.canvas.width, this.canvas.height);
    this.drawn = false;
    this.latent = null;
    this.use.disabled = true;
    this.redrawn.removeAttribute("src");
    this.reading.textContent = "Draw here: the model reads your drawing as you go.";
    this.channel?.cancel();
  }

  // The knobs changed: redraw the drawing with them.
  knobsChanged() {
    if (this.drawn) this.channel.schedule((signal) => this.edit(signal));
  }

  point(event) {
    const box = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * this.canvas.width) / box.width,
      ((event.clientY - box.top) * this.canvas.height) / box.height,
    ];
  }

  down(event) {
    if (event.button !== 0) return;
    event.preventDefault();
    this.canvas.setPointerCapture(event.pointerId);
    this.last = this.point(event);
    this.stroke([this.last]);
  }

  move(event) {
    if (this.last === null) return;
    // A pen or a finger moves faster than frames come: the coalesced events hold every sample in between.
    const samples = event.getCoalescedEvents?.() ?? [];
    this.stroke((samples.length ? samples : [event]).map((e) => this.point(e)));
    this.channel.schedule((signal) => this.edit(signal));
  }

  up(event) {
    if (this.last === null) return;
    this.last = null;
    if (this.canvas.hasPointerCapture(event.pointerId)) this.canvas.releasePointerCapture(event.pointerId);
    this.channel.now((signal) => this.edit(signal));
  }

  stroke(points) {
    const c = this.context;
    c.strokeStyle = INK;
    c.fillStyle = INK;
    c.lineWidth = STROKE_FRACTION * this.canvas.width;
    c.lineCap = "round";
    c.lineJoin = "round";
    c.beginPath();
    c.moveTo(...this.last);
    for (const p of points) c.lineTo(...p);
    if (points.length === 1 && points[0] === this.last) c.lineTo(this.last[0] + 0.01, this.last[1]); // a dot
    c.stroke();
    this.last = points[points.length - 1];
    this.drawn = true;
  }

  picture() {
    return new Promise((resolve) => this.canvas.toBlob(resolve, "image/png"));
  }

  async edit(signal) {
    const form = new FormData();
    form.append("images", await this.picture(), "drawing.png");
    form.append("model", this.model.name);
    form.append("resize", "true"); // the service shrinks the pad to the model's size, as it does any upload
    form.append("factors", JSON.stringify(this.knobs.factors));
    const body = await this.send(form, signal);
    if (signal.aborted) return;
    this.redrawn.src = `data:image/png;base64,${body.images[0]}`;
    this.latent = body.latents[0];
    this.use.disabled = false;
    this.showReading(body.read[0], body.probabilities);
  }

  showReading(read, probabilities) {
    const calibration = this.model.calibration;
    const parts = Object.entries(probabilities ?? {}).map(([name, rows]) => classReading(calibration, name, rows[0]));
    const onParts = new Set(calibration.factors.filter((f) => f.part).map((f) => f.name));
    const factors = Object.entries(read)
      .filter(([name]) => !onParts.has(name))
      .map(([name, value]) => `${name} ${typeof value === "number" ? formatValue(value) : value}`);
    this.reading.textContent = `The model reads ${[...parts, ...factors].join(", ")}.`;
    this.knobs.follow(read);
  }
}
