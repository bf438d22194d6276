// The catalog itself: search products by code or name, and look at one product's
// aggregate with the lineage of each part (which run last changed it, when the source
// last confirmed it) and, where the service keeps versions, the product's history.

import { ApiError, AuthNeeded, getJson } from "./api.js";
import { integer, text, timeCell, timeElement } from "./format.js";

const PAGE_SIZE = 20;
const $ = (selector) => document.querySelector(selector);

// The parts of an aggregate that are lists, by the source that fills them.
const LIST_PARTS = [
  ["sales_history", "sales"],
  ["purchase_history", "purchase_history"],
  ["consumed_history", "consumed_materials"],
  ["transport_boxes", "transport_boxes"],
  ["lots", "lots"],
  ["stock_taking", "stock_taking"],
  ["suppliers", "suppliers"],
];

let onAuth = () => {};
let offset = 0;
let total = 0;

function productPath(code) {
  return `api/products/${encodeURIComponent(code)}`;
}

async function search(event) {
  event?.preventDefault();
  const query = $("#product-search").value.trim();
  const params = new URLSearchParams({ limit: PAGE_SIZE, offset });
  if (query) params.set("search", query);
  try {
    const page = await getJson(`api/products?${params}`);
    total = page.total;
    drawList(page);
  } catch (error) {
    failed(error, () => search());
  }
}

function failed(error, retry) {
  if (error instanceof AuthNeeded) onAuth(error, retry);
  else $("#product-message").textContent = error.message;
}

function drawList(page) {
  $("#product-message").textContent =
    page.total === 0
      ? "No product matches."
      : `${integer.format(page.offset + 1)}–${integer.format(page.offset + page.items.length)}` +
        ` of ${integer.format(page.total)}`;
  const rows = page.items.map((product) => {
    const row = document.createElement("tr");
    row.dataset.product = product.product_code;
    const code = document.createElement("td");
    const open = text("button", product.product_code, "link");
    open.type = "button";
    open.dataset.open = product.product_code;
    code.append(open);
    row.append(
      code,
      text("td", product.product_name),
      text("td", product.location),
      text("td", product.stock.erp === null ? null : integer.format(product.stock.erp), "num"),
      text("td", product.stock.eshop === null ? null : integer.format(product.stock.eshop), "num"),
    );
    return row;
  });
  $("#products tbody").replaceChildren(...rows);
  $("#products-previous").disabled = page.offset === 0;
  $("#products-next").disabled = page.offset + page.items.length >= page.total;
}

async function open(code) {
  try {
    const product = await getJson(productPath(code));
    drawProduct(product);
    drawHistory(code);
  } catch (error) {
    failed(error, () => open(code));
  }
}

function drawProduct(product) {
  const panel = $("#product");
  panel.hidden = false;
  panel.dataset.product = product.product_code;
  $("#product-title").textContent = `${product.product_code} · ${product.product_name ?? "no name"}`;
  const facts = [
    ["Location", product.location],
    ["ERP stock", product.stock.erp],
    ["E-shop stock", product.stock.eshop],
    ["In transport", product.stock.transport],
    ["Attributes", Object.keys(product.attributes).length],
    ...LIST_PARTS.map(([part]) => [part.replaceAll("_", " "), product[part].length]),
  ];
  $("#product-facts").replaceChildren(
    ...facts.map(([name, value]) => {
      const item = document.createElement("div");
      item.append(text("dt", name), text("dd", value));
      return item;
    }),
  );
  const lineage = Object.entries(product.lineage).map(([source, part]) => {
    const row = document.createElement("tr");
    row.dataset.source = source;
    row.append(
      text("th", source),
      text("td", part.run_id, "num"),
      timeCell(part.changed_at),
      timeCell(part.refreshed_at),
    );
    return row;
  });
  $("#lineage tbody").replaceChildren(...lineage);
  $("#product-json").textContent = JSON.stringify(product, null, 2);
}

// GET /api/products/{code}/history: per source, the versions where this product changed.
async function drawHistory(code) {
  const list = $("#product-history");
  list.replaceChildren(text("li", "loading history…"));
  let history;
  try {
    history = await getJson(`${productPath(code)}/history`);
  } catch (error) {
    const reason =
      error instanceof ApiError && error.status === 404
        ? "no history kept for this product"
        : error.message;
    list.replaceChildren(text("li", reason, "muted"));
    return;
  }
  const entries = [];
  for (const [source, versions] of Object.entries(history.sources ?? history)) {
    for (const version of Array.isArray(versions) ? versions : []) {
      const item = document.createElement("li");
      item.dataset.source = source;
      item.dataset.run = version.run_id;
      item.append(`${source}, run ${version.run_id}, `);
      const when = version.published_at ?? version.changed_at;
      if (when) item.append(timeElement(when));
      item.append(text("code", JSON.stringify(version.rows)));
      entries.push(item);
    }
  }
  list.replaceChildren(...(entries.length ? entries : [text("li", "no changes kept", "muted")]));
}

export function startProducts(askForToken) {
  onAuth = askForToken;
  $("#product-form").addEventListener("submit", (event) => {
    offset = 0;
    search(event);
  });
  $("#products-previous").addEventListener("click", () => {
    offset = Math.max(0, offset - PAGE_SIZE);
    search();
  });
  $("#products-next").addEventListener("click", () => {
    if (offset + PAGE_SIZE < total) offset += PAGE_SIZE;
    search();
  });
  $("#products tbody").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-open]");
    if (button) open(button.dataset.open);
  });
  $("#product-close").addEventListener("click", () => ($("#product").hidden = true));
}
