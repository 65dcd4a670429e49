// Status Center: the fleet, jobs, deployments and projects, live. No framework: the page loads each list
// once over REST, then follows the event streams (the fleet stream, and each running job's stream), which
// resume with ?since= after a drop, so it never polls for what a stream delivers. The API token stays in
// sessionStorage; streams open with single-use tickets, never with the token in a URL.

const TOKEN_KEY = "clawbot.token";
const DISMISSED_KEY = "clawbot.dismissed";
const STAGES = [
  "ssh_key_generated",
  "openrouter_key_created",
  "plan_found",
  "vps_ordered",
  "vps_delivered",
  "vps_ip_acquired",
  "vps_rebuilt",
  "ssh_ready",
  "setup_script_launched",
  "setup_complete",
];
const FINAL_JOB = new Set(["completed", "failed", "cancelled"]);
/** Job streams followed at once (the most recent running jobs). */
const MAX_JOB_STREAMS = 10;
/** A dashboard should be back soon after the network: reconnect attempts back off to this at most. */
const MAX_RETRY_DELAY_MS = 5000;

const $ = (id) => document.getElementById(id);
const state = { admin: false, bots: new Map(), jobs: new Map(), deployments: new Map(), projects: new Map(), queue: [] };
const dismissed = new Set(JSON.parse(sessionStorage.getItem(DISMISSED_KEY) ?? "[]"));

// ------------------------------------------------------------------ API

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message ?? `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** No request may hang the page: one the network swallowed fails after this, and its caller retries. */
const REQUEST_TIMEOUT_MS = 8000;

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY)}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new ApiError(res.status, json);
  return json;
}

// ------------------------------------------------------------------ streams

/** One event stream, followed across drops: a fresh ticket per connection, resumed after the last seq seen. */
class Stream {
  constructor(resource, id, onEvent) {
    Object.assign(this, { resource, id, onEvent, lastSeq: null, ws: null, closed: false, attempt: 0 });
  }

  async open() {
    if (this.closed) return;
    try {
      const t = await api(
        "POST",
        "/api/v1/stream-tickets",
        this.id ? { resource: this.resource, id: this.id } : { resource: this.resource },
      );
      const since = this.lastSeq === null ? "" : `&since=${this.lastSeq}`;
      const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${t.websocket_url}${since}`);
      this.ws = ws;
      // A handshake the network swallowed would never end by itself: give it up (its close retries).
      setTimeout(() => ws.readyState === WebSocket.CONNECTING && ws.close(), REQUEST_TIMEOUT_MS);
      ws.onopen = () => {
        this.attempt = 0;
        streams.changed();
      };
      ws.onmessage = (e) => {
        const msg = JSON.parse(e.data);
        if (typeof msg.seq === "number" && !msg.data?.snapshot) this.lastSeq = msg.seq;
        else if (typeof msg.seq === "number" && this.lastSeq === null) this.lastSeq = msg.seq;
        this.onEvent(msg);
      };
      ws.onclose = () => this.retry();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) return this.close(); // the resource is gone
      this.retry();
    }
  }

  retry() {
    this.ws = null;
    this.timer = null;
    streams.changed();
    if (this.closed) return;
    const delayMs = Math.min(MAX_RETRY_DELAY_MS, 250 * 2 ** this.attempt++) * (0.5 + Math.random() / 2);
    this.timer = setTimeout(() => this.open(), delayMs);
  }

  /** The browser says the network is back: try now instead of waiting out the backoff. */
  retryNow() {
    if (this.closed || this.live || !this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    this.attempt = 0;
    this.open();
  }

  close() {
    this.closed = true;
    this.ws?.close();
    streams.changed();
  }

  get live() {
    return this.ws?.readyState === WebSocket.OPEN;
  }
}

const streams = {
  all: new Set(),
  follow(resource, id, onEvent) {
    const s = new Stream(resource, id, onEvent);
    this.all.add(s);
    s.open();
    return s;
  },
  changed() {
    for (const s of this.all) if (s.closed) this.all.delete(s);
    const down = [...this.all].some((s) => !s.live);
    const el = $("connection");
    el.hidden = this.all.size === 0;
    el.textContent = down ? "reconnecting…" : "live";
    el.className = `pill ${down ? "reconnecting" : "live"}`;
  },
};
const jobStreams = new Map();
window.addEventListener("online", () => {
  for (const s of streams.all) s.retryNow();
});

// ------------------------------------------------------------------ rendering

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
  return node;
}
const ago = (iso) => (iso ? `${Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000))} s ago` : "—");
const short = (id) => (id ? id.slice(0, 8) : "—");

function renderBots() {
  const rows = [...state.bots.values()].sort((a, b) => a.name.localeCompare(b.name));
  const count = (s) => rows.filter((b) => b.status === s).length;
  $("fleet-counts").textContent = `${count("online")} online · ${count("busy")} busy · ${count("offline")} offline`;
  $("bots").replaceChildren(
    ...rows.map((b) =>
      el(
        "tr",
        {},
        el("td", {}, b.name, el("div", { class: "meta" }, short(b.id))),
        el("td", { class: `status-${b.status}` }, b.status),
        el("td", {}, b.capabilities.join(", ") || "—"),
        el("td", {}, short(b.current_task_id)),
        el("td", {}, ago(b.last_heartbeat_at)),
      ),
    ),
  );
}

function renderQueue() {
  const max = Math.max(1, ...state.queue.map((q) => q.pending));
  $("queue").replaceChildren(
    ...(state.queue.length
      ? state.queue.map((q) =>
          el(
            "li",
            {},
            el("span", {}, q.capability ?? "(any)"),
            bar((q.pending / max) * 100, `${q.pending} pending`),
            el("span", { class: "meta" }, `${q.pending} · ${q.oldest_pending_age_s}s`),
          ),
        )
      : [el("li", { class: "meta" }, "nothing waiting (updated each sweep)")]),
  );
}

/** A bar of `percent` width (set through the CSSOM: the page's CSP allows no inline style attributes). */
function bar(percent, label) {
  const b = el("span", { class: "bar", role: "img", "aria-label": label });
  b.style.width = `${percent}%`;
  return b;
}

function actionButton(label, onClick) {
  return state.admin ? el("button", { type: "button", onclick: onClick }, label) : null;
}

function renderJobs() {
  const jobs = [...state.jobs.values()].filter((j) => !dismissed.has(j.id)).sort((a, b) => b.created_at.localeCompare(a.created_at));
  $("jobs").replaceChildren(
    ...jobs.map((j) =>
      el(
        "li",
        { class: j.status === "failed" ? "failed" : "", "data-job": j.id },
        el("div", { class: "title" }, j.kind === "workflow" ? `workflow job ${short(j.id)}` : `job ${short(j.id)}`),
        el("div", { class: `status-${j.status}` }, `${j.status} · ${j.progress}%`),
        el("progress", { max: 100, value: j.progress, "aria-label": `job ${short(j.id)} progress` }),
        j.last_event ? el("div", { class: "meta" }, j.last_event) : null,
        j.error ? el("div", { class: "meta status-failed" }, j.error) : null,
        el(
          "div",
          { class: "row" },
          el("button", { type: "button", onclick: () => showJob(j.id) }, "Details"),
          FINAL_JOB.has(j.status) ? null : actionButton("Cancel", () => act(() => api("POST", `/api/v1/jobs/${j.id}/cancel`))),
          FINAL_JOB.has(j.status) ? el("button", { type: "button", onclick: () => dismiss(j.id) }, "Dismiss") : null,
        ),
      ),
    ),
  );
}

function renderDeployments() {
  $("deployments").replaceChildren(
    ...[...state.deployments.values()].map((d) => {
      const done = d.stage ? STAGES.indexOf(d.stage) + 1 : 0;
      return el(
        "li",
        { class: d.status === "ERROR" ? "failed" : "" },
        el("div", { class: "title" }, d.name ?? short(d.id)),
        el("div", { class: `status-${d.status}` }, `${d.status}${d.stage ? ` · ${d.stage}` : ""}`),
        el(
          "div",
          { class: "stages", role: "img", "aria-label": `${done} of ${STAGES.length} stages` },
          STAGES.map((s, i) => el("span", { class: i < done ? "done" : d.status === "ERROR" && i === done ? "failed" : "", title: s })),
        ),
        d.error ? el("div", { class: "meta status-failed" }, d.error) : null,
        el(
          "div",
          { class: "row" },
          d.status === "ERROR" ? actionButton("Retry", () => act(() => api("POST", `/api/v1/deployments/${d.id}/retry`))) : null,
          actionButton("Tear down", () => confirm(`Tear down ${d.name}?`) && act(() => api("DELETE", `/api/v1/deployments/${d.id}`))),
        ),
      );
    }),
  );
}

function renderProjects() {
  $("projects").replaceChildren(
    ...[...state.projects.values()].map((p) =>
      el(
        "li",
        { class: p.status === "failed" ? "failed" : "" },
        el("div", { class: "title" }, `${p.name} (${p.type})`),
        el("div", { class: `status-${p.status}` }, p.status),
        el("div", { class: "meta" }, p.domain),
        p.error ? el("div", { class: "meta status-failed" }, p.error) : null,
      ),
    ),
  );
}

function toast(text, bad = false) {
  const t = el("div", { class: `toast${bad ? " bad" : ""}`, role: "status" }, text);
  $("toasts").append(t);
  setTimeout(() => t.remove(), 6000);
}

function dismiss(id) {
  dismissed.add(id);
  sessionStorage.setItem(DISMISSED_KEY, JSON.stringify([...dismissed]));
  renderJobs();
}

async function act(work) {
  try {
    await work();
  } catch (err) {
    toast(err.message, true);
  }
}

async function showJob(id) {
  const [job, events] = await Promise.all([api("GET", `/api/v1/jobs/${id}`), api("GET", `/api/v1/jobs/${id}/events?limit=500`)]);
  $("detail-title").textContent = `Job ${id}`;
  $("detail-body").textContent = JSON.stringify({ job, events }, null, 2);
  $("detail").showModal();
}

// ------------------------------------------------------------------ live updates

/** A job's status as a stream told it; a completion or a failure gets its toast once, whichever stream said it first. */
function setJobStatus(job, status) {
  if (!status || status === job.status) return;
  job.status = status;
  if (status === "completed") toast(`Job ${short(job.id)} completed`);
  if (status === "failed") toast(`Job ${short(job.id)} failed: ${job.error ?? ""}`, true);
}

function followJob(id) {
  if (jobStreams.has(id) || jobStreams.size >= MAX_JOB_STREAMS) return;
  const s = streams.follow("job", id, (m) => {
    const job = state.jobs.get(id);
    if (!job) return;
    if (typeof m.progress === "number") job.progress = m.progress;
    if (m.type === "complete") job.error = m.data.error ?? null;
    setJobStatus(job, m.status);
    if (m.type === "progress") job.last_event = m.data.message ?? `step ${m.data.step_index}: ${m.data.progress}%`;
    if (m.type === "step") job.last_event = `step ${m.data.step_index}: ${m.data.status}`;
    if (m.type === "complete") {
      s.close();
      jobStreams.delete(id);
    }
    renderJobs();
  });
  jobStreams.set(id, s);
}

/** True if this event is older than what the page already shows of the resource (read before the event arrived). */
const stale = (resource, m) => Boolean(resource?.updated_at && m.timestamp && m.timestamp < resource.updated_at);

function onFleet(m) {
  const d = m.data ?? {};
  if (d.snapshot) return;
  if (m.type === "bot") {
    const bot = state.bots.get(d.bot_id) ?? { id: d.bot_id, name: d.name ?? short(d.bot_id), capabilities: [], current_task_id: null };
    bot.status = d.status === "online" ? (bot.current_task_id ? "busy" : "online") : "offline";
    if (d.capabilities) bot.capabilities = d.capabilities;
    state.bots.set(bot.id, bot);
    renderBots();
  } else if (m.type === "job") {
    const job = state.jobs.get(d.job_id) ?? {
      id: d.job_id,
      kind: d.workflow_id ? "workflow" : "task",
      created_at: m.timestamp,
      progress: 0,
    };
    const before = job.status;
    Object.assign(job, { status: d.status ?? job.status, progress: d.progress ?? job.progress, error: d.error ?? job.error ?? null });
    state.jobs.set(job.id, job);
    if (before !== job.status && job.status === "completed") toast(`Job ${short(job.id)} completed`);
    if (before !== job.status && job.status === "failed") toast(`Job ${short(job.id)} failed: ${job.error ?? ""}`, true);
    if (!FINAL_JOB.has(job.status)) followJob(job.id);
    renderJobs();
  } else if (m.type === "deployment") {
    const known = state.deployments.has(d.deployment_id);
    const dep = state.deployments.get(d.deployment_id) ?? { id: d.deployment_id };
    if (stale(dep, m)) return;
    for (const k of ["status", "stage", "error"]) if (k in d) dep[k] = d[k];
    dep.updated_at = m.timestamp;
    state.deployments.set(dep.id, dep);
    // A deployment made after the page loaded: read it once for its name (its changes keep coming by stream).
    if (!known)
      api("GET", `/api/v1/deployments/${dep.id}`).then(
        (full) => {
          state.deployments.set(dep.id, { ...full, ...dep, name: full.name });
          renderDeployments();
        },
        () => {},
      );
    if (d.status === "READY") toast(`Deployment ${dep.name ?? short(dep.id)} is ready`);
    if (d.status === "ERROR") toast(`Deployment ${dep.name ?? short(dep.id)} failed: ${d.error ?? ""}`, true);
    renderDeployments();
  } else if (m.type === "project") {
    const p = state.projects.get(d.project_id);
    if (p) Object.assign(p, { status: d.status, error: d.error ?? null });
    renderProjects();
  } else if (m.type === "queue") {
    state.queue = d.capabilities ?? [];
    renderQueue();
  }
}

// ------------------------------------------------------------------ sign-in and start

async function start() {
  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
  // The fleet stream first: what happens while the lists load is kept and applied after them (an event
  // older than what a list showed is dropped), so nothing falls between the load and the stream.
  let loaded = false;
  const early = [];
  streams.follow("fleet", null, (m) => (loaded ? onFleet(m) : early.push(m)));
  // Everything at once: the role (only an admin may list tokens) and the lists.
  const [admin, bots, jobs, deployments, projects] = await Promise.all([
    api("GET", "/api/v1/tokens?limit=1").then(
      () => true,
      () => false,
    ),
    api("GET", "/api/v1/bots?limit=200"),
    api("GET", "/api/v1/jobs?limit=50"),
    api("GET", "/api/v1/deployments?limit=50"),
    api("GET", "/api/v1/projects?limit=50"),
  ]);
  state.admin = admin;
  $("role").hidden = false;
  $("role").textContent = admin ? "admin" : "viewer";
  $("actions").hidden = !admin;
  for (const b of bots) state.bots.set(b.id, b);
  for (const j of jobs) state.jobs.set(j.id, j);
  for (const d of deployments) state.deployments.set(d.id, d);
  for (const p of projects) state.projects.set(p.id, p);
  renderBots();
  renderQueue();
  renderJobs();
  renderDeployments();
  renderProjects();
  loaded = true;
  for (const m of early.splice(0)) onFleet(m);
  for (const j of jobs) if (!FINAL_JOB.has(j.status)) followJob(j.id);
}

$("sign-in-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  try {
    await api("GET", "/api/v1/bots?limit=1");
    await start();
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("sign-in-error").textContent = err instanceof ApiError && err.status === 401 ? "That token is not valid." : err.message;
  }
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});

$("create-task").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  $("create-error").textContent = "";
  let payload;
  try {
    payload = JSON.parse(String(form.get("payload") || "{}"));
  } catch {
    $("create-error").textContent = "The payload is not valid JSON.";
    return;
  }
  const task = { payload, ...(form.get("capability") ? { capability: String(form.get("capability")).trim() } : {}) };
  try {
    if (form.get("as_job")) {
      const job = await api("POST", "/api/v1/jobs", { task });
      state.jobs.set(job.id, job);
      followJob(job.id);
      renderJobs();
    } else {
      await api("POST", "/api/v1/tasks", task);
      toast("Task created");
    }
  } catch (err) {
    const issues = err.body?.error?.details?.issues;
    $("create-error").textContent = issues ? issues.map((i) => `${i.path}: ${i.message}`).join("; ") : err.message;
  }
});

$("detail-close").addEventListener("click", () => $("detail").close());
$("detail-copy").addEventListener("click", () => navigator.clipboard?.writeText($("detail-body").textContent));

if (sessionStorage.getItem(TOKEN_KEY)) start().catch(() => sessionStorage.removeItem(TOKEN_KEY));
