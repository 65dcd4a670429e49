// The Status Center's connection to the coordinator: REST calls with the tab's token, and event streams
// followed across drops (a fresh single-use ticket per connection, resumed with ?since= after the last seq
// seen), so the page never polls for what a stream delivers.

export const TOKEN_KEY = "clawbot.token";
/** No request may hang the page: one the network swallowed fails after this, and its caller retries. */
const REQUEST_TIMEOUT_MS = 8000;
/** A dashboard should be back soon after the network: reconnect attempts back off to this at most. */
const MAX_RETRY_DELAY_MS = 5000;

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

/** Bytes (an artifact's content) with the tab's token. */
export async function apiBlob(path) {
  const res = await fetch(path, {
    headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` },
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  if (!res.ok) throw new ApiError(res.status, null);
  return res.blob();
}

/** The API's validation answer as one line a person can act on (`field: problem; …`). */
export function problemOf(err) {
  const issues = err.body?.error?.details?.issues;
  return issues ? issues.map((i) => `${i.path}: ${i.message}`).join("; ") : err.message;
}

/** One event stream, followed across drops. */
class Stream {
  constructor(set, resource, id, onEvent) {
    Object.assign(this, { set, resource, id, onEvent, lastSeq: null, ws: null, closed: false, attempt: 0 });
    /** Settles at the stream's first message (its snapshot, or its replay): from then on nothing it publishes is missed. */
    this.ready = new Promise((resolve) => {
      this.markReady = resolve;
    });
  }

  async open() {
    if (this.closed) return;
    try {
      const t = await api(
        "POST",
        "/api/v1/stream-tickets",
        this.id ? { resource: this.resource, id: this.id } : { resource: this.resource },
      );
      const since = this.lastSeq === null ? "" : `&since=${this.lastSeq}`;
      const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${t.websocket_url}${since}`);
      this.ws = ws;
      // A handshake the network swallowed would never end by itself: give it up (its close retries).
      setTimeout(() => ws.readyState === WebSocket.CONNECTING && ws.close(), REQUEST_TIMEOUT_MS);
      ws.onopen = () => {
        this.attempt = 0;
        this.set.changed();
      };
      ws.onmessage = (e) => {
        const msg = JSON.parse(e.data);
        // The snapshot's seq says where the log stood; events after it move the resume point.
        if (typeof msg.seq === "number" && (!msg.data?.snapshot || this.lastSeq === null)) this.lastSeq = msg.seq;
        this.onEvent(msg);
        this.markReady();
      };
      ws.onclose = () => this.retry();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return this.close(); // the resource is gone
      this.retry();
    }
  }

  retry() {
    this.ws = null;
    this.timer = null;
    this.set.changed();
    if (this.closed) return;
    const delayMs = Math.min(MAX_RETRY_DELAY_MS, 250 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
    this.timer = setTimeout(() => this.open(), delayMs);
  }

  /** The browser says the network is back: try now instead of waiting out the backoff. */
  retryNow() {
    if (this.closed || this.live || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.attempt = 0;
    this.open();
  }

  close() {
    this.closed = true;
    this.ws?.close();
    this.set.changed();
  }

  get live() {
    return this.ws?.readyState === WebSocket.OPEN;
  }
}

/** Every stream the page follows; `onChange(allLive, count)` runs whenever one of them goes up or down. */
export class StreamSet {
  constructor(onChange) {
    this.all = new Set();
    this.onChange = onChange;
    window.addEventListener("online", () => {
      for (const s of this.all) s.retryNow();
    });
  }

  follow(resource, id, onEvent) {
    const s = new Stream(this, resource, id, onEvent);
    this.all.add(s);
    s.open();
    return s;
  }

  changed() {
    for (const s of this.all) if (s.closed) this.all.delete(s);
    this.onChange(
      [...this.all].every((s) => s.live),
      this.all.size,
    );
  }
}
