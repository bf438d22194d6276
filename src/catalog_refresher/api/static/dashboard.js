// The status dashboard: polls the service's own API and draws what it answers.
//
// Every string the server sends goes into the page through textContent or an
// attribute, never through HTML parsing: a source's error can contain anything.
// The admin token lives in sessionStorage only (gone with the tab), is sent in
// the Authorization header only, and is asked for when the API answers 401/403.
// The modules beside it: api.js (calls), format.js (ages, counts), chart.js (the
// per-source run chart), products.js (the catalog view), controls.js (pause, dry run,
// versions, diff, pin).

import { ApiError, AuthNeeded, TOKEN_KEY, call, getJson, problemDetail } from "./api.js";
import { runChart } from "./chart.js";
import { controlButtons, sourceMarks, startControls } from "./controls.js";
import { duration, integer, localTime, text, timeCell, utcLabel, withAges } from "./format.js";
import { startProducts } from "./products.js";

const POLL_KEY = "catalog-refresher.poll-seconds";
const RUNS_SHOWN = 20;
// The per-source charts: this many recent runs, read again at most this often.
const CHART_RUNS = 30;
const CHART_EVERY_MS = 15_000;
// A source whose latest run did not succeed: its row shows that run's error.
const FAILING_STATUSES = new Set(["failed", "timed_out"]);
const HEALTH_STATES = { Healthy: "ok", Degraded: "degraded", Unhealthy: "failing" };

const $ = (selector) => document.querySelector(selector);

function sourceState(source, entry) {
  if (!source.enabled) return "disabled";
  if (FAILING_STATUSES.has(source.last_status) || source.circuit_state === "open") return "failing";
  if (entry && entry.status !== "Healthy") return "degraded";
  return "ok";
}

// ---- drawing -----------------------------------------------------------------

const recentRuns = new Map(); // source id -> {runs, at}: what its chart draws

// Each source's recent runs, read again when older than CHART_EVERY_MS.
async function readRecentRuns(sources) {
  const now = Date.now();
  const due = sources.filter((s) => s.enabled && now - (recentRuns.get(s.id)?.at ?? 0) > CHART_EVERY_MS);
  const pages = await Promise.all(
    due.map((s) => getJson(`api/runs?source=${encodeURIComponent(s.id)}&limit=${CHART_RUNS}`)),
  );
  due.forEach((s, index) => recentRuns.set(s.id, { runs: pages[index].items, at: now }));
}

const refreshing = new Set(); // source ids whose "Refresh now" is on its way

function drawHealth(health) {
  const overall = $("#overall");
  overall.textContent = health.status;
  overall.dataset.state = HEALTH_STATES[health.status] || "unknown";
  const entries = health.entries || {};
  const entry = entries["catalog-refresh"];
  // The memory entry (MemoryLimitMb set) is no source's: say it here when it is not Healthy.
  const memory = entries.memory && entries.memory.status !== "Healthy" ? entries.memory : null;
  const said = [entry, memory].filter(Boolean).map((e) => e.description).join("; ");
  $("#overall-description").replaceChildren(withAges("span", said));
}

function drawSources(sources, health) {
  const entries = health.entries || {};
  const rows = sources.map((source) => {
    const entry = entries[source.id];
    const row = document.createElement("tr");
    row.dataset.source = source.id;
    row.dataset.state = sourceState(source, entry);

    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = source.id;
    name.append(...sourceMarks(source));

    const healthCell = document.createElement("td");
    healthCell.append(text("span", entry ? entry.status : "unknown", "badge"));
    healthCell.append(withAges("div", entry ? entry.description : "", "description"));

    const last = document.createElement("td");
    last.append(text("span", source.last_status || "never run", "status"));
    const error = source.last_error;
    if (error) last.append(text("div", error, "error"));

    const chart = document.createElement("td");
    chart.className = "chart";
    const recent = recentRuns.get(source.id);
    if (recent) chart.append(runChart(recent.runs));

    const action = document.createElement("td");
    const button = text("button", refreshing.has(source.id) ? "Starting…" : "Refresh now");
    button.type = "button";
    button.dataset.refresh = source.id;
    button.disabled = !source.enabled || refreshing.has(source.id);
    if (!source.enabled) button.title = "The source is not configured, or its interval is 0.";
    const buttons = document.createElement("div");
    buttons.className = "actions";
    buttons.append(button, ...controlButtons(source));
    action.append(buttons);

    row.append(
      name,
      healthCell,
      last,
      timeCell(source.last_success_at),
      timeCell(source.last_attempt_at),
      timeCell(source.next_run_at),
      text("td", source.circuit_state.replace("_", "-")),
      text("td", source.consecutive_failures, "num"),
      text("td", integer.format(source.record_count), "num"),
      text("td", duration(source.interval_seconds), "num"),
      chart,
      action,
    );
    return row;
  });
  $("#sources tbody").replaceChildren(...rows);
}

function drawRuns(page) {
  const rows = page.items.map((run) => {
    const row = document.createElement("tr");
    row.dataset.run = run.id;
    row.dataset.source = run.source;
    row.dataset.trigger = run.trigger;
    row.dataset.status = run.status;
    const error = text("td", run.error, run.error ? "error" : "");
    if (run.error) error.title = run.error; // the cell is clipped; the tooltip is not
    row.append(
      text("td", run.id, "num"),
      text("td", run.source),
      text("td", run.trigger),
      text("td", run.status, "status"),
      timeCell(run.started_at),
      timeCell(run.finished_at),
      ...["fetched", "inserted", "updated", "deleted", "invalid"].map((count) =>
        text("td", integer.format(run[count]), "num"),
      ),
      error,
    );
    return row;
  });
  $("#runs tbody").replaceChildren(...rows);
}

function drawCache(cache) {
  for (const field of document.querySelectorAll("#cache [data-field]")) {
    const value = cache[field.dataset.field];
    field.textContent =
      field.dataset.field === "hit_ratio" ? `${(value * 100).toFixed(1)} %` : integer.format(value);
  }
}

function showNotice(message, isError = false) {
  const notice = $("#notice");
  notice.textContent = message;
  notice.classList.toggle("error", isError);
  notice.hidden = false;
}

// ---- the admin token -----------------------------------------------------------

let pendingAction = null; // what to retry once a token is entered

function askForToken(problem, retry) {
  const refused = problem.status === 403;
  if (refused) sessionStorage.removeItem(TOKEN_KEY);
  const form = $("#token-form");
  // While the form is open, the next poll's 401 must not hide that the token was refused.
  if (form.hidden || refused) {
    $("#token-reason").textContent = refused
      ? "The admin token was refused; enter it again."
      : "This needs the service's admin token (Api:AdminToken).";
  }
  // A poll must not displace a refresh the operator asked for.
  if (pendingAction === null || pendingAction === poll) pendingAction = retry;
  if (form.hidden) {
    form.hidden = false;
    $("#token").focus();
  }
}

function tokenEntered(event) {
  event.preventDefault();
  const input = $("#token");
  sessionStorage.setItem(TOKEN_KEY, input.value.trim());
  input.value = "";
  $("#token-form").hidden = true;
  const retry = pendingAction;
  pendingAction = null;
  if (retry && retry !== poll) retry();
  poll();
}

function tokenCancelled() {
  $("#token").value = "";
  $("#token-form").hidden = true;
  pendingAction = null;
}

// ---- actions -------------------------------------------------------------------

async function refreshNow(source) {
  refreshing.add(source);
  $(`button[data-refresh="${CSS.escape(source)}"]`)?.setAttribute("disabled", "");
  try {
    const response = await call(`api/sources/${encodeURIComponent(source)}/refresh`, {
      method: "POST",
    });
    if (!response.ok) {
      showNotice(`Refresh of ${source} refused: ${await problemDetail(response)}`, true);
      return;
    }
    const run = await response.json();
    showNotice(`Refresh of ${source} requested: run ${run.id}.`);
  } catch (error) {
    if (error instanceof AuthNeeded) askForToken(error, () => refreshNow(source));
    else showNotice(`Refresh of ${source} failed: ${error.message}`, true);
  } finally {
    refreshing.delete(source);
    poll();
  }
}

// ---- polling -------------------------------------------------------------------

let timer = null;
let polling = false;
let pollAgain = false;
let lastUpdate = null;

function pollSeconds() {
  return Number($("#poll-seconds").value);
}

function schedule() {
  clearTimeout(timer);
  timer = null;
  // A hidden tab does not poll; it catches up as soon as it is shown again.
  if (pollSeconds() > 0 && !document.hidden) timer = setTimeout(poll, pollSeconds() * 1000);
}

async function poll() {
  if (polling) {
    pollAgain = true;
    return;
  }
  polling = true;
  try {
    const [health, sources, runs, cache] = await Promise.all([
      getJson("health", [503]),
      getJson("api/sources"),
      getJson(`api/runs?limit=${RUNS_SHOWN}`),
      getJson("api/cache"),
    ]);
    await readRecentRuns(sources);
    drawHealth(health);
    drawSources(sources, health);
    drawRuns(runs);
    drawCache(cache);
    lastUpdate = new Date();
    $("#connection").hidden = true;
    const updated = $("#updated");
    updated.textContent = `updated ${localTime.format(lastUpdate)}`;
    updated.title = utcLabel(lastUpdate);
    updated.classList.remove("stale");
  } catch (error) {
    if (error instanceof AuthNeeded) {
      askForToken(error, poll);
    } else {
      const since = lastUpdate ? `; showing data from ${localTime.format(lastUpdate)}` : "";
      const reason = error instanceof ApiError ? error.message : `no answer (${error.message})`;
      const banner = $("#connection");
      banner.textContent = `Could not reach the API: ${reason}${since}.`;
      banner.hidden = false;
      $("#updated").classList.add("stale");
    }
  } finally {
    polling = false;
    if (pollAgain) {
      pollAgain = false;
      poll();
    } else {
      schedule();
    }
  }
}

// ---- wiring --------------------------------------------------------------------

function start() {
  const select = $("#poll-seconds");
  const saved = localStorage.getItem(POLL_KEY);
  if (saved !== null && [...select.options].some((o) => o.value === saved)) select.value = saved;
  select.addEventListener("change", () => {
    localStorage.setItem(POLL_KEY, select.value);
    schedule();
  });
  $("#update-now").addEventListener("click", () => poll());
  // One listener for every row's button: rows are redrawn on each poll.
  $("#sources tbody").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-refresh]");
    if (button && !button.disabled) refreshNow(button.dataset.refresh);
  });
  $("#token-form").addEventListener("submit", tokenEntered);
  $("#token-cancel").addEventListener("click", tokenCancelled);
  document.addEventListener("visibilitychange", () => (document.hidden ? schedule() : poll()));
  startProducts(askForToken);
  startControls({ askForToken, poll, notice: showNotice });
  poll();
}

start();
