// A small chart per source, drawn in the page as SVG (no external script): one bar per
// recent run, its height the run's duration, its colour the run's status, and a line
// through the records each run fetched. Oldest run on the left.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 160;
const HEIGHT = 36;

function element(name, attributes) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  return node;
}

function seconds(run) {
  if (!run.started_at || !run.finished_at) return 0;
  return Math.max(0, (new Date(run.finished_at) - new Date(run.started_at)) / 1000);
}

// `runs` newest first, as /api/runs answers; finished runs only.
export function runChart(runs) {
  const finished = runs.filter((run) => run.finished_at).reverse();
  const svg = element("svg", {
    class: "run-chart",
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    width: WIDTH,
    height: HEIGHT,
    role: "img",
  });
  const title = element("title", {});
  svg.append(title);
  if (finished.length === 0) {
    title.textContent = "no finished runs yet";
    return svg;
  }
  const durations = finished.map(seconds);
  const counts = finished.map((run) => run.fetched);
  const longest = Math.max(...durations, 0.001);
  const most = Math.max(...counts, 1);
  const step = WIDTH / finished.length;
  finished.forEach((run, index) => {
    const height = Math.max(1, (durations[index] / longest) * (HEIGHT - 2));
    const bar = element("rect", {
      x: index * step + 0.5,
      y: HEIGHT - height,
      width: Math.max(1, step - 1),
      height,
      class: `bar ${run.status}`,
    });
    const tip = element("title", {});
    tip.textContent =
      `run ${run.id}: ${run.status}, ${durations[index].toFixed(2)} s, ${run.fetched} records`;
    bar.append(tip);
    svg.append(bar);
  });
  const points = counts
    .map((count, index) => `${index * step + step / 2},${HEIGHT - 1 - (count / most) * (HEIGHT - 4)}`)
    .join(" ");
  svg.append(element("polyline", { points, class: "records" }));
  title.textContent =
    `last ${finished.length} runs: longest ${longest.toFixed(2)} s, ` +
    `most records ${most}`;
  svg.dataset.runs = String(finished.length);
  return svg;
}
