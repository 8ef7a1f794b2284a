// A model's flat latent vector and the parts its layout (the manifest's `layout`) makes it of:
//   [ continuous codes | categorical part 0 | categorical part 1 | ... | noise ]
// The page holds the continuous codes in sliders, each categorical part as class probabilities in a picker,
// and a GAN's noise in sliders of its own; this module splits and joins them and writes the /decode body.

// A part's probabilities count as one class when they are its one-hot vector up to float32 rounding.
const ONE_HOT_SLACK = 1e-6;

export class LatentLayout {
  constructor(layout) {
    this.continuous = layout.continuous;
    this.noise = layout.noise;
    let start = layout.continuous;
    this.parts = layout.categorical.map((part) => {
      const placed = { name: part.name, classes: part.classes, start };
      start += part.classes;
      return placed;
    });
    this.size = start + layout.noise;
  }

  get hasParts() {
    return this.parts.length > 0;
  }

  // flat (size,) -> { continuous, parts: Map(name -> probabilities), noise }
  split(flat) {
    const parts = new Map(this.parts.map((p) => [p.name, flat.slice(p.start, p.start + p.classes)]));
    return { continuous: flat.slice(0, this.continuous), parts, noise: flat.slice(this.size - this.noise) };
  }

  join({ continuous, parts, noise }) {
    return [...continuous, ...this.parts.flatMap((p) => parts.get(p.name)), ...noise];
  }

  // The /decode body of one latent. A model without parts takes the flat vector, as it always has; one with
  // parts gets them by name, a class index where the part holds one class, so the JSON a user copies reads
  // `"categorical": {"shape": [2]}` rather than a one-hot vector inside a long row of numbers.
  decodeBody(model, { continuous, parts, noise }) {
    if (!this.hasParts) return { model, latents: [[...continuous, ...noise]] };
    const categorical = Object.fromEntries(
      this.parts.map((p) => {
        const probabilities = parts.get(p.name);
        const k = oneHotClass(probabilities);
        return [p.name, [k ?? [...probabilities]]];
      }),
    );
    return { model, latents: [[...continuous, ...noise]], categorical };
  }
}

// The class a probability vector is the one-hot vector of, or null for a mix of classes.
export function oneHotClass(probabilities) {
  const k = mostProbable(probabilities);
  const exact = probabilities.every((p, j) => Math.abs(p - (j === k ? 1 : 0)) <= ONE_HOT_SLACK);
  return exact ? k : null;
}

export function mostProbable(probabilities) {
  return probabilities.reduce((best, p, k) => (p > probabilities[best] ? k : best), 0);
}

export function oneHot(classes, k) {
  return Array.from({ length: classes }, (_, j) => (j === k ? 1 : 0));
}
