// The product analytics tab (events, feature_events, app_events): one entry per panel, as panels.js describes.
import { bucketFor, daysBetween, isDate } from './state.js';
import { bar, drawChart, drawHeatmap, line } from './charts.js';
import { setTitle } from './render.js';
import {
  range,
  optional,
  sum,
  groupBy,
  yAxes,
  horizontal,
  periodLabels,
  INTERVAL_WORD,
  seriesByKey,
  column,
} from './panel-kit.js';

export const PRODUCT_PANELS = [
  {
    tab: 'product',
    endpoint: 'daily_active_users',
    title: 'Daily active users',
    params: (ctx) => [
      ...(isDate(ctx.from) && isDate(ctx.to) ? [['days', String(daysBetween(ctx.from, ctx.to) + 1)]] : []),
      ['end_date', `${ctx.to} 23:59:59`],
    ],
    draw(section, rows) {
      const ordered = [...rows].reverse();
      drawChart(section, 'dau', {
        type: 'line',
        label: 'Daily active users, oldest to newest',
        labels: column(ordered, 'date'),
        datasets: [
          line('active users', column(ordered, 'active_users'), 0, { fill: true, backgroundColor: '#2563eb22' }),
        ],
        options: { scales: yAxes('users') },
      });
    },
  },
  {
    tab: 'product',
    endpoint: 'active_users',
    title: 'Active users',
    params: (ctx) => [...range(ctx), ['interval', bucketFor('active_users', ctx.granularity)]],
    draw(section, rows, ctx) {
      const word = INTERVAL_WORD[bucketFor('active_users', ctx.granularity)] ?? ctx.granularity;
      setTitle(section, `Active app users per ${word}`);
      drawChart(section, 'active', {
        type: 'bar',
        label: `Distinct app users per ${word}`,
        labels: column(rows, 'period'),
        datasets: [bar('active users', column(rows, 'active_users'), 2)],
        options: { scales: yAxes('users') },
      });
    },
  },
  {
    tab: 'product',
    endpoint: 'retention_cohorts',
    title: 'Weekly retention cohorts',
    wide: true,
    note:
      'Each row is the users whose first event in the range fell in that week; ' +
      'cells are the share active N weeks later.',
    params: (ctx) => range(ctx),
    draw(section, rows) {
      drawHeatmap(section, rows);
      const byWeek = [...groupBy(rows, (r) => r.week_number)].sort((a, b) => a[0] - b[0]);
      drawChart(section, 'retention', {
        type: 'line',
        height: 160,
        label: 'Mean retention rate by week number',
        labels: byWeek.map(([w]) => `week ${w}`),
        datasets: [
          line(
            'mean retention rate',
            byWeek.map(([, list]) => sum(column(list, 'retention_rate')) / list.length),
            4,
          ),
        ],
        options: { scales: { y: { min: 0, max: 1, title: { display: true, text: 'retention rate' } } } },
      });
    },
  },
  {
    tab: 'product',
    endpoint: 'feature_usage',
    title: 'Feature usage (events)',
    collect: { features: 'feature' },
    params: (ctx) => [...range(ctx), ...optional('feature', ctx.feature)],
    draw(section, rows) {
      drawChart(section, 'features', {
        type: 'bar',
        height: Math.max(200, rows.length * 26),
        label: 'Events and unique users per feature',
        labels: column(rows, 'feature'),
        datasets: [
          bar('usage count', column(rows, 'usage_count'), 0),
          bar('unique users', column(rows, 'unique_users'), 5),
        ],
        options: horizontal('events / users'),
      });
    },
  },
  {
    tab: 'product',
    endpoint: 'feature_usage_summary',
    title: 'Feature usage by product version (feature_events)',
    collect: { featureIds: 'feature_id' },
    params: (ctx) => [...range(ctx), ...optional('feature_id', ctx.feature)],
    draw(section, rows) {
      const features = [...new Set(column(rows, 'feature_id'))];
      const versions = [...new Set(column(rows, 'product_version'))].sort();
      const cell = new Map(rows.map((r) => [`${r.feature_id}|${r.product_version}`, r.usage_count]));
      drawChart(section, 'summary', {
        type: 'bar',
        height: Math.max(200, features.length * 26),
        label: 'Usage per feature, stacked by product version',
        labels: features,
        datasets: versions.map((v, i) =>
          bar(
            v,
            features.map((f) => cell.get(`${f}|${v}`) ?? 0),
            i,
          ),
        ),
        options: {
          indexAxis: 'y',
          scales: {
            x: { stacked: true, beginAtZero: true, title: { display: true, text: 'usage count' } },
            y: { stacked: true },
          },
        },
      });
    },
  },
  {
    tab: 'product',
    endpoint: 'feature_usage_timeline',
    title: 'Feature usage timeline (feature_events)',
    wide: true,
    params: (ctx) => [
      ['granularity', bucketFor('feature_usage_timeline', ctx.granularity)],
      ...range(ctx),
      ...optional('feature_id', ctx.feature),
    ],
    draw(section, rows, ctx) {
      const g = bucketFor('feature_usage_timeline', ctx.granularity);
      setTitle(section, `Feature usage per ${g} (feature_events)`);
      const { periods, datasets } = seriesByKey(rows, 'period', 'feature_id', 'usage_count', 8);
      drawChart(section, 'timeline', {
        type: 'line',
        label: `Usage per ${g}, the 8 most used features and the rest`,
        labels: periodLabels(periods),
        datasets,
        options: { scales: yAxes('usage count') },
      });
    },
  },
  {
    tab: 'product',
    endpoint: 'session_insights',
    title: 'Sessions by device (newest 100)',
    collect: { devices: 'device_type' },
    params: (ctx) => range(ctx),
    draw(section, rows) {
      const devices = [...groupBy(rows, (r) => r.device_type)].sort((a, b) => b[1].length - a[1].length);
      const mean = (list, col) => Math.round((sum(list.map((r) => r[col])) / list.length) * 10) / 10;
      drawChart(section, 'sessions', {
        type: 'bar',
        label: 'Sessions, mean duration and mean events per device',
        labels: devices.map(([d]) => d),
        datasets: [
          bar(
            'sessions',
            devices.map(([, l]) => l.length),
            8,
          ),
          bar(
            'mean duration (s)',
            devices.map(([, l]) => mean(l, 'session_duration_seconds')),
            0,
            { yAxisID: 'y1' },
          ),
          bar(
            'mean events',
            devices.map(([, l]) => mean(l, 'event_count')),
            3,
          ),
        ],
        options: { scales: yAxes('sessions / events', 'seconds') },
      });
    },
  },
  {
    tab: 'product',
    endpoint: 'app_feature_usage',
    title: 'App feature usage by device (app_events)',
    collect: { features: 'feature' },
    deviceControl: true,
    params: (ctx) => [...range(ctx), ...optional('feature', ctx.feature), ...optional('device_type', ctx.device)],
    draw(section, rows) {
      drawChart(section, 'app-features', {
        type: 'bar',
        height: Math.max(200, rows.length * 36),
        label: 'App feature usage',
        labels: column(rows, 'feature'),
        datasets: [
          bar('usage count', column(rows, 'usage_count'), 2),
          bar('unique users', column(rows, 'unique_users'), 5),
          bar('unique sessions', column(rows, 'unique_sessions'), 3),
        ],
        options: horizontal('count'),
      });
    },
  },
];
