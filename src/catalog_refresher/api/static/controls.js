// Operator control from the page (contract section 8): pause and resume a source, a dry
// run and what it would change, the kept versions with a diff view, pin and unpin.
// Every write needs the admin token: a 401/403 asks for it and retries the action.

import { AuthNeeded, getJson, postJson } from "./api.js";
import { integer, text, timeElement } from "./format.js";

const $ = (selector) => document.querySelector(selector);
const DIFF_PAGE = 50;

let hooks = { askForToken: () => {}, poll: () => {}, notice: () => {} };

function sourcePath(source, rest) {
  return `api/sources/${encodeURIComponent(source)}/${rest}`;
}

function button(label, data, title) {
  const node = text("button", label);
  node.type = "button";
  for (const [key, value] of Object.entries(data)) node.dataset[key] = value;
  if (title) node.title = title;
  return node;
}

// The row's buttons beside "Refresh now".
export function controlButtons(source) {
  const paused = Boolean(source.paused);
  const nodes = [
    button(paused ? "Resume" : "Pause", { [paused ? "resume" : "pause"]: source.id }),
    button("Dry run", { dryRun: source.id }, "Fetch, validate and diff; publish nothing"),
    button("Versions", { versions: source.id }),
  ];
  for (const node of nodes) node.disabled = !source.enabled && !paused;
  return nodes;
}

// Marks beside a source's name: paused (with its reason) and pinned (with the run).
export function sourceMarks(source) {
  const marks = [];
  if (source.paused) {
    const mark = text("span", "paused", "mark paused");
    mark.title = source.pause_reason ? `paused: ${source.pause_reason}` : "paused";
    marks.push(mark);
  }
  if (source.pinned) {
    marks.push(text("span", `pinned to run ${source.pinned_run_id}`, "mark pinned"));
  }
  return marks;
}

// An action that may need the token: on 401/403 ask for it, then run the action again.
async function guarded(action, what) {
  try {
    await action();
  } catch (error) {
    if (error instanceof AuthNeeded) hooks.askForToken(error, () => guarded(action, what));
    else hooks.notice(`${what} failed: ${error.message}`, true);
  }
}

function openPanel(title, source, kind) {
  const panel = $("#source-panel");
  panel.hidden = false;
  panel.dataset.source = source;
  panel.dataset.kind = kind;
  $("#source-panel-title").textContent = title;
  const body = $("#source-panel-body");
  body.replaceChildren(text("p", "loading…", "muted"));
  return body;
}

// ---- pause / resume ----------------------------------------------------------------

async function pause(source) {
  await postJson(sourcePath(source, "pause"));
  hooks.notice(`${source} paused: no scheduled runs until resumed; its data stays served.`);
  hooks.poll();
}

async function resume(source) {
  await postJson(sourcePath(source, "resume"));
  hooks.notice(`${source} resumed: back on its schedule.`);
  hooks.poll();
}

// ---- dry run -----------------------------------------------------------------------

function keyList(label, keys, count) {
  const item = document.createElement("div");
  item.className = "keys";
  item.append(text("dt", `${label} (${integer.format(count)})`));
  const shown = keys.length ? keys.join(", ") + (count > keys.length ? ", …" : "") : "none";
  item.append(text("dd", shown));
  return item;
}

function verdictRow(verdict) {
  const row = document.createElement("tr");
  row.dataset.verdict = verdict.passed ? "pass" : "reject";
  row.append(
    text("th", verdict.name),
    text("td", verdict.passed ? "passes" : "rejects", "status"),
    text("td", verdict.detail),
  );
  return row;
}

async function dryRun(source) {
  const body = openPanel(`${source}: dry run`, source, "dry-run");
  let result;
  try {
    result = await postJson(`${sourcePath(source, "refresh")}?dry_run=true`);
  } catch (error) {
    body.replaceChildren(text("p", `Dry run failed: ${error.message}`, "error"));
    if (error instanceof AuthNeeded) throw error;
    return;
  }
  const verdict = result.would_publish
    ? "A run now would publish these changes."
    : "A run now would be rejected: nothing would be published.";
  const summary = text("p", verdict, result.would_publish ? "verdict ok" : "verdict rejected");
  summary.id = "dry-run-verdict";
  const counts = document.createElement("dl");
  counts.id = "dry-run-counts";
  for (const name of ["fetched", "valid", "invalid", "inserted", "updated", "deleted"]) {
    const item = document.createElement("div");
    item.dataset.count = name;
    item.append(text("dt", name), text("dd", integer.format(result[name])));
    counts.append(item);
  }
  const keys = document.createElement("dl");
  keys.className = "key-lists";
  keys.append(
    keyList("inserted", result.first_inserted, result.inserted),
    keyList("updated", result.first_updated, result.updated),
    keyList("deleted", result.first_deleted, result.deleted),
  );
  const verdicts = document.createElement("table");
  verdicts.id = "dry-run-verdicts";
  verdicts.append(document.createElement("tbody"));
  verdicts.tBodies[0].append(verdictRow(result.guard), ...result.validators.map(verdictRow));
  body.replaceChildren(summary, counts, keys, text("h4", "Guard and validators"), verdicts);
  if (result.not_modified) body.append(text("p", "The source answered: not modified.", "muted"));
}

// ---- versions, diff, pin -------------------------------------------------------------

async function versions(source) {
  const body = openPanel(`${source}: versions`, source, "versions");
  const listed = await getJson(sourcePath(source, "versions"));
  drawVersions(body, source, listed);
}

function drawVersions(body, source, listed) {
  const table = document.createElement("table");
  table.id = "versions";
  const head = document.createElement("thead");
  const headings = ["Run", "Published", "Records", "Inserted", "Updated", "Deleted", "", ""];
  const headRow = document.createElement("tr");
  headRow.append(...headings.map((h) => text("th", h || "\u00a0")));
  head.append(headRow);
  const rows = listed.items.map((version) => {
    const row = document.createElement("tr");
    row.dataset.run = version.run_id;
    if (version.served) row.dataset.served = "true";
    const published = document.createElement("td");
    if (version.published_at) published.append(timeElement(version.published_at));
    const served = document.createElement("td");
    if (version.served) served.append(text("span", listed.pinned ? "served (pinned)" : "served", "mark"));
    else served.append(button("Pin", { pin: version.run_id, source }, "Serve this version"));
    const diff = document.createElement("td");
    if (!version.served) diff.append(button("Diff to served", { diff: version.run_id, source }));
    row.append(
      text("td", version.run_id, "num"),
      published,
      text("td", integer.format(version.record_count), "num"),
      text("td", integer.format(version.inserted), "num"),
      text("td", integer.format(version.updated), "num"),
      text("td", integer.format(version.deleted), "num"),
      served,
      diff,
    );
    return row;
  });
  const tbody = document.createElement("tbody");
  tbody.append(...rows);
  table.append(head, tbody);
  const parts = [];
  if (listed.pinned) {
    const note = text("p", `Pinned to run ${listed.served_run_id}: runs publish nothing until unpinned. `);
    note.append(button("Unpin", { unpin: source }, "Serve the newest data again"));
    parts.push(note);
  }
  if (listed.items.length === 0) parts.push(text("p", "No versions kept yet.", "muted"));
  const diffView = document.createElement("div");
  diffView.id = "diff";
  body.replaceChildren(...parts, table, diffView);
}

async function pin(source, run) {
  const listed = await postJson(`${sourcePath(source, "pin")}?run=${encodeURIComponent(run)}`);
  hooks.notice(`${source} pinned to run ${run}: every endpoint serves that version.`);
  drawVersions($("#source-panel-body"), source, listed);
  hooks.poll();
}

async function unpin(source) {
  const listed = await postJson(sourcePath(source, "unpin"));
  hooks.notice(`${source} unpinned: the newest data is served.`);
  drawVersions($("#source-panel-body"), source, listed);
  hooks.poll();
}

function json(value) {
  return value === null || value === undefined ? "–" : JSON.stringify(value);
}

async function diff(source, fromRun, offset = 0) {
  const view = $("#diff");
  const params = new URLSearchParams({ from: fromRun, limit: DIFF_PAGE, offset });
  const found = await getJson(`${sourcePath(source, "diff")}?${params}`);
  const title = text(
    "h4",
    `Run ${found.from} → run ${found.to}: ${found.added} added, ${found.removed} removed,` +
      ` ${found.changed} changed`,
  );
  const table = document.createElement("table");
  table.id = "diff-items";
  const head = document.createElement("tr");
  head.append(...["Key", "Change", `Run ${found.from}`, `Run ${found.to}`].map((h) => text("th", h)));
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  for (const item of found.items) {
    const row = document.createElement("tr");
    row.dataset.key = item.key;
    row.dataset.change = item.change;
    row.append(
      text("td", item.key),
      text("td", item.change, "status"),
      text("td", json(item.old), "value"),
      text("td", json(item.new), "value"),
    );
    tbody.append(row);
  }
  table.append(thead, tbody);
  const pager = document.createElement("p");
  pager.className = "muted";
  pager.append(
    `${integer.format(found.total ? offset + 1 : 0)}–${integer.format(offset + found.items.length)}` +
      ` of ${integer.format(found.total)} `,
  );
  if (offset > 0) {
    pager.append(button("Previous", { diff: fromRun, source, offset: Math.max(0, offset - DIFF_PAGE) }));
  }
  if (offset + found.items.length < found.total) {
    pager.append(button("Next", { diff: fromRun, source, offset: offset + DIFF_PAGE }));
  }
  view.replaceChildren(title, table, pager);
}

// ---- wiring --------------------------------------------------------------------------

function onClick(event) {
  const target = event.target.closest("button");
  if (!target || target.disabled) return;
  const data = target.dataset;
  if (data.pause) guarded(() => pause(data.pause), `Pausing ${data.pause}`);
  else if (data.resume) guarded(() => resume(data.resume), `Resuming ${data.resume}`);
  else if (data.dryRun) guarded(() => dryRun(data.dryRun), `Dry run of ${data.dryRun}`);
  else if (data.versions) guarded(() => versions(data.versions), `Versions of ${data.versions}`);
  else if (data.pin) guarded(() => pin(data.source, data.pin), `Pinning ${data.source}`);
  else if (data.unpin) guarded(() => unpin(data.unpin), `Unpinning ${data.unpin}`);
  else if (data.diff) {
    const offset = Number(data.offset || 0);
    guarded(() => diff(data.source, data.diff, offset), `Diff of ${data.source}`);
  }
}

export function startControls(given) {
  hooks = given;
  $("#sources tbody").addEventListener("click", onClick);
  $("#source-panel").addEventListener("click", onClick);
  $("#source-panel-close").addEventListener("click", () => ($("#source-panel").hidden = true));
}
