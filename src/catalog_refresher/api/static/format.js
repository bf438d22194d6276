// Formatting for people: ages ("2 min ago", "in 30 s") with the full time on hover,
// counts with digit grouping, intervals. Every server string goes into the page through
// textContent or an attribute, never through HTML parsing.

export const localTime = new Intl.DateTimeFormat(undefined, {
  dateStyle: "medium",
  timeStyle: "medium",
});
export const integer = new Intl.NumberFormat();

// An ISO 8601 time with a zone, as the API writes them (contract: ISO 8601 UTC).
const ISO_TIME = /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)/g;

export function text(tag, value, className) {
  const node = document.createElement(tag);
  node.textContent = value === null || value === undefined || value === "" ? "–" : String(value);
  if (className) node.className = className;
  return node;
}

export function utcLabel(date) {
  return `${date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "")} UTC`;
}

// "just now", "45 s ago", "2 min ago", "3 h ago", "2 d ago"; "in 30 s" for the future.
export function age(date, now = new Date()) {
  const seconds = Math.round((now - date) / 1000);
  const span = Math.abs(seconds);
  if (span < 2) return "just now";
  let amount;
  if (span < 60) amount = `${span} s`;
  else if (span < 3600) amount = `${Math.floor(span / 60)} min`;
  else if (span < 86400) amount = `${Math.floor(span / 3600)} h`;
  else amount = `${Math.floor(span / 86400)} d`;
  return seconds >= 0 ? `${amount} ago` : `in ${amount}`;
}

// A <time> reading as an age; the local and the UTC time on hover (UTC to compare with logs).
export function timeElement(iso) {
  const date = new Date(iso);
  const time = document.createElement("time");
  time.dateTime = iso;
  time.textContent = age(date);
  time.title = `${localTime.format(date)} (${utcLabel(date)})`;
  return time;
}

export function timeCell(iso) {
  const cell = document.createElement("td");
  if (iso) cell.append(timeElement(iso));
  else cell.textContent = "–";
  return cell;
}

// A server sentence with ISO times in it ("last refreshed at 2026-...") as a node whose
// times read as ages: the words stay the server's, only the times become <time>.
export function withAges(tag, sentence, className) {
  const node = text(tag, sentence, className);
  if (!sentence) return node;
  node.replaceChildren();
  let last = 0;
  for (const match of sentence.matchAll(ISO_TIME)) {
    // "refreshed at <time>" reads "refreshed 2 min ago" once the time is an age.
    const before = sentence.slice(last, match.index).replace(/ at $/, " ");
    node.append(before, timeElement(match[0]));
    last = match.index + match[0].length;
  }
  node.append(sentence.slice(last));
  return node;
}

export function duration(seconds) {
  if (!seconds) return "off";
  const parts = [];
  for (const [size, unit] of [[86400, "d"], [3600, "h"], [60, "min"], [1, "s"]]) {
    if (seconds >= size) {
      parts.push(`${Math.floor(seconds / size)} ${unit}`);
      seconds %= size;
    }
  }
  return parts.join(" ") || `${seconds} s`;
}
