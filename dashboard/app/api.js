// The only way the dashboard talks to a server: Tinybird's pipe API, GET {host}/v0/pipes/<name>.json.
// The same calls work against the embedded server, Tinybird Local and Tinybird Cloud.

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The numbers table shows each value exactly as the JSON wrote it (0.5 stays "0.5", 1.0 stays "1.0"), so rows
// keep the source text of every non-string value beside the parsed one (JSON.parse source text access; where a
// browser lacks it, String(value) is the fallback).
const rawText = new WeakMap();

function parseRows(text) {
  return JSON.parse(text, function keepSource(key, value, context) {
    if (context && typeof context.source === 'string' && typeof value !== 'string' && !Array.isArray(this)) {
      let sources = rawText.get(this);
      if (!sources) rawText.set(this, (sources = new Map()));
      sources.set(key, context.source);
    }
    return value;
  });
}

export function rawValue(row, column) {
  const value = row[column];
  if (typeof value === 'string') return value;
  const source = rawText.get(row)?.get(column);
  return source ?? (typeof value === 'object' ? JSON.stringify(value) : String(value));
}

// The server's one-line error, whatever shape the body has.
async function errorText(response) {
  const body = await response.text();
  try {
    const parsed = JSON.parse(body);
    if (parsed && typeof parsed.error === 'string') return parsed.error;
  } catch {
    // not JSON: the body itself, shortened
  }
  return body.trim().slice(0, 300) || response.statusText || `HTTP ${response.status}`;
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });

// Retry-After in seconds or as an HTTP date; otherwise exponential backoff (1 s, 2 s, 4 s... up to 30 s) with
// jitter, so that many panels retrying at once spread out.
function backoffMs(response, attempt) {
  const header = response.headers.get('Retry-After');
  if (header) {
    const seconds = Number(header);
    if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds, 60) * 1000;
    const at = Date.parse(header);
    if (!Number.isNaN(at)) return Math.min(Math.max(at - Date.now(), 0), 60000);
  }
  const base = Math.min(1000 * 2 ** attempt, 30000);
  return base / 2 + Math.random() * (base / 2);
}

const MAX_RETRIES = 6;

// GET one endpoint. `params` is a URLSearchParams whose order is kept; the token goes in the Authorization
// header, never in the query string. `onRetry(ms)` is told about each 429 before the wait.
export async function queryPipe({ host, token, name, params, signal, onRetry }) {
  const url = `${host.replace(/\/+$/, '')}/v0/pipes/${encodeURIComponent(name)}.json?${params}`;
  for (let attempt = 0; ; attempt += 1) {
    let response;
    try {
      response = await fetch(url, { headers: { Authorization: `Bearer ${token}` }, signal, cache: 'no-store' });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new ApiError(0, `Cannot reach ${host} (${error.message}): is the server running, and does it allow CORS?`);
    }
    if (response.status === 429 && attempt < MAX_RETRIES) {
      const wait = backoffMs(response, attempt);
      await response.body?.cancel();
      onRetry?.(wait);
      await sleep(wait, signal);
      continue;
    }
    if (!response.ok) throw new ApiError(response.status, await errorText(response));
    const body = parseRows(await response.text());
    if (!body || !Array.isArray(body.data) || !Array.isArray(body.meta)) {
      throw new ApiError(response.status, `${name}: the answer has no data/meta`);
    }
    return body;
  }
}

// A Tinybird JWT: three base64url parts whose payload names the pipes it may read (scopes) and the parameters
// it fixes. Not verified here (the server does that): the dashboard only reads which tenant and pipes it means.
function jwtClaims(token) {
  const parts = (token || '').split('.');
  if (parts.length !== 3 || !parts.every((part) => /^[A-Za-z0-9_-]+$/.test(part))) return null;
  try {
    const json = atob(
      parts[1]
        .replace(/-/g, '+')
        .replace(/_/g, '/')
        .padEnd(Math.ceil(parts[1].length / 4) * 4, '='),
    );
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
    return claims && typeof claims === 'object' ? claims : null;
  } catch {
    return null;
  }
}

// What a tenant JWT means to the dashboard: its fixed tenant (scopes[].fixed_params.tenant_id, or a top-level
// fixed_params) and the pipes it may read (null: not a JWT, every pipe).
export function tokenScope(token) {
  const claims = jwtClaims(token);
  if (!claims) return { tenant: null, pipes: null };
  const scopes = Array.isArray(claims.scopes) ? claims.scopes : [];
  const pipes = new Set(scopes.filter((s) => s && s.type === 'PIPES:READ').map((s) => s.resource));
  const fixed = [claims.fixed_params, ...scopes.map((s) => s && s.fixed_params)];
  const tenant = fixed.find((f) => f && typeof f.tenant_id === 'string')?.tenant_id ?? null;
  return { tenant, pipes: pipes.size ? pipes : null };
}
