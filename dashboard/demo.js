// The demo page: host and ingest token from the URL fragment (#host=...&token=...), or from the form.
import { createTracker } from "./tracker.js";

const state = new URLSearchParams(location.hash.slice(1));
const host = state.get("host") || location.origin;
const token = state.get("token");
const $ = (selector) => document.querySelector(selector);

function connectForm() {
  const form = $("#connect");
  $("#host").value = host;
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams({ host: $("#host").value || location.origin, token: $("#token").value });
    location.hash = next.toString();
    location.reload();
  });
}

function randomId(prefix) {
  return `${prefix}_${Math.random().toString(36).slice(2, 10)}`;
}

function start() {
  const user = localStorage.getItem("usage-analytics-demo-user") || randomId("demo_user");
  localStorage.setItem("usage-analytics-demo-user", user);
  const session = randomId("demo_session");
  let clicked = 0;
  let sent = 0;
  const show = () => {
    $("#clicked").textContent = clicked;
    $("#sent").textContent = sent;
    $("#pending").textContent = tracker.pending();
  };
  const tracker = createTracker({
    host,
    token,
    datasource: "events",
    batchSize: 10,
    flushInterval: 300,
    wait: true, // acknowledged = written: the dashboard's next refresh sees it
    onSent: (answer) => {
      sent += answer.successful_rows ?? 0;
      $("#status").textContent = answer.quarantined_rows ? `${answer.quarantined_rows} rows quarantined` : "";
      show();
    },
    onRetry: ({ status, delay }) => {
      $("#status").textContent = `${status === 429 ? "rate limited" : "server unavailable"}, retrying in ${Math.ceil(delay / 1000)} s`;
    },
    onError: ({ status, error }) => {
      const why = status === 403 ? `The token was refused (403): ${error}` : error;
      $("#status").textContent = why;
      show();
    },
  });
  $("#user").textContent = user;
  $("#session").textContent = session;
  $("#demo").hidden = false;
  for (const button of document.querySelectorAll("button[data-feature]")) {
    button.addEventListener("click", () => {
      const feature = button.dataset.feature;
      tracker.track({
        userId: user,
        eventType: "feature_click",
        sessionId: session,
        eventName: `${feature}_click`,
        page: "/demo",
        feature,
        properties: { source: "demo" },
      });
      clicked += 1;
      show();
    });
  }
}

$("#dashboard-link").href = `index.html#${new URLSearchParams({ host })}`;
if (token) start();
else connectForm();
