// Talking to the service: the API key header, the service's error messages, and request channels where
// only the latest request counts.

export class ServiceError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "ServiceError";
    this.status = status;
  }
}

let apiKey = "";

export function setApiKey(key) {
  apiKey = key.trim();
}

// The service's errors are JSON with a `detail` that names the field, the expected and the received; a
// proxy in front of it may answer with plain text instead, which is shown as it is, shortened.
async function errorOf(response) {
  const text = await response.text();
  let message = text.slice(0, 300) || response.statusText;
  try {
    const body = JSON.parse(text);
    if (body && body.detail !== undefined) {
      message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    }
  } catch {
    // not JSON: keep the text
  }
  return new ServiceError(response.status, `The service answered ${response.status}: ${message}`);
}

// Paths are relative, so the page keeps working when the service sits under a prefix behind a proxy.
export async function request(path, { json, form, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser writes the multipart boundary itself
  }
  let response;
  try {
    response = await fetch(path, { method: body === undefined ? "GET" : "POST", headers, body, signal });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ServiceError(0, `Could not reach the service (${error.message}).`);
  }
  if (!response.ok) throw await errorOf(response);
  return response.json();
}

// A picture the service serves (a model card's PNG), fetched with the API key an <img src> cannot send.
export async function requestPicture(path) {
  const headers = apiKey ? { Authorization: `Bearer ${apiKey}` } : {};
  const response = await fetch(path, { headers });
  if (!response.ok) throw await errorOf(response);
  return URL.createObjectURL(await response.blob());
}

// One stream of requests where only the newest matters (a slider being dragged): each new one waits
// `delayMs` for the user to settle, then aborts the one still in flight, so requests never pile up and
// a slow old answer can never overwrite a newer one.
export class Latest {
  constructor(delayMs, onError) {
    this.delayMs = delayMs;
    this.onError = onError;
    this.timer = undefined;
    this.controller = undefined;
  }

  // `task(signal)` does the request and applies its result only while `signal` is not aborted.
  schedule(task, delayMs = this.delayMs) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.start(task), delayMs);
  }

  now(task) {
    this.schedule(task, 0);
  }

  cancel() {
    clearTimeout(this.timer);
    this.controller?.abort();
  }

  async start(task) {
    this.controller?.abort();
    const controller = new AbortController();
    this.controller = controller;
    try {
      await task(controller.signal);
    } catch (error) {
      if (!controller.signal.aborted) this.onError(error);
    }
  }
}
