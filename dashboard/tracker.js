// Browser tracking for Tinybird's Events API: seed 003's `trackEvent`, made safe for a page.
//
//   import { createTracker } from "./tracker.js";
//   const tracker = createTracker({ host: "http://127.0.0.1:7181", token: INGEST_TOKEN });
//   tracker.track({ userId: "user_123", eventType: "page_view", properties: { page: "/pricing" } });
//
// - The token must be an append-only one (the `ingest` token): a page hands whatever it holds to its visitors.
// - Events are batched: one POST of NDJSON per `batchSize` events or per `flushInterval` ms, whichever comes first,
//   one request at a time, so a backing-off tracker does not pile requests onto a busy server.
// - When the page hides or unloads (`visibilitychange` to hidden, `pagehide`), what is queued or waiting to be
//   retried goes at once with `fetch(..., {keepalive: true})`, which outlives the page (`navigator.sendBeacon`,
//   with the token in the URL, where keepalive is missing). Browsers take 64 KiB of keepalive bodies in flight: past
//   that, the rest is retried while the page lives, and lost if it is gone.
// - A 429, a 5xx or a network error is retried after the server's Retry-After, or after an exponential delay with
//   full jitter; any other answer (a 400, a 403 for a wrong token) is final and reported to `onError`.
// No dependency: it runs as an ES module in any current browser.

const KEEPALIVE_BYTES = 60000; // browsers refuse keepalive bodies past 64 KiB in flight

export function createTracker({
  host = globalThis.location?.origin,
  token,
  datasource = "events",
  batchSize = 50,
  flushInterval = 2000,
  wait = false, // ask the Events API to answer once the rows are written (`wait=true`)
  maxRetries = 6,
  retryDelay = 500, // ms, the first exponential step; also the jitter added to a Retry-After
  maxRetryDelay = 30000,
  onSent = () => {}, // ({rows, successful_rows, quarantined_rows, status, transport})
  onRetry = () => {}, // ({status, attempt, delay})
  onError = () => {}, // ({status, error, rows})
} = {}) {
  if (!host || !token) throw new Error("createTracker needs a host and an append-only token");
  const query = `name=${encodeURIComponent(datasource)}${wait ? "&wait=true" : ""}`;
  const url = `${String(host).replace(/\/+$/, "")}/v0/events?${query}`;
  let queue = [];
  let timer = null;
  let chain = Promise.resolve();
  let scheduled = 0;
  let unacknowledged = 0;
  const sleeping = new Set(); // wake-up functions of deliveries waiting to retry

  // A step of the chain takes its batch from the queue when its turn comes, so rows wait in the queue, where a page
  // that hides still finds them; `scheduled` steps will take up to `batchSize` rows each.
  function schedule() {
    scheduled += 1;
    chain = chain.then(() => {
      scheduled -= 1;
      return queue.length ? deliver(queue.splice(0, batchSize), false) : undefined;
    });
  }

  function push(row) {
    queue.push(row);
    unacknowledged += 1;
    if (queue.length >= (scheduled + 1) * batchSize) schedule();
    else if (timer === null) timer = setTimeout(flush, flushInterval);
  }

  function track(event) {
    push(toRow(event));
  }

  // Resolves once the rows queued now are delivered (or given up).
  function flush() {
    clearTimeout(timer);
    timer = null;
    while (scheduled * batchSize < queue.length) schedule();
    return chain;
  }

  // The page is going away (or may be discarded while hidden): send everything now, beside the chain.
  function flushOnHide() {
    clearTimeout(timer);
    timer = null;
    for (const wake of sleeping) wake();
    const rows = queue;
    queue = [];
    for (const batch of byBytes(rows, KEEPALIVE_BYTES)) {
      if (keepaliveSupported()) deliver(batch, true);
      else beacon(batch);
    }
  }

  async function deliver(rows, keepalive) {
    for (let attempt = 0; ; attempt++) {
      const answer = await post(rows, keepalive);
      if (answer.ok) {
        unacknowledged -= rows.length;
        const transport = keepalive ? "keepalive" : "fetch";
        notify(onSent, { rows: rows.length, ...answer.body, status: answer.status, transport });
        return;
      }
      const retriable = answer.status === 0 || answer.status === 429 || answer.status >= 500;
      if (!retriable || attempt >= maxRetries) {
        unacknowledged -= rows.length;
        notify(onError, { status: answer.status, error: answer.body.error ?? `HTTP ${answer.status}`, rows });
        return;
      }
      const delay = backoff(attempt, answer.retryAfter);
      notify(onRetry, { status: answer.status, attempt: attempt + 1, delay });
      keepalive = (await pause(delay)) || keepalive;
    }
  }

  async function post(rows, keepalive) {
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}` },
        body: ndjson(rows),
        keepalive,
      });
      const body = await response.json().catch(() => ({}));
      return { ok: response.ok, status: response.status, retryAfter: response.headers.get("Retry-After"), body };
    } catch (error) {
      return { ok: false, status: 0, retryAfter: null, body: { error: `network error: ${error.message}` } };
    }
  }

  function beacon(rows) {
    const sent = navigator.sendBeacon(`${url}&token=${encodeURIComponent(token)}`, ndjson(rows));
    unacknowledged -= rows.length; // a beacon gets no answer: handed over is all we will know
    if (!sent) notify(onError, { status: 0, error: "the browser refused the beacon", rows });
  }

  function backoff(attempt, retryAfter) {
    const jitter = Math.random() * retryDelay;
    const seconds = retryAfterSeconds(retryAfter);
    if (seconds !== null) return seconds * 1000 + jitter;
    return Math.random() * Math.min(maxRetryDelay, retryDelay * 2 ** attempt);
  }

  // Resolves after `ms`, or at once with true when the page hides (the retry then goes as keepalive).
  function pause(ms) {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(id);
        sleeping.delete(wake);
        resolve(true);
      };
      const id = setTimeout(() => {
        sleeping.delete(wake);
        resolve(false);
      }, ms);
      sleeping.add(wake);
    });
  }

  const onVisibility = () => {
    if (document.visibilityState === "hidden") flushOnHide();
  };
  globalThis.document?.addEventListener("visibilitychange", onVisibility);
  globalThis.addEventListener?.("pagehide", flushOnHide);

  function close() {
    globalThis.document?.removeEventListener("visibilitychange", onVisibility);
    globalThis.removeEventListener?.("pagehide", flushOnHide);
    return flush();
  }

  return { track, push, flush, close, pending: () => unacknowledged };
}

// Seed 003's row: event_id, user_id, event_type, properties (a JSON string) and an ISO timestamp (now, or the
// event's `timestamp`: a Date, epoch milliseconds or an ISO string with its zone). Other keys are the datasource's
// other columns, in camelCase or as named (sessionId -> session_id, feature -> feature); the columns left out take
// their DEFAULT. `push(row)` sends a row of any datasource as it is.
export function toRow({ eventId, userId, eventType, properties, timestamp, ...columns }) {
  const row = {
    event_id: eventId ?? uuid(),
    user_id: userId,
    event_type: eventType,
    properties: JSON.stringify(properties ?? {}),
    timestamp: (timestamp === undefined ? new Date() : new Date(timestamp)).toISOString(),
  };
  for (const [key, value] of Object.entries(columns)) row[key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)] = value;
  return row;
}

// A callback that throws is reported (as an uncaught error) without stopping the tracker's deliveries.
function notify(callback, value) {
  try {
    callback(value);
  } catch (error) {
    setTimeout(() => {
      throw error;
    });
  }
}

function ndjson(rows) {
  return rows.map((row) => JSON.stringify(row)).join("\n");
}

// Splits rows into consecutive batches of at most `limit` bytes of NDJSON each (a longer row goes alone).
function byBytes(rows, limit) {
  const encoder = new TextEncoder();
  const batches = [];
  let batch = [];
  let bytes = 0;
  for (const row of rows) {
    const size = encoder.encode(JSON.stringify(row)).length + 1;
    if (batch.length && bytes + size > limit) {
      batches.push(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(row);
    bytes += size;
  }
  if (batch.length) batches.push(batch);
  return batches;
}

function keepaliveSupported() {
  return typeof fetch === "function" && typeof Request === "function" && "keepalive" in Request.prototype;
}

function retryAfterSeconds(value) {
  if (value === null || value === undefined || value.trim() === "") return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, (date - Date.now()) / 1000);
}

function uuid() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID(); // secure contexts only (https, localhost)
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
