// The API analytics tab (api_logs, tenant_rate_limits): one entry per panel, as panels.js describes. A panel with
// `tenantScoped` filters by tenant_id: the tenant picker applies to it, and a tenant JWT may show it.
import { bucketFor, isDate } from './state.js';
import { bar, colour, drawChart, line } from './charts.js';
import { setTitle } from './render.js';
import { range, tenant, yAxes, horizontal, periodLabels, column } from './panel-kit.js';

export const API_PANELS = [
  {
    tab: 'api',
    endpoint: 'time_series_metrics',
    title: 'Requests, errors and latency',
    wide: true,
    tenantScoped: true,
    params: (ctx) => [
      ['granularity', bucketFor('time_series_metrics', ctx.granularity)],
      ...range(ctx),
      ...tenant(ctx),
    ],
    draw(section, rows, ctx) {
      setTitle(section, `Requests, errors and latency per ${bucketFor('time_series_metrics', ctx.granularity)}`);
      const labels = periodLabels(column(rows, 'period'));
      drawChart(section, 'traffic', {
        type: 'bar',
        height: 200,
        label: 'Requests and errors per period',
        labels,
        datasets: [bar('requests', column(rows, 'request_count'), 0), bar('errors', column(rows, 'error_count'), 1)],
        options: {
          scales: { x: { stacked: false }, y: { beginAtZero: true, title: { display: true, text: 'requests' } } },
        },
      });
      drawChart(section, 'latency', {
        type: 'line',
        height: 200,
        label: 'Mean, p95 and p99 response time per period',
        labels,
        datasets: [
          line('mean ms', column(rows, 'avg_response_time_ms'), 2),
          line('p95 ms', column(rows, 'p95_response_time_ms'), 3),
          line('p99 ms', column(rows, 'p99_response_time_ms'), 1),
        ],
        options: { scales: yAxes('milliseconds') },
      });
    },
  },
  {
    tab: 'api',
    endpoint: 'endpoint_performance',
    title: 'Endpoint performance (p50 / p95 / p99)',
    tenantScoped: true,
    params: (ctx) => [...range(ctx), ...tenant(ctx), ['limit', '20']],
    draw(section, rows) {
      drawChart(section, 'endpoints', {
        type: 'bar',
        height: Math.max(220, rows.length * 30),
        label: 'Response time percentiles per endpoint',
        labels: rows.map((r) => `${r.method} ${r.endpoint}`),
        datasets: [
          bar('p50 ms', column(rows, 'p50_response_time_ms'), 2),
          bar('p95 ms', column(rows, 'p95_response_time_ms'), 3),
          bar('p99 ms', column(rows, 'p99_response_time_ms'), 1),
        ],
        options: horizontal('milliseconds'),
      });
    },
  },
  {
    tab: 'api',
    endpoint: 'error_analysis',
    title: 'Errors by type and status',
    tenantScoped: true,
    params: (ctx) => [...range(ctx), ...tenant(ctx), ['limit', '20']],
    draw(section, rows) {
      drawChart(section, 'errors', {
        type: 'bar',
        height: Math.max(200, rows.length * 30),
        label: 'Errors and affected users per error type and status',
        labels: rows.map((r) => `${r.status_code} ${r.error_type}`),
        datasets: [
          bar('errors', column(rows, 'error_count'), 1),
          bar('affected users', column(rows, 'affected_users'), 8),
        ],
        options: horizontal('count'),
      });
    },
  },
  {
    tab: 'api',
    endpoint: 'rate_limit_usage',
    title: 'Rate-limit headroom',
    tenantScoped: true,
    note:
      "Share of each limit used in the minute, hour and day up to the busiest minute of the range's last day; " +
      '100% is the limit. The chart shows the 15 nearest to a limit.',
    // `at` is the end of the busiest minute of the range's last day (time_series_metrics per minute; the latest
    // of equals), when traffic peaked: the least headroom that day. A day without requests: its end.
    async prepare(ctx, query) {
      const minutes = isDate(ctx.to)
        ? await query('time_series_metrics', [
            ['granularity', 'minute'],
            ['start_date', `${ctx.to} 00:00:00`],
            ['end_date', `${ctx.to} 23:59:59`],
            ...tenant(ctx),
          ])
        : [];
      const busiest = minutes.reduce((best, r) => (!best || r.request_count >= best.request_count ? r : best), null);
      return { at: busiest ? `${busiest.period.slice(0, 16)}:59` : undefined };
    },
    params: (ctx) => [...tenant(ctx), ['at', ctx.at ?? `${ctx.to} 23:59:59`]],
    draw(section, rows) {
      const top = rows.slice(0, 15);
      drawChart(section, 'limits', {
        type: 'bar',
        height: Math.max(200, top.length * 34),
        label: 'Per-minute, per-hour and per-day use of each rate limit, in percent',
        labels: top.map((r) => `${r.tenant_id} ${r.endpoint}`),
        datasets: [
          bar('minute %', column(top, 'minute_usage_pct'), 1),
          bar('hour %', column(top, 'hour_usage_pct'), 3),
          bar('day %', column(top, 'day_usage_pct'), 0),
        ],
        options: horizontal('% of limit', { suggestedMax: 100 }),
      });
    },
  },
  {
    tab: 'api',
    endpoint: 'geographic_distribution',
    title: 'Traffic by region',
    tenantScoped: true,
    params: (ctx) => [...range(ctx), ...tenant(ctx)],
    draw(section, rows) {
      drawChart(section, 'regions', {
        type: 'doughnut',
        label: 'Share of requests per region',
        labels: column(rows, 'region'),
        datasets: [
          { label: 'requests', data: column(rows, 'request_count'), backgroundColor: rows.map((_, i) => colour(i)) },
        ],
        options: { interaction: { mode: 'nearest' }, plugins: { legend: { position: 'right' } } },
      });
    },
  },
  {
    tab: 'api',
    endpoint: 'api_usage_by_tenant',
    title: 'Usage by tenant',
    collect: { tenants: 'tenant_id' },
    note: 'Every tenant in the range (the tenant filter does not apply here).',
    params: (ctx) => [...range(ctx), ['limit', '100']],
    draw(section, rows) {
      drawChart(section, 'tenants', {
        type: 'bar',
        label: 'Requests and errors per tenant',
        labels: column(rows, 'tenant_id'),
        datasets: [bar('requests', column(rows, 'request_count'), 0), bar('errors', column(rows, 'error_count'), 1)],
        options: { scales: yAxes('requests') },
      });
    },
  },
  {
    tab: 'api',
    endpoint: 'usage_metering',
    title: 'Monthly metering (billable requests)',
    tenantScoped: true,
    params: (ctx) => [...range(ctx), ...tenant(ctx)],
    draw(section, rows) {
      const months = [...new Set(column(rows, 'month'))].sort();
      const tenants = [...new Set(column(rows, 'tenant_id'))].sort();
      const cell = new Map(rows.map((r) => [`${r.tenant_id}|${r.month}`, r.billable_requests]));
      drawChart(section, 'metering', {
        type: 'bar',
        label: 'Billable requests per month, stacked by tenant',
        labels: months,
        datasets: tenants.map((t, i) =>
          bar(
            t,
            months.map((m) => cell.get(`${t}|${m}`) ?? 0),
            i,
          ),
        ),
        options: {
          scales: {
            x: { stacked: true },
            y: { stacked: true, beginAtZero: true, title: { display: true, text: 'billable requests' } },
          },
        },
      });
    },
  },
  {
    tab: 'api',
    endpoint: 'user_activity',
    title: 'Busiest users',
    tenantScoped: true,
    params: (ctx) => [...tenant(ctx), ...range(ctx), ['limit', '10']],
    draw(section, rows) {
      drawChart(section, 'users', {
        type: 'bar',
        height: Math.max(200, rows.length * 32),
        label: 'Requests and errors of the busiest users',
        labels: rows.map((r) => `${r.user_id} (${r.tenant_id})`),
        datasets: [bar('requests', column(rows, 'request_count'), 0), bar('errors', column(rows, 'error_count'), 1)],
        options: horizontal('requests'),
      });
    },
  },
];
