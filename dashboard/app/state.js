// The dashboard's state lives in the URL fragment, so a view can be shared (and a token never reaches a server
// log through a query string): #host=..&token=..&tab=..&from=..&to=..&tenant=..&feature=..&granularity=..&refresh=..

const KEYS = ['host', 'token', 'tab', 'from', 'to', 'tenant', 'feature', 'device', 'granularity', 'refresh'];
const TABS = ['product', 'api'];
export const GRANULARITIES = ['minute', 'hour', 'day', 'week', 'month'];
const REFRESH_SECONDS = ['0', '1', '5', '10', '30'];

const DEFAULTS = { tab: 'product', granularity: 'day', refresh: '0', tenant: '', feature: '', device: '' };

// Values are kept as written: a date or granularity the server rejects reaches it, and the panel shows the
// server's 400 message rather than the dashboard guessing what was meant.
export function readFragment(hash = location.hash) {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  const state = { ...DEFAULTS, host: location.origin, token: '', from: '', to: '' };
  for (const key of KEYS) {
    const value = params.get(key);
    if (value !== null && value !== '') state[key] = value.trim();
  }
  if (!TABS.includes(state.tab)) state.tab = DEFAULTS.tab;
  if (!REFRESH_SECONDS.includes(state.refresh)) state.refresh = DEFAULTS.refresh;
  state.host = state.host.replace(/\/+$/, '');
  return state;
}

// Only what differs from the defaults is written, in KEYS order; from/to only once chosen, so a view without
// them keeps following the newest data.
export function writeFragment(state) {
  const params = new URLSearchParams();
  for (const key of KEYS) {
    const value = state[key];
    if (value === undefined || value === '' || value === DEFAULTS[key]) continue;
    if (key === 'host' && value === location.origin) continue;
    params.set(key, value);
  }
  const hash = `#${params}`;
  if (hash !== location.hash) history.replaceState(null, '', hash === '#' ? location.pathname + location.search : hash);
}

// a real calendar day written YYYY-MM-DD (2025-13-45 is not one)
export function isDate(text) {
  const time = /^\d{4}-\d{2}-\d{2}$/.test(text) ? Date.parse(`${text}T00:00:00Z`) : NaN;
  return !Number.isNaN(time) && new Date(time).toISOString().startsWith(text);
}

export function addDays(date, days) {
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + days);
  return d.toISOString().slice(0, 10);
}

export function daysBetween(from, to) {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / 86400000);
}

// Each time-series endpoint takes its own set of buckets: the picker's value, or the nearest one it has.
const NEAREST = {
  time_series_metrics: { minute: 'minute', hour: 'hour', day: 'day', week: 'day', month: 'day' },
  feature_usage_timeline: { minute: 'hour', hour: 'hour', day: 'day', week: 'week', month: 'month' },
  active_users: { minute: '1 day', hour: '1 day', day: '1 day', week: '1 week', month: '1 month' },
};

export function bucketFor(endpoint, granularity) {
  return NEAREST[endpoint][granularity] ?? granularity;
}
