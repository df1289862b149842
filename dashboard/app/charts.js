// Charts through Chart.js (its UMD build, loaded by index.html as window.Chart) and the retention heatmap as
// an HTML table. One chart per canvas, updated in place on each refresh.
import { el, panelBody } from './render.js';

const PALETTE = [
  '#2563eb',
  '#dc2626',
  '#16a34a',
  '#d97706',
  '#7c3aed',
  '#0891b2',
  '#db2777',
  '#65a30d',
  '#475569',
  '#ea580c',
];
export const colour = (i) => PALETTE[i % PALETTE.length];

const charts = new WeakMap();

export const chartLibraryLoaded = () => typeof window.Chart === 'function';

function canvasFor(section, key, label, height) {
  const body = panelBody(section);
  let box = body.querySelector(`.chart[data-chart="${key}"]`);
  if (!box) {
    const canvas = el('canvas', { role: 'img', 'aria-label': label });
    box = el('div', { class: 'chart', 'data-chart': key }, canvas);
    body.append(box);
  }
  box.style.height = `${height}px`;
  box.querySelector('canvas').setAttribute('aria-label', label);
  return box.querySelector('canvas');
}

function baseOptions(extra = {}) {
  return {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    interaction: { mode: 'index', intersect: false },
    plugins: { legend: { position: 'bottom', labels: { boxWidth: 12 } } },
    ...extra,
  };
}

// config: {type, labels, datasets, options, height, label}
export function drawChart(section, key, config) {
  const canvas = canvasFor(section, key, config.label, config.height ?? 240);
  if (!chartLibraryLoaded()) {
    canvas.replaceWith(
      el('p', {
        class: 'chart-missing',
        text: 'Chart library missing: run make install (it copies Chart.js into dashboard/vendor/).',
      }),
    );
    return;
  }
  const data = { labels: config.labels, datasets: config.datasets };
  const options = baseOptions(config.options);
  const existing = charts.get(canvas);
  if (existing && existing.config.type === config.type) {
    existing.data = data;
    existing.options = options;
    existing.update('none');
    return;
  }
  existing?.destroy();
  charts.set(canvas, new window.Chart(canvas, { type: config.type, data, options }));
}

export const line = (label, data, i, extra = {}) => ({
  label,
  data,
  borderColor: colour(i),
  backgroundColor: colour(i),
  pointRadius: data.length > 60 ? 0 : 2,
  borderWidth: 2,
  ...extra,
});
export const bar = (label, data, i, extra = {}) => ({ label, data, backgroundColor: colour(i), ...extra });

// retention_rate in [0, 1] as a blue from pale to strong; text stays readable on both ends
function heat(rate) {
  const lightness = 96 - Math.round(Math.max(0, Math.min(1, rate)) * 58);
  return { background: `hsl(217 80% ${lightness}%)`, color: lightness < 60 ? '#fff' : '#111' };
}

// rows: retention_cohorts' (cohort_week, week_number, cohort_size, active_users, retention_rate), one per cell
export function drawHeatmap(section, rows) {
  const body = panelBody(section);
  const weeks = [...new Set(rows.map((r) => r.week_number))].sort((a, b) => a - b);
  const cohorts = [...new Set(rows.map((r) => r.cohort_week))].sort();
  const cell = new Map(rows.map((r) => [`${r.cohort_week}|${r.week_number}`, r]));
  const size = new Map(rows.map((r) => [r.cohort_week, r.cohort_size]));
  const head = el(
    'tr',
    {},
    el('th', { scope: 'col', text: 'cohort (week of)' }),
    el('th', { scope: 'col', text: 'users' }),
    ...weeks.map((w) => el('th', { scope: 'col', text: `week ${w}` })),
  );
  const lines = cohorts.map((cohort) =>
    el(
      'tr',
      {},
      el('th', { scope: 'row', text: cohort }),
      el('td', { text: String(size.get(cohort)) }),
      ...weeks.map((w) => {
        const r = cell.get(`${cohort}|${w}`);
        if (!r) return el('td', { class: 'heat-none', text: '' });
        const td = el('td', {
          class: 'heat',
          title: `${r.active_users} of ${r.cohort_size} users`,
          text: `${(r.retention_rate * 100).toFixed(1)}%`,
        });
        Object.assign(td.style, heat(r.retention_rate));
        return td;
      }),
    ),
  );
  const table = el(
    'table',
    { class: 'heatmap' },
    el('caption', { text: 'Share of each weekly cohort active in the weeks after its first' }),
    el('thead', {}, head),
    el('tbody', {}, ...lines),
  );
  const old = body.querySelector('table.heatmap');
  if (old) old.replaceWith(table);
  else body.prepend(table);
}
