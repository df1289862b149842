// What the panel definitions share: the parameters most endpoints take, and the shaping of rows into series.
import { line } from './charts.js';

export const range = (ctx) => [
  ['start_date', `${ctx.from} 00:00:00`],
  ['end_date', `${ctx.to} 23:59:59`],
];
export const tenant = (ctx) => (ctx.tenant ? [['tenant_id', ctx.tenant]] : []);
export const optional = (name, value) => (value ? [[name, value]] : []);
export const column = (rows, name) => rows.map((r) => r[name]);
export const sum = (values) => values.reduce((a, b) => a + b, 0);
export const groupBy = (rows, key) =>
  rows.reduce((map, r) => map.set(key(r), [...(map.get(key(r)) ?? []), r]), new Map());
export const yAxes = (left, right) => ({
  y: { beginAtZero: true, title: { display: true, text: left } },
  ...(right
    ? {
        y1: {
          beginAtZero: true,
          position: 'right',
          grid: { drawOnChartArea: false },
          title: { display: true, text: right },
        },
      }
    : {}),
});
export const horizontal = (title, extra = {}) => ({
  indexAxis: 'y',
  scales: { x: { beginAtZero: true, title: { display: true, text: title }, ...extra } },
});
// Buckets of a day or longer start at midnight: their labels drop the time.
export const periodLabels = (values) =>
  values.every((v) => String(v).endsWith(' 00:00:00')) ? values.map((v) => v.slice(0, 10)) : values;
export const INTERVAL_WORD = { '1 day': 'day', '1 week': 'week', '1 month': 'month' };

// A series of many keys over periods: the `top` biggest keep their own line, the rest add up to "other".
export function seriesByKey(rows, periodCol, keyCol, valueCol, top) {
  const periods = [...new Set(rows.map((r) => r[periodCol]))].sort();
  const totals = [...groupBy(rows, (r) => r[keyCol])].map(([key, list]) => [key, sum(list.map((r) => r[valueCol]))]);
  totals.sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
  const kept = new Set(totals.slice(0, top).map(([key]) => key));
  const lines = new Map([...kept].map((key) => [key, new Map()]));
  if (totals.length > top) lines.set('other', new Map());
  for (const r of rows) {
    const series = lines.get(kept.has(r[keyCol]) ? r[keyCol] : 'other');
    series.set(r[periodCol], (series.get(r[periodCol]) ?? 0) + r[valueCol]);
  }
  return {
    periods,
    datasets: [...lines].map(([key, values], i) =>
      line(
        key,
        periods.map((p) => values.get(p) ?? 0),
        i,
      ),
    ),
  };
}
