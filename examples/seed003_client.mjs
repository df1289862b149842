// Seed 003's tracking client and query functions, as close to the seed's text as plain JavaScript runs
// (Node 18+, its built-in fetch). The seed calls its per-user pipe `user_activity`; in this project that name
// belongs to the API analytics of seed 004, and seed 003's pipe is `user_event_activity` (docs/ENDPOINTS.md).
//
//   TB_HOST=http://127.0.0.1:7181 TB_TOKEN=<a token that may append to events and read both pipes> \
//     node examples/seed003_client.mjs
const TB_HOST = process.env.TB_HOST ?? "http://127.0.0.1:7181";
const TINYBIRD_URL = `${TB_HOST}/v0/events`;
const TINYBIRD_TOKEN = process.env.TB_TOKEN;

async function trackEvent(event) {
  const res = await fetch(`${TINYBIRD_URL}?name=events&wait=true`, {
    method: "POST",
    headers: { Authorization: `Bearer ${TINYBIRD_TOKEN}` },
    body: JSON.stringify({
      event_id: crypto.randomUUID(),
      user_id: event.userId,
      event_type: event.eventType,
      properties: JSON.stringify(event.properties || {}),
      timestamp: new Date().toISOString(),
    }),
  });
  return res.json();
}

async function getDailyActiveUsers() {
  const res = await fetch(`${TB_HOST}/v0/pipes/daily_active_users.json`, {
    headers: { Authorization: `Bearer ${TINYBIRD_TOKEN}` },
  });
  const data = await res.json();
  return data.data;
}

async function getUserActivity(userId, days = 7) {
  const res = await fetch(`${TB_HOST}/v0/pipes/user_event_activity.json?user_id=${userId}&days=${days}`, {
    headers: { Authorization: `Bearer ${TINYBIRD_TOKEN}` },
  });
  return (await res.json()).data;
}

// Usage, as in the seed
const tracked = [
  await trackEvent({ userId: "user_123", eventType: "page_view", properties: { page: "/pricing" } }),
  await trackEvent({ userId: "user_123", eventType: "button_click", properties: { button: "signup" } }),
];
console.log(JSON.stringify({ tracked, daily: await getDailyActiveUsers(), activity: await getUserActivity("user_123") }));
