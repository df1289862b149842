// The dashboard: reads its state from the URL fragment, builds one panel per endpoint call, and runs refresh
// cycles (every panel settled = one cycle, counted in document.body.dataset.refreshes).
import { ApiError, queryPipe, tokenScope } from './api.js';
import { DEFAULT_DAYS, PANELS, PROBES, defaultFrom } from './panels.js';
import { chartLibraryLoaded } from './charts.js';
import { createPanel, fillSelect, fillTable, settle, setLoading, setMessage, el } from './render.js';
import { GRANULARITIES, isDate, readFragment, writeFragment } from './state.js';

const $ = (selector) => document.querySelector(selector);
const CONCURRENCY = 4;
const DATE_DEBOUNCE_MS = 300;

let state = readFragment();
const scope = tokenScope(state.token);
const known = { tenants: new Set(), features: new Set(), featureIds: new Set(), devices: new Set() };
const sections = new Map(); // panel definition -> its <section>
let current = null; // the running cycle's AbortController
let timer = null;
let shownRange = { from: '', to: '' }; // the range the last cycle used, shown while the next one finds its own

// ---- the global banner: a refused token, then a missing chart library, a rate limit, anything else
const banner = new Map();
function say(kind, text) {
  if (text) banner.set(kind, text);
  else banner.delete(kind);
  const message = $('#message');
  const shown = ['token', 'setup', 'rate', 'other'].map((k) => banner.get(k)).find(Boolean) ?? '';
  message.textContent = shown;
  message.hidden = !shown;
  message.className = banner.has('token') ? 'banner error' : 'banner';
}

// Panels the token can read: every panel for a plain token; for a JWT only the pipes it names, and under a fixed
// tenant only the panels whose endpoint filters by tenant (the others would show every tenant's numbers).
const readable = (def) => !scope.pipes || (scope.pipes.has(def.endpoint) && (!scope.tenant || def.tenantScoped));

function buildPanels() {
  for (const def of PANELS.filter(readable)) {
    if (def.deviceControl) def.controls = deviceControl();
    const section = createPanel(def);
    sections.set(def, section);
    $(`#tab-${def.tab} .grid`).append(section);
  }
  for (const tab of ['product', 'api']) {
    const none = ![...sections.keys()].some((def) => def.tab === tab);
    $(`#tab-${tab} .tab-empty`).hidden = !none;
    $(`button[data-tab="${tab}"]`).classList.toggle('no-panels', none);
  }
  $('#feature-picker').hidden = ![...sections.keys()].some((def) => def.tab === 'product');
  const tabHasPanels = (tab) => [...sections.keys()].some((def) => def.tab === tab);
  if (!tabHasPanels(state.tab) && tabHasPanels(state.tab === 'api' ? 'product' : 'api')) {
    state.tab = state.tab === 'api' ? 'product' : 'api';
  }
}

function deviceControl() {
  const select = el('select', { id: 'device', 'aria-label': 'Device type' });
  fillSelect(select, 'all devices', [], state.device);
  select.addEventListener('change', () => update({ device: select.value }));
  return el('label', { class: 'inline', for: 'device' }, 'device ', select);
}

function showTab(tab) {
  for (const name of ['product', 'api']) {
    $(`#tab-${name}`).hidden = name !== tab;
    const button = $(`button[data-tab="${name}"]`);
    button.setAttribute('aria-selected', String(name === tab));
    button.tabIndex = name === tab ? 0 : -1;
  }
}

// A date input is written only when its value differs: rewriting it would break the typing of its next segment.
function showDate(selector, value) {
  const input = $(selector);
  const wanted = isDate(value) ? value : '';
  if (input.value !== wanted) input.value = wanted;
}

function showControls() {
  showDate('#from', state.from || shownRange.from);
  showDate('#to', state.to || shownRange.to);
  const granularity = $('#granularity');
  if (![...granularity.options].some((o) => o.value === state.granularity)) {
    granularity.append(el('option', { value: state.granularity, text: `${state.granularity} (unknown)` }));
  }
  granularity.value = state.granularity;
  $('#refresh').value = state.refresh;
  refreshOptions();
  showTab(state.tab);
}

function refreshOptions() {
  const sorted = (set) => [...set].sort();
  if (!scope.tenant) fillSelect($('#tenant'), 'all tenants', [['', sorted(known.tenants)]], state.tenant);
  fillSelect(
    $('#feature'),
    'all features',
    [
      ['events, app_events (feature)', sorted(known.features)],
      ['feature_events (feature_id)', sorted(known.featureIds)],
    ],
    state.feature,
  );
  const device = $('#device');
  if (device) fillSelect(device, 'all devices', [['', sorted(known.devices)]], state.device);
}

// A control changed: the fragment says so at once, and the data reloads.
function update(changes) {
  Object.assign(state, changes);
  writeFragment(state);
  showControls();
  refresh();
}

// ---- one refresh cycle
// Every call goes to the page's host with its token.
const ask = (name, params, signal, onRetry) =>
  queryPipe({ host: state.host, token: state.token, name, params: new URLSearchParams(params), signal, onRetry });

async function newestDay(signal) {
  const probes = PROBES.filter(readable);
  const days = await Promise.all(
    probes.map(async (probe) => {
      try {
        return probe.newest((await ask(probe.endpoint, probe.params, signal)).data);
      } catch (error) {
        if (signal.aborted || (error instanceof ApiError && error.status === 403)) throw error;
        return null; // that datasource says nothing; the others still may
      }
    }),
  );
  return days.filter(Boolean).sort().at(-1) ?? null;
}

async function resolveRange(signal) {
  let { from, to } = state;
  if (!to) {
    const newest = await newestDay(signal);
    to = newest ?? new Date().toISOString().slice(0, 10); // no data anywhere: the last days up to today
    $('#range-note').textContent = newest ? `newest data: ${newest}` : 'no data found: up to today';
  } else {
    $('#range-note').textContent = '';
  }
  if (!from) from = isDate(to) ? defaultFrom(to) : to;
  shownRange = { from, to };
  showDate('#from', from);
  showDate('#to', to);
  return { from, to };
}

function collect(def, rows) {
  for (const [set, column] of Object.entries(def.collect ?? {})) {
    for (const row of rows) if (row[column] !== '' && row[column] != null) known[set].add(String(row[column]));
  }
}

async function loadPanel(def, ctx, signal) {
  const section = sections.get(def);
  section.dataset.state = 'loading';
  try {
    // a panel may need a first answer to choose its parameters (rate limits: the moment of the last request)
    if (def.prepare) {
      const query = async (name, pairs) =>
        scope.pipes && !scope.pipes.has(name) ? [] : (await ask(name, pairs, signal)).data;
      ctx = {
        ...ctx,
        ...(await def.prepare(ctx, query).catch((error) => {
          if (signal.aborted || error.status === 403) throw error;
          return {}; // the panel's own call then shows what the server says
        })),
      };
    }
    const params = new URLSearchParams(def.params(ctx));
    setLoading(section, params.toString());
    const body = await ask(def.endpoint, params, signal, (ms) => {
      setMessage(section, `rate limited, retrying in ${Math.ceil(ms / 1000)} s`);
      say('rate', 'The server is rate limiting the dashboard: rate limited, retrying');
    });
    collect(def, body.data);
    if (!body.data.length) return settle(section, 'empty');
    section.querySelector('.panel-body').hidden = false;
    def.draw(section, body.data, ctx);
    fillTable(section, body);
    settle(section, 'ready');
  } catch (error) {
    if (signal.aborted) return;
    announce(error);
    const status = error instanceof ApiError && error.status && error.status !== 400 ? `HTTP ${error.status}: ` : '';
    settle(section, 'error', `${status}${error.message}`);
  }
}

// What a failed call means page-wide: a refused token (403), or no answer at all, goes in the banner as well.
function announce(error) {
  if (!(error instanceof ApiError)) return;
  if (error.status === 403) say('token', `The token was refused (403): ${error.message}`);
  if (error.status === 0) say('other', error.message);
}

async function runAll(defs, work) {
  const queue = [...defs];
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, queue.length) }, async () => {
      while (queue.length) await work(queue.shift());
    }),
  );
}

async function refresh() {
  current?.abort();
  clearTimeout(timer);
  const controller = new AbortController();
  current = controller;
  const { signal } = controller;
  let ctx = null;
  try {
    const { from, to } = await resolveRange(signal);
    ctx = {
      from,
      to,
      tenant: scope.tenant ? '' : state.tenant,
      feature: state.feature,
      device: state.device,
      granularity: state.granularity,
    };
  } catch (error) {
    if (signal.aborted) return;
    announce(error);
    if (!banner.size) say('other', error.message);
    for (const section of sections.values()) settle(section, 'error', $('#message').textContent);
  }
  if (ctx) {
    say('token', '');
    say('other', '');
    await runAll([...sections.keys()], (def) => loadPanel(def, ctx, signal));
    if (signal.aborted) return;
    refreshOptions();
  }
  say('rate', '');
  $('#connect').hidden = !banner.has('token'); // a refused token: the form takes another
  const now = new Date();
  $('#last-refresh').textContent = now.toLocaleTimeString();
  $('#last-refresh').setAttribute('datetime', now.toISOString());
  document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes ?? 0) + 1);
  const seconds = Number(state.refresh);
  if (seconds > 0) timer = setTimeout(refreshWhenVisible, seconds * 1000);
}

// Auto refresh pauses while the page is hidden (a background tab spends no requests) and resumes when it shows.
function refreshWhenVisible() {
  if (!document.hidden) return refresh();
  document.addEventListener('visibilitychange', refreshWhenVisible, { once: true });
}

// ---- start
function connectForm(show) {
  const form = $('#connect');
  form.hidden = !show;
  $('#host').value = state.host;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    writeFragment({
      ...state,
      host: $('#host').value.trim().replace(/\/+$/, '') || location.origin,
      token: $('#token').value.trim(),
    });
    location.reload();
  });
}

function wireControls() {
  // typing a date fires a change per complete value (year 0002, 0020, 0202, 2025): only the last one counts
  const typing = {};
  for (const key of ['from', 'to']) {
    $(`#${key}`).addEventListener('change', (e) => {
      const { value } = e.target;
      clearTimeout(typing[key]);
      typing[key] = setTimeout(() => update({ [key]: value }), DATE_DEBOUNCE_MS);
    });
  }
  $('#tenant').addEventListener('change', (e) => update({ tenant: e.target.value }));
  $('#feature').addEventListener('change', (e) => update({ feature: e.target.value }));
  $('#granularity').addEventListener('change', (e) => update({ granularity: e.target.value }));
  $('#refresh').addEventListener('change', (e) => update({ refresh: e.target.value }));
  const tabs = [...document.querySelectorAll('button[data-tab]')];
  for (const button of tabs) {
    button.addEventListener('click', () => {
      state.tab = button.dataset.tab;
      writeFragment(state);
      showTab(state.tab);
    });
    // the tab list's keys: arrows move to the other tab
    button.addEventListener('keydown', (event) => {
      if (event.key !== 'ArrowLeft' && event.key !== 'ArrowRight') return;
      const next = tabs[(tabs.indexOf(button) + (event.key === 'ArrowRight' ? 1 : tabs.length - 1)) % tabs.length];
      next.focus();
      next.click();
    });
  }
  window.addEventListener('hashchange', () => {
    const next = readFragment();
    if (next.token !== state.token || next.host !== state.host) return location.reload();
    state = next;
    showControls();
    refresh();
  });
}

function start() {
  document.body.dataset.refreshes = '0';
  $('#granularity').replaceChildren(...GRANULARITIES.map((g) => el('option', { value: g, text: g })));
  $('#default-days').textContent = String(DEFAULT_DAYS);
  connectForm(!state.token);
  if (!state.token) {
    $('#dashboard').hidden = true;
    $('#token').focus();
    return;
  }
  if (!chartLibraryLoaded())
    say(
      'setup',
      'Chart library missing: run make install (it copies Chart.js into dashboard/vendor/). ' +
        'The numbers tables still work.',
    );
  if (scope.tenant) {
    $('#tenant-picker').hidden = true;
    $('#tenant').hidden = true;
    $('#tenant-fixed-label').hidden = false;
    $('#tenant-fixed').textContent = scope.tenant;
  }
  $('#server').textContent = state.host;
  buildPanels();
  showControls();
  wireControls();
  refresh();
}

start();
