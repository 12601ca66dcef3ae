// Packrat's status page: live figures from /api/stats, uploads with progress,
// drag and drop of one or several files. No framework, no build step.
//
// The page is complete without this script (the server renders it and the
// form posts to /); the script only adds to it. The formatting and chart
// rules are those of packrat/frontend/page.py, written again here:
// tests/test_browser.py runs both on the same inputs and compares them.

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
const COLUMN = 10;
const BAR = 8;
const RATIO_HEIGHT = 60;
const TRAFFIC_HEIGHT = 60;
const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";

// -- Formatting (mirrors page.py) ------------------------------------------

export function oneDecimal(x) {
  const tenths = Math.floor(x * 10 + 0.5);
  const whole = Math.floor(tenths / 10);
  const rest = tenths - whole * 10;
  return rest === 0 ? `${whole}` : `${whole}.${rest}`;
}

export function humanBytes(n) {
  let value = n;
  let unit = 0;
  while (
    unit < UNITS.length - 1 &&
    (value >= 1024 || (unit > 0 && Math.floor(value + 0.5) >= 1024))
  ) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.trunc(n)} B`;
  if (value >= 100) return `${Math.floor(value + 0.5)} ${UNITS[unit]}`;
  return `${oneDecimal(value)} ${UNITS[unit]}`;
}

export function percent(fraction) {
  return fraction === null || fraction === undefined ? "—" : `${oneDecimal(fraction * 100)} %`;
}

export function count(n) {
  return n.toLocaleString("en-US");
}

export function duration(seconds) {
  let s = Math.max(0, Math.floor(seconds));
  const days = Math.floor(s / 86400);
  s -= days * 86400;
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const minutes = Math.floor(s / 60);
  s -= minutes * 60;
  const parts = [[days, "d"], [hours, "h"], [minutes, "min"], [s, "s"]];
  while (parts.length > 1 && parts[0][0] === 0) parts.shift();
  return parts
    .slice(0, 2)
    .filter(([value, unit]) => value || unit === "s")
    .map(([value, unit]) => `${value} ${unit}`)
    .join(" ");
}

export function ago(seconds) {
  const s = Math.floor(seconds);
  if (s < 1) return "just now";
  for (const [size, unit] of [[86400, "d"], [3600, "h"], [60, "min"]]) {
    if (s >= size) return `${Math.floor(s / size)} ${unit} ago`;
  }
  return `${s} s ago`;
}

export function sentence(message) {
  const text = message.trim().replace(/\.+$/, "");
  return text.charAt(0).toUpperCase() + text.slice(1) + ".";
}

function plural(n, word) {
  if (n === 1) return `${count(n)} ${word}`;
  return word.endsWith("s") ? `${count(n)} ${word}es` : `${count(n)} ${word}s`;
}

function minutesAgo(index, buckets) {
  const back = buckets - 1 - index;
  return back === 0 ? "this minute" : `${back} min ago`;
}

function round2(x) {
  return Math.floor(x * 100 + 0.5) / 100;
}

export function ratioBars(buckets) {
  const bars = [];
  buckets.forEach((bucket, i) => {
    const hits = bucket.hits;
    const misses = bucket.misses;
    const reads = hits + misses;
    if (reads === 0) return;
    const x = i * COLUMN + (COLUMN - BAR) / 2;
    const hitHeight = round2((RATIO_HEIGHT * hits) / reads);
    const title =
      `${minutesAgo(i, buckets.length)}: ${plural(hits, "hit")}, ` +
      `${plural(misses, "miss")} (${percent(hits / reads)})`;
    if (hits) bars.push({ x, y: round2(RATIO_HEIGHT - hitHeight), height: hitHeight, kind: "hit", title });
    if (misses) bars.push({ x, y: 0, height: round2(RATIO_HEIGHT - hitHeight), kind: "miss", title });
  });
  return bars;
}

export function trafficBars(buckets) {
  let top = 0;
  for (const b of buckets) top = Math.max(top, b.bytes_out, b.bytes_in);
  const bars = [];
  if (top === 0) return [bars, 0];
  const half = TRAFFIC_HEIGHT / 2;
  buckets.forEach((bucket, i) => {
    const sent = bucket.bytes_out;
    const received = bucket.bytes_in;
    if (sent === 0 && received === 0) return;
    const x = i * COLUMN + (COLUMN - BAR) / 2;
    const title =
      `${minutesAgo(i, buckets.length)}: ${humanBytes(sent)} sent, ` +
      `${humanBytes(received)} received`;
    if (sent) {
      const height = Math.max(round2((half * sent) / top), 0.5);
      bars.push({ x, y: round2(half - height), height, kind: "sent", title });
    }
    if (received) {
      const height = Math.max(round2((half * received) / top), 0.5);
      bars.push({ x, y: half, height, kind: "received", title });
    }
  });
  return [bars, top];
}

// -- The figures ------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function setText(id, text) {
  const node = $(id);
  if (node && node.textContent !== text) node.textContent = text;
}

// A figure's tile: <tr id=...><th>label</th><td>value</td></tr>, or a td
// holding .value and .detail.
function setFigure(id, value, detail) {
  const row = $(id);
  if (!row) return;
  const cell = row.cells[1];
  const main = cell.querySelector(".value");
  if (main) {
    main.textContent = value;
    cell.querySelector(".detail").textContent = detail;
  } else if (cell.textContent !== value) {
    cell.textContent = value;
  }
}

function drawBars(svgId, bars) {
  const svg = $(svgId);
  if (!svg) return;
  const group = svg.querySelector(".bars");
  const rects = bars.map((bar) => {
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("class", bar.kind);
    rect.setAttribute("x", bar.x);
    rect.setAttribute("y", bar.y);
    rect.setAttribute("width", BAR);
    rect.setAttribute("height", bar.height);
    const title = document.createElementNS(SVG, "title");
    title.textContent = bar.title;
    rect.append(title);
    return rect;
  });
  group.replaceChildren(...rects);
}

function cell(text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  return td;
}

export function keyPath(key) {
  // As packrat.core.keys.key_path: each segment percent-encoded ("?", "#",
  // "%", spaces and non-ASCII would otherwise change the URL).
  return "/" + key.split("/").map(encodeURIComponent).join("/");
}

function keyLink(key) {
  const a = document.createElement("a");
  a.href = keyPath(key);
  a.textContent = key;
  return a;
}

// As page.py's objectstore_figure.
export function objectstoreFigure(status) {
  const where = status.prefix ? `${status.bucket}/${status.prefix}` : status.bucket;
  const uploader = status.uploader;
  if (uploader === null) return { state: status.state, detail: `${where} · the uploader does not answer` };
  const waiting = uploader.backlog_objects;
  const parts = [
    where,
    waiting ? `${count(waiting)} waiting (${humanBytes(uploader.backlog_bytes)})` : "nothing waiting",
    `${count(uploader.uploaded)} uploaded`,
  ];
  if (uploader.lost_before_upload) parts.push(`${count(uploader.lost_before_upload)} evicted before upload`);
  return { state: status.state, detail: parts.join(" · ") };
}

export function render(stats) {
  const now = stats.started_at + stats.uptime_seconds; // the server's clock
  const buckets = stats.history.buckets;
  const used = stats.max_size ? stats.bytes / stats.max_size : 0;
  setFigure("bytes", `${humanBytes(stats.bytes)} of ${humanBytes(stats.max_size)}`, `${percent(used)} full`);
  const meter = $("fill");
  if (meter) {
    meter.value = Math.min(used, 1);
  }
  setFigure("hit_ratio", percent(stats.hit_ratio));
  setFigure("objects", count(stats.objects));
  setFigure("hits", count(stats.hits));
  setFigure("misses", count(stats.misses));
  setFigure("evictions", count(stats.evictions), humanBytes(stats.evicted_bytes));
  setFigure("commits", count(stats.commits));
  const store = $("objectstore");
  if (store && stats.objectstore) {
    const figure = objectstoreFigure(stats.objectstore);
    store.dataset.state = figure.state;
    setFigure("objectstore", figure.state, figure.detail);
  }
  setText("uptime", duration(stats.uptime_seconds));
  setText("policy", stats.policy);

  let hits = 0;
  let misses = 0;
  let sent = 0;
  let received = 0;
  for (const b of buckets) {
    hits += b.hits;
    misses += b.misses;
    sent += b.bytes_out;
    received += b.bytes_in;
  }
  setText("hour-ratio", percent(hits + misses ? hits / (hits + misses) : null));
  setText("hour-reads", plural(hits + misses, "read"));
  setText("hour-sent", humanBytes(sent));
  setText("hour-received", humanBytes(received));
  drawBars("ratio-chart", ratioBars(buckets));
  const [traffic, top] = trafficBars(buckets);
  drawBars("traffic-chart", traffic);
  setText("traffic-top", `${humanBytes(top)}/min`);

  const recent = $("recent");
  if (recent && stats.recent_uploads) {  // null: this viewer may not list key names
    recent.tBodies[0].replaceChildren(
      ...stats.recent_uploads.map((u) => {
        const tr = document.createElement("tr");
        const key = cell("", "key");
        key.append(keyLink(u.key));
        tr.append(key, cell(u.filename, "name"), cell(humanBytes(u.size), "num"), cell(ago(now - u.stored_at), "num"));
        return tr;
      }),
    );
    $("recent-empty").hidden = stats.recent_uploads.length > 0;
  }
  const processes = $("processes");
  if (processes) {
    processes.tBodies[0].replaceChildren(
      ...stats.processes.map((p) => {
        const coordinator = p.role === "coordinator";
        const state = p.state || "running";
        const badge = document.createElement("span");
        badge.className = `state ${state}`;
        badge.textContent = state;
        const stateCell = cell("");
        stateCell.append(badge);
        const tr = document.createElement("tr");
        tr.append(
          cell(coordinator ? "coordinator" : `front end ${p.number}`),
          cell(String(p.pid), "num"),
          stateCell,
          cell(coordinator ? `up ${duration(now - p.started_at)}` : `heard from ${ago(p.last_seen_seconds)}`),
        );
        return tr;
      }),
    );
  }
}

// -- Refreshing ---------------------------------------------------------------

let timer = 0;

function setLive(state, text) {
  const live = $("live");
  live.dataset.state = state;
  setText("live-text", text);
}

export async function refresh() {
  clearTimeout(timer);
  const hasFigures = Boolean($("figures"));
  let stats = null;
  let problem = "";
  try {
    const reply = await fetch("/api/stats", { headers: { Accept: "application/json" }, cache: "no-store" });
    if (reply.ok) stats = await reply.json();
    else problem = (await errorOf(reply.status, await reply.text())).message;
  } catch {
    problem = "The server did not answer.";
  }
  const clock = new Date().toLocaleTimeString();
  if (stats) {
    $("down").hidden = true;
    if (!hasFigures) {
      // The page was rendered while the coordinator was away: it is back.
      if (!busy()) location.reload();
      else setLive("live", "Coordinator back: reload for the figures");
    } else {
      render(stats);
      document.querySelector("main").classList.remove("stale");
      setLive("live", `Live · updated ${clock}`);
    }
  } else {
    $("down").hidden = false;
    setLive(hasFigures ? "stale" : "down", `${problem.replace(/\.$/, "")} (${clock})`);
    if (hasFigures) document.querySelector("main").classList.add("stale");
  }
  schedule();
}

function schedule() {
  clearTimeout(timer);
  if (!document.hidden) timer = setTimeout(refresh, REFRESH_MS);
}

// -- Uploads ------------------------------------------------------------------

// {file, li, key, progress, status, state: waiting|sending|done|failed|too-large}
const queue = [];
let sending = false;

function busy() {
  return sending || queue.some((item) => item.state === "waiting");
}

// A file's name as a key: the characters a key may not hold (and "/")
// become "_". The class comes from packrat.core.keys, rendered into the form.
export function defaultKey(name, forbidden = $("upload").dataset.keyForbidden) {
  const key = name.replace(new RegExp(`[${forbidden}]`, "gv"), "_").slice(0, $("key").maxLength);
  return key === "" || key === "." || key === ".." ? "file" : key;
}

async function errorOf(status, body) {
  try {
    const error = JSON.parse(body);
    if (error && typeof error.message === "string") {
      return { message: sentence(error.message), code: error.error, status };
    }
  } catch {
    // not the API's JSON (a proxy's page, say)
  }
  return { message: `The server answered HTTP ${status}.`, code: "", status };
}

function addFiles(files) {
  for (const file of files) {
    const li = document.createElement("li");
    li.className = "item";
    const head = document.createElement("div");
    head.className = "head";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = file.name;
    const size = document.createElement("span");
    size.className = "size";
    size.textContent = humanBytes(file.size);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "quiet";
    remove.textContent = "Remove";
    remove.setAttribute("aria-label", `Remove ${file.name}`);
    head.append(name, size, remove);

    const label = document.createElement("label");
    label.textContent = "Key";
    const key = document.createElement("input");
    key.className = "item-key";
    key.required = true;
    key.maxLength = $("key").maxLength;
    key.pattern = $("key").pattern;
    key.title = $("key").title;
    key.autocomplete = "off";
    key.spellcheck = false;
    key.setAttribute("autocapitalize", "off");
    key.value = defaultKey(file.name);
    label.append(key);

    const progress = document.createElement("progress");
    progress.max = 100;
    progress.value = 0;
    progress.hidden = true;
    progress.setAttribute("aria-label", `Upload of ${file.name}`);
    const status = document.createElement("p");
    status.className = "status";
    status.setAttribute("role", "status");
    // A file the server would refuse is not sent: its bytes would cross the
    // network only to be answered 413.
    const largest = Number($("upload").dataset.maxFileSize);
    const tooLarge = file.size > largest;
    if (tooLarge) {
      li.classList.add("failed");
      status.textContent =
        `Larger than the largest file this server accepts (${humanBytes(largest)}): it will not be sent.`;
    }

    li.append(head, ...(tooLarge ? [] : [label]), progress, status);
    const state = tooLarge ? "too-large" : "waiting";
    const item = { file, li, key, label, progress, status, remove, state, xhr: null };
    remove.addEventListener("click", () => {
      if (item.xhr) {
        item.xhr.abort();
        return;
      }
      queue.splice(queue.indexOf(item), 1);
      li.remove();
      updateButton();
    });
    queue.push(item);
    $("queue").append(li);
  }
  updateButton();
}

function updateButton() {
  const waiting = queue.filter((item) => item.state === "waiting").length;
  const button = $("send");
  button.textContent = waiting > 1 ? `Upload ${waiting} files` : "Upload";
  button.disabled = sending;
  setText("queue-hint", sending ? "Uploading…" : queue.length ? "" : "Choose or drop one or several files.");
}

function setProgress(item, loaded, total) {
  const fraction = total ? loaded / total : 1;
  item.progress.value = Math.round(fraction * 100);
  const bytes = Math.min(item.file.size, Math.round(fraction * item.file.size));
  const seconds = (performance.now() - item.started) / 1000;
  const rate = seconds > 0.2 ? ` · ${humanBytes(bytes / seconds)}/s` : "";
  item.status.textContent = `${Math.round(fraction * 100)} % · ${humanBytes(bytes)} of ${humanBytes(item.file.size)}${rate}`;
}

function showStored(item, stored) {
  item.state = "done";
  item.li.classList.add("done");
  item.label.remove();
  item.remove.remove();
  item.status.textContent = stored.evicted
    ? `Stored; ${plural(stored.evicted, "object")} evicted to make room.`
    : "Stored.";
  const details = document.createElement("dl");
  const rows = [
    ["Link", keyLink(stored.key)],
    ["Size", `${humanBytes(stored.size)} (${count(stored.size)} bytes)`],
    ["sha256", stored.sha256],
  ];
  for (const [term, value] of rows) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    if (term === "sha256") {
      const code = document.createElement("code");
      code.className = "digest";
      code.textContent = value;
      dd.append(code);
    } else {
      dd.append(value);
    }
    details.append(dt, dd);
  }
  item.li.append(details);
}

function showFailed(item, text, code = "") {
  item.state = "failed";
  item.li.classList.add("failed");
  item.progress.hidden = true;
  item.status.textContent = text;
  if (code) {
    const small = document.createElement("small");
    small.className = "code";
    small.textContent = code;
    item.status.append(" ", small);
  }
}

function send(item) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    item.xhr = xhr;
    item.state = "sending";
    item.started = performance.now();
    item.key.readOnly = true;
    item.remove.textContent = "Cancel";
    item.remove.setAttribute("aria-label", `Cancel the upload of ${item.file.name}`);
    item.progress.hidden = false;
    setProgress(item, 0, item.file.size);
    const body = new FormData(); // the File itself: the browser streams it from disk
    body.append("key", item.key.value);
    body.append("file", item.file, item.file.name);
    xhr.open("POST", "/");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) setProgress(item, event.loaded, event.total);
    });
    xhr.upload.addEventListener("load", () => {
      setProgress(item, 1, 1);
      item.status.textContent += " · storing…";
    });
    const done = () => {
      item.xhr = null;
      item.key.readOnly = false;
      item.remove.textContent = "Remove";
      item.remove.setAttribute("aria-label", `Remove ${item.file.name}`);
      resolve();
    };
    xhr.addEventListener("load", async () => {
      if (xhr.status === 200) {
        try {
          showStored(item, JSON.parse(xhr.responseText));
        } catch {
          showFailed(item, "The server's answer was not understood.");
        }
      } else {
        const error = await errorOf(xhr.status, xhr.responseText);
        const code = error.code ? `${error.code}, ` : "";
        showFailed(item, `Not stored. ${error.message}`, `(${code}HTTP ${error.status})`);
      }
      done();
    });
    xhr.addEventListener("error", () => {
      showFailed(item, "Not stored. The connection failed before the server answered.");
      done();
    });
    xhr.addEventListener("abort", () => {
      showFailed(item, "Cancelled; nothing was stored.");
      done();
    });
    xhr.send(body);
  });
}

async function sendAll() {
  if (sending) return;
  sending = true;
  updateButton();
  for (const item of queue) {
    if (item.state === "waiting") await send(item);
  }
  sending = false;
  updateButton();
  refresh();
}

function retryable(item) {
  // A failed row can be edited (its key, say) and sent again.
  if (item.state === "failed") {
    item.state = "waiting";
    item.li.classList.remove("failed");
    item.status.textContent = "";
  }
}

function setUpUploads() {
  const form = $("upload");
  const input = $("file");
  const drop = $("drop");
  input.multiple = true;
  input.required = false;
  $("key-field").hidden = true;
  $("key").required = false;
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    queue.forEach(retryable);
    if (!queue.some((item) => item.state === "waiting")) {
      const refused = queue.some((item) => item.state === "too-large");
      setText("queue-hint", refused ? "Nothing this server accepts to send." : "Choose or drop a file first.");
      input.focus();
      return;
    }
    sendAll();
  });
  // Dropped anywhere on the page, files join the queue (instead of the
  // browser leaving the page to show them).
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    depth += 1;
    drop.classList.add("over");
  });
  document.addEventListener("dragleave", () => {
    depth = Math.max(0, depth - 1);
    if (depth === 0) drop.classList.remove("over");
  });
  document.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    drop.classList.remove("over");
    addFiles(event.dataTransfer.files);
  });
  updateButton();
}

// -- Start ------------------------------------------------------------------

document.documentElement.classList.add("js");
setUpUploads();
document.addEventListener("visibilitychange", () => {
  if (document.hidden) clearTimeout(timer);
  else refresh();
});
schedule();
