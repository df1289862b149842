// One panel per endpoint call. Each entry: `tab`, `endpoint`, `title`, `params(ctx)` (the parameters it sends, in
// order), `draw(section, rows, ctx)`, and optionally `tenantScoped`, `collect` (picker options from its rows),
// `prepare(ctx, query)` (a first call that chooses its parameters), `note`, `wide`. ctx: {from, to, tenant,
// feature, device, granularity}; tenant is what the dashboard sends ('' under a tenant JWT, whose fixed tenant_id
// the server applies).
import { addDays } from './state.js';
import { PRODUCT_PANELS } from './product-panels.js';
import { API_PANELS } from './api-panels.js';

export const PANELS = [...PRODUCT_PANELS, ...API_PANELS];

// The newest day with data, found through the endpoints (not the clock) so that old data (the committed
// fixtures) shows by default and new events move the range forward: one call per datasource, each over all time
// (daily_active_users over ten years back from now).
const newestOf = (values) => values.filter(Boolean).sort().at(-1)?.slice(0, 10);
export const PROBES = [
  { endpoint: 'daily_active_users', params: [['days', '3650']], newest: (rows) => newestOf(rows.map((r) => r.date)) },
  {
    endpoint: 'feature_usage_summary',
    params: [['limit', '10000']],
    newest: (rows) => newestOf(rows.map((r) => r.last_usage)),
  },
  { endpoint: 'active_users', params: [['interval', '1 day']], newest: (rows) => newestOf(rows.map((r) => r.period)) },
  {
    endpoint: 'time_series_metrics',
    tenantScoped: true,
    params: [['granularity', 'day']],
    newest: (rows) => newestOf(rows.map((r) => r.period)),
  },
];

export const DEFAULT_DAYS = 30;
export const defaultFrom = (to) => addDays(to, -(DEFAULT_DAYS - 1));
