// The watch page: polls /api/watch (the numbers the run's shards, plan and live files give, see
// stages/render/watch.py) and shows them. Nothing here counts on its own: every number is the server's.
//
// In: URL parameter `every` (seconds between polls, default 2). Out: the page; `window.cqWatch` holds the
// last snapshot shown (for tests and for a look in the console).
const params = new URLSearchParams(location.search);
const every = Math.max(0.2, Number(params.get("every")) || 2);
const $ = (id) => document.getElementById(id);

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "className") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

const clock = (seconds) => {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  return [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60].map((n) => String(n).padStart(2, "0")).join(":");
};

function thumb(row) {
  const src = row.thumb
    ? `/artifacts/${encodeURIComponent(row.pack)}/${row.thumb.split("/").map(encodeURIComponent).join("/")}`
    : "data:,";
  return element("figure", { className: row.status === "ok" ? "" : "failed", title:
      `pair ${row.pair}: ${row.presetFgId} over ${row.presetBgId} (${row.status}; ${row.reasons.join(", ")})` },
    element("img", { src, alt: `pair ${row.pair}`, loading: "lazy" }),
    element("figcaption", {}, `${row.pair} · ${row.status}`));
}

function showWorkers(snapshot) {
  // Only the workers of runs that are still going: an ended run's workers render nothing any more.
  const cards = [];
  for (const run of snapshot.runs.filter((run) => run.alive)) {
    for (const worker of run.workers) {
      const since = worker.inFlight ? ` for ${((snapshot.nowMs - worker.sinceMs) / 1000).toFixed(0)} s` : "";
      cards.push(element("div", { className: "worker", "data-pid": run.pid, "data-worker": worker.worker },
        element("b", {}, `worker ${worker.worker}`), " ",
        element("span", { className: "dim" }, `pid ${run.pid}`),
        element("div", { className: "pair" }, worker.inFlight
          ? `rendering ${worker.pack} pair ${worker.pair}${since}` : "idle"),
        element("div", { className: "file fg", title: worker.fg || "" }, `fg ${worker.inFlight ? worker.fg : "–"}`),
        element("div", { className: "file bg", title: worker.bg || "" }, `bg ${worker.inFlight ? worker.bg : "–"}`),
        element("div", { className: "thumbs" }, ...worker.lastRows.map(thumb))));
    }
  }
  const last = snapshot.runs[0];
  const ended = last && !last.alive
    ? `no run is sampling now; the last one (pid ${last.pid}) ended at ${new Date(last.updatedAtMs).toLocaleTimeString()}`
    : "no sampling process has written a live file yet";
  $("workers").replaceChildren(...(cards.length ? cards : [element("p", { className: "dim" }, ended)]));
}

// "deaf 3, too-dark 1", each name with what it means (the server's explanation, with the run's thresholds)
function explained(map, explain) {
  const entries = Object.entries(map).sort((a, b) => b[1] - a[1]);
  if (!entries.length) return ["–"];
  return entries.flatMap(([name, count], index) => [index ? ", " : "",
    element("abbr", { title: explain[name] || name }, name), ` ${count}`]);
}

function showPacks(snapshot) {
  const rows = Object.entries(snapshot.packs).map(([pack, view]) => {
    const share = view.target ? Math.min(100, (100 * view.visited) / view.target) : 0;
    return element("tr", { "data-pack": pack },
      element("td", {}, pack, view.problem ? element("div", { className: "error" }, view.problem) : null),
      element("td", { className: "visited" }, String(view.visited)),
      element("td", { className: "target" }, String(view.target)),
      element("td", {}, element("span", { className: "progress" }, element("span", { style: `width:${share}%` })),
        ` ${share.toFixed(0)}%${view.done ? " done" : ""}`),
      element("td", { className: "failures" }, ...explained(view.failures, snapshot.explain)),
      element("td", { className: "flags" }, ...explained(view.flags, snapshot.explain)),
      element("td", {}, `${view.shards}${view.badLines ? ` (${view.badLines} unreadable lines)` : ""}`));
  });
  $("packs").tBodies[0].replaceChildren(...rows);
  const shown = new Set(Object.values(snapshot.packs).flatMap((view) => [...Object.keys(view.failures),
    ...Object.keys(view.flags)]));
  $("legend").replaceChildren(...[...shown].sort().map((name) =>
    element("li", {}, element("b", {}, name), `: ${snapshot.explain[name] || "no explanation known"}`)));
  $("shards-help").textContent = `shards: the files of sampled rows written so far, ${snapshot.shardSize} pairs ` +
    "each; a killed run resumes from them";
  const last = Object.values(snapshot.packs).flatMap((view) => view.lastRows)
    .sort((a, b) => b.tMs - a.tMs).slice(0, 16);
  $("last").replaceChildren(...last.map(thumb));
}

function show(snapshot) {
  $("state").textContent = snapshot.running ? "running" : snapshot.runs.length ? "not running" : "no run yet";
  $("state").className = `badge${snapshot.running ? " running" : ""}`;
  $("renderer").textContent = `renderer ${snapshot.renderer || "not known yet"}`;
  $("workspace").textContent = snapshot.workspace;
  $("updated").textContent = new Date(snapshot.nowMs).toLocaleTimeString();
  $("visited").textContent = `${snapshot.visited}/${snapshot.target}`;
  $("rate").textContent = snapshot.pairsPerMin.toFixed(1);
  $("rate-window").textContent = `pairs/min${snapshot.rateWindow ? ` (${snapshot.rateWindow})` : ""}`;
  $("eta").textContent = snapshot.target && snapshot.visited >= snapshot.target ? "done" : clock(snapshot.etaS);
  $("restarts").textContent = String(snapshot.restarts);
  showWorkers(snapshot);
  showPacks(snapshot);
  window.cqWatch = snapshot;
}

async function poll() {
  try {
    const response = await fetch("/api/watch", { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
    show(body);
    $("error").textContent = "";
  } catch (error) {
    $("error").textContent = `cannot read the run: ${error.message}`;
  }
  setTimeout(poll, every * 1000);
}

poll();
