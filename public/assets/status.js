// Status Center: the fleet, jobs, deployments and projects, live. No framework: the page loads each list
// once over REST, then follows the event streams (the fleet stream, and each running job's stream), which
// resume with ?since= after a drop, so it never polls for what a stream delivers. The API token stays in
// sessionStorage; streams open with single-use tickets, never with the token in a URL.

import { ApiError, api, apiBlob, problemOf, StreamSet, TOKEN_KEY } from "./status-api.js";
import { DEPLOYMENT_STAGES } from "./status-config.js";

const DISMISSED_KEY = "clawbot.dismissed";
const FINAL_JOB = new Set(["completed", "failed", "cancelled"]);
/** Job streams followed at once (the most recent running jobs). */
const MAX_JOB_STREAMS = 10;
/** Minutes the throughput chart shows. */
const CHART_MINUTES = 30;
const MINUTE_MS = 60_000;
/** How long the first paint waits for the fleet stream before it loads the lists anyway. */
const FLEET_WAIT_MS = 2000;
/** Tries of each list of the first paint (about 25 s of backoff in all). */
const LIST_ATTEMPTS = 8;

const $ = (id) => document.getElementById(id);
const state = {
  admin: false,
  bots: new Map(),
  jobs: new Map(),
  deployments: new Map(),
  projects: new Map(),
  queue: [],
  /** Completed tasks per minute, oldest first: `{minute, completed}` (minute = epoch ms / 60,000). */
  throughput: [],
};
const dismissed = new Set(JSON.parse(sessionStorage.getItem(DISMISSED_KEY) ?? "[]"));
const jobStreams = new Map();

const streams = new StreamSet((allLive, count) => {
  const pill = $("connection");
  pill.hidden = count === 0;
  pill.textContent = allLive ? "live" : "reconnecting…";
  pill.className = `pill ${allLive ? "live" : "reconnecting"}`;
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
const button = (label, onClick, props = {}) => el("button", { type: "button", onclick: onClick, ...props }, label);

function successOf(b) {
  const finished = (b.tasks_completed ?? 0) + (b.tasks_failed ?? 0);
  if (!finished) return "—";
  return `${Math.round(((b.tasks_completed ?? 0) / finished) * 100)}% of ${finished}`;
}

function renderBots() {
  const rows = [...state.bots.values()].sort((a, b) => a.name.localeCompare(b.name));
  const count = (s) => rows.filter((b) => b.status === s).length;
  $("fleet-counts").textContent = `${count("online")} online · ${count("busy")} busy · ${count("offline")} offline`;
  $("bots").replaceChildren(
    ...rows.map((b) =>
      el(
        "tr",
        { "data-bot": b.id },
        el("td", {}, b.name, el("div", { class: "meta" }, short(b.id))),
        el("td", { class: `status-${b.status}` }, b.status),
        el("td", {}, b.capabilities.join(", ") || "—"),
        el(
          "td",
          { class: "current-task" },
          b.current_task_id
            ? button(short(b.current_task_id), () => showTask(b.current_task_id), {
                "aria-label": `task ${short(b.current_task_id)} details`,
              })
            : "—",
        ),
        el("td", { class: "success" }, successOf(b)),
        el(
          "td",
          { class: b.quarantined ? "health quarantined" : "health" },
          typeof b.health_score === "number" ? b.health_score.toFixed(2) : "—",
          b.quarantined ? el("div", { class: "meta" }, "quarantined") : "",
        ),
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

/** The chart's window ends at the current minute: older minutes fall off, new ones start at 0. */
function rollThroughput() {
  const current = Math.floor(Date.now() / MINUTE_MS);
  const byMinute = new Map(state.throughput.map((p) => [p.minute, p.completed]));
  state.throughput = Array.from({ length: CHART_MINUTES }, (_, i) => {
    const minute = current - CHART_MINUTES + 1 + i;
    return { minute, completed: byMinute.get(minute) ?? 0 };
  });
}

function renderThroughput() {
  rollThroughput();
  const points = state.throughput;
  const max = Math.max(1, ...points.map((p) => p.completed));
  const total = points.reduce((sum, p) => sum + p.completed, 0);
  const now = points.at(-1)?.completed ?? 0;
  $("throughput-summary").textContent = `${now} this minute · ${total} in ${CHART_MINUTES} min`;
  const chart = $("throughput");
  chart.setAttribute("aria-label", `tasks completed per minute: ${now} this minute, ${total} in the last ${CHART_MINUTES} minutes`);
  chart.replaceChildren(
    ...points.map((p) => {
      const col = el("span", { class: "col", title: `${new Date(p.minute * MINUTE_MS).toLocaleTimeString()}: ${p.completed}` });
      col.style.height = `${(p.completed / max) * 100}%`;
      return col;
    }),
  );
}

function actionButton(label, onClick) {
  return state.admin ? button(label, onClick) : null;
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
        j.screenshot ? screenshotOf(j.screenshot) : null,
        j.error ? el("div", { class: "meta status-failed" }, j.error) : null,
        el(
          "div",
          { class: "row" },
          button("Details", () => showJob(j.id)),
          FINAL_JOB.has(j.status) ? null : actionButton("Cancel", () => act(() => api("POST", `/api/v1/jobs/${j.id}/cancel`))),
          FINAL_JOB.has(j.status) ? button("Dismiss", () => dismiss(j.id)) : null,
        ),
      ),
    ),
  );
}

function renderDeployments() {
  $("deployments").replaceChildren(
    ...[...state.deployments.values()]
      .filter((d) => !dismissed.has(d.id))
      .map((d) => {
        const done = d.stage ? DEPLOYMENT_STAGES.indexOf(d.stage) + 1 : 0;
        return el(
          "li",
          { class: d.status === "ERROR" ? "failed" : "", "data-deployment": d.id },
          el("div", { class: "title" }, d.name ?? short(d.id)),
          el("div", { class: `status-${d.status}` }, `${d.status}${d.stage ? ` · ${d.stage}` : ""}`),
          el(
            "div",
            { class: "stages", role: "img", "aria-label": `${done} of ${DEPLOYMENT_STAGES.length} stages` },
            DEPLOYMENT_STAGES.map((s, i) =>
              el("span", { class: i < done ? "done" : d.status === "ERROR" && i === done ? "failed" : "", title: s }),
            ),
          ),
          d.error ? el("div", { class: "meta status-failed" }, d.error) : null,
          el(
            "div",
            { class: "row" },
            button("Details", () => showDeployment(d.id)),
            d.status === "ERROR" ? actionButton("Retry", () => act(() => api("POST", `/api/v1/deployments/${d.id}/retry`))) : null,
            actionButton("Tear down", () => confirm(`Tear down ${d.name}?`) && act(() => api("DELETE", `/api/v1/deployments/${d.id}`))),
            d.status === "ERROR" ? button("Dismiss", () => dismiss(d.id)) : null,
          ),
        );
      }),
  );
}

function renderProjects() {
  $("projects").replaceChildren(
    ...[...state.projects.values()]
      .filter((p) => !dismissed.has(p.id))
      .map((p) =>
        el(
          "li",
          { class: p.status === "failed" ? "failed" : "" },
          el("div", { class: "title" }, p.name ? `${p.name} (${p.type})` : `project ${short(p.id)}`),
          el("div", { class: `status-${p.status}` }, p.status),
          el("div", { class: "meta" }, p.domain),
          p.error ? el("div", { class: "meta status-failed" }, p.error) : null,
          el(
            "div",
            { class: "row" },
            p.init_job_id ? button("Details", () => showJob(p.init_job_id)) : null,
            p.status === "failed" ? button("Dismiss", () => dismiss(p.id)) : null,
          ),
        ),
      ),
  );
}

function toast(text, bad = false) {
  const t = el("div", { class: `toast${bad ? " bad" : ""}`, role: "status" }, text);
  $("toasts").append(t);
  setTimeout(() => t.remove(), 6000);
}

/** A finished item (a job, a failed deployment or project) leaves the page for this tab's session. */
function dismiss(id) {
  dismissed.add(id);
  sessionStorage.setItem(DISMISSED_KEY, JSON.stringify([...dismissed]));
  renderJobs();
  renderDeployments();
  renderProjects();
}

async function act(work) {
  try {
    await work();
  } catch (err) {
    toast(err.message, true);
  }
}

/** Screenshots already fetched: artifact id → blob: URL (fetched once, with the token; kept while the page lives). */
const screenshotUrls = new Map();

/** A job's latest screenshot (from its stream's `screenshot` event), loaded with the token. */
function screenshotOf(shot) {
  const img = el("img", { class: "screenshot", alt: `screenshot ${shot.name}`, "data-artifact": shot.artifact_id });
  const cached = screenshotUrls.get(shot.artifact_id);
  if (cached) img.src = cached;
  else
    apiBlob(shot.content_url).then(
      (blob) => {
        const url = URL.createObjectURL(blob);
        screenshotUrls.set(shot.artifact_id, url);
        for (const shown of document.querySelectorAll(`img[data-artifact="${shot.artifact_id}"]`)) shown.src = url;
      },
      () => {},
    );
  return img;
}

// ------------------------------------------------------------------ details

/** A resource and its full event log in the dialog, pretty-printed and copyable. */
async function showDetail(title, load) {
  try {
    const detail = await load();
    $("detail-title").textContent = title;
    $("detail-body").textContent = JSON.stringify(detail, null, 2);
    $("detail").showModal();
  } catch (err) {
    toast(err.message, true);
  }
}

const showJob = (id) =>
  showDetail(`Job ${id}`, async () => {
    const [job, events] = await Promise.all([api("GET", `/api/v1/jobs/${id}`), api("GET", `/api/v1/jobs/${id}/events?limit=500`)]);
    const result = FINAL_JOB.has(job.status) ? await api("GET", `/api/v1/jobs/${id}/result`) : null;
    return { job, result, events };
  });

const showTask = (id) =>
  showDetail(`Task ${id}`, async () => {
    const [task, events] = await Promise.all([api("GET", `/api/v1/tasks/${id}`), api("GET", `/api/v1/tasks/${id}/events`)]);
    return { task, events };
  });

const showDeployment = (id) =>
  showDetail(`Deployment ${id}`, async () => {
    const [deployment, events, logs] = await Promise.all([
      api("GET", `/api/v1/deployments/${id}`),
      api("GET", `/api/v1/deployments/${id}/events?limit=500`),
      api("GET", `/api/v1/deployments/${id}/logs`),
    ]);
    return { deployment, events, logs };
  });

// ------------------------------------------------------------------ live updates

/** A job's status as a stream told it; a completion or a failure gets its toast once, whichever stream said it first. */
function setJobStatus(job, status) {
  if (!status || status === job.status) return;
  job.status = status;
  if (status === "completed") toast(`Job ${short(job.id)} completed`);
  if (status === "failed") toast(`Job ${short(job.id)} failed: ${job.error ?? ""}`, true);
}

/** "step 2", "step 2 item 3", "step 2 run 2": which run of a looping or fanned-out step. */
function stepLabel(d) {
  let label = `step ${d.step_index}`;
  if (typeof d.item_index === "number") label += ` item ${d.item_index}`;
  if (typeof d.iteration === "number" && d.iteration > 0) label += ` run ${d.iteration + 1}`;
  return label;
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
    if (m.type === "step") job.last_event = `${stepLabel(m.data)}: ${m.data.status}`;
    if (m.type === "decision") job.last_event = `step ${m.data.step_index}: ${m.data.decision.replaceAll("_", " ")}`;
    if (m.type === "screenshot") job.screenshot = m.data;
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

/** A bot's counts moved on: what it completed since the page last knew goes into the current minute. */
function countCompletions(bot, d) {
  if (typeof d.tasks_completed !== "number") return;
  const before = bot.tasks_completed;
  if (typeof before === "number" && d.tasks_completed > before) {
    rollThroughput();
    state.throughput.at(-1).completed += d.tasks_completed - before;
    renderThroughput();
  }
  bot.tasks_completed = d.tasks_completed;
  if (typeof d.tasks_failed === "number") bot.tasks_failed = d.tasks_failed;
}

function onBot(m, d) {
  const bot = state.bots.get(d.bot_id) ?? { id: d.bot_id, name: d.name ?? short(d.bot_id), capabilities: [], current_task_id: null };
  if (stale(bot, m)) return;
  if ("current_task_id" in d) bot.current_task_id = d.current_task_id;
  if (d.status === "disconnected") bot.status = "offline";
  else bot.status = bot.current_task_id ? "busy" : "online";
  if (d.capabilities) bot.capabilities = d.capabilities;
  if (d.name) bot.name = d.name;
  countCompletions(bot, d);
  bot.updated_at = m.timestamp;
  state.bots.set(bot.id, bot);
  renderBots();
}

/** A bot's quarantine started or ended (its score rides along). */
function onBotHealth(d) {
  const bot = state.bots.get(d.bot_id);
  if (!bot) return;
  bot.health_score = d.health_score;
  bot.quarantined = d.quarantined;
  renderBots();
}

function onJob(m, d) {
  const job = state.jobs.get(d.job_id) ?? { id: d.job_id, kind: d.workflow_id ? "workflow" : "task", created_at: m.timestamp, progress: 0 };
  if (typeof d.progress === "number") job.progress = d.progress;
  if (d.error) job.error = d.error;
  state.jobs.set(job.id, job);
  setJobStatus(job, d.status);
  if (!FINAL_JOB.has(job.status)) followJob(job.id);
  renderJobs();
}

function onDeployment(m, d) {
  const known = state.deployments.has(d.deployment_id);
  const dep = state.deployments.get(d.deployment_id) ?? { id: d.deployment_id };
  if (stale(dep, m)) return;
  for (const k of ["status", "stage", "error"]) if (k in d) dep[k] = d[k];
  dep.updated_at = m.timestamp;
  state.deployments.set(dep.id, dep);
  if (!known) readOnce(state.deployments, `/api/v1/deployments/${dep.id}`, renderDeployments);
  if (d.status === "READY") toast(`Deployment ${dep.name ?? short(dep.id)} is ready`);
  if (d.status === "ERROR") toast(`Deployment ${dep.name ?? short(dep.id)} failed: ${d.error ?? ""}`, true);
  renderDeployments();
}

/**
 * A resource made after the page loaded: read it once for what the stream does not carry (its name,
 * domain, …); what the stream said meanwhile wins over the read.
 */
function readOnce(map, path, render) {
  api("GET", path).then(
    (full) => {
      map.set(full.id, { ...full, ...(map.get(full.id) ?? {}) });
      render();
    },
    () => {},
  );
}

function onProject(m, d) {
  const known = state.projects.get(d.project_id);
  const p = known ?? { id: d.project_id };
  if (stale(p, m)) return;
  Object.assign(p, { status: d.status, error: d.error ?? null, updated_at: m.timestamp });
  if (d.init_job_id) p.init_job_id = d.init_job_id;
  state.projects.set(p.id, p);
  if (!known) readOnce(state.projects, `/api/v1/projects/${p.id}`, renderProjects);
  if (d.status === "failed") toast(`Project ${p.name ?? short(p.id)} failed: ${d.error ?? ""}`, true);
  renderProjects();
}

function onFleet(m) {
  const d = m.data ?? {};
  if (d.snapshot) return;
  if (m.type === "bot") onBot(m, d);
  else if (m.type === "job") onJob(m, d);
  else if (m.type === "deployment") onDeployment(m, d);
  else if (m.type === "project") onProject(m, d);
  else if (m.type === "bot_health") onBotHealth(d);
  else if (m.type === "queue") {
    state.queue = d.capabilities ?? [];
    renderQueue();
  }
}

// ------------------------------------------------------------------ sign-in and start

/**
 * A list the first paint needs, asked again if the network fails it (a dropped connection while the page
 * loads must not leave a list empty until a reload), backing off to 5 s; a refusal (4xx) is final.
 */
async function retrying(request, attempts = LIST_ATTEMPTS) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await request();
    } catch (err) {
      const refused = err instanceof ApiError && err.status < 500;
      if (refused || attempt >= attempts) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.min(5000, 250 * 2 ** attempt)));
    }
  }
}

async function start() {
  $("sign-in").hidden = true;
  $("dashboard").hidden = false;
  $("sign-out").hidden = false;
  // The fleet stream first, and the lists only once it is live: whatever changes after a list is read
  // then arrives on the stream (kept while the lists load and applied after them; an event older than
  // what a list showed is dropped), so nothing falls between the load and the stream — a job created
  // while the page connected would otherwise be in neither. A stream that cannot connect delays the
  // lists by FLEET_WAIT_MS at most (it keeps retrying).
  let loaded = false;
  const early = [];
  const fleet = streams.follow("fleet", null, (m) => (loaded ? onFleet(m) : early.push(m)));
  await Promise.race([fleet.ready, new Promise((resolve) => setTimeout(resolve, FLEET_WAIT_MS))]);
  // Everything at once: the role (only an admin may list tokens) and the lists; each list is shown as
  // soon as it arrives (the role first: it decides which buttons the lists get).
  const admin = api("GET", "/api/v1/tokens?limit=1").then(
    () => true,
    () => false,
  );
  const lists = {
    bots: retrying(() => api("GET", "/api/v1/bots?limit=200")),
    jobs: retrying(() => api("GET", "/api/v1/jobs?limit=50")),
    deployments: retrying(() => api("GET", "/api/v1/deployments?limit=50")),
    projects: retrying(() => api("GET", "/api/v1/projects?limit=50")),
    throughput: retrying(() => api("GET", `/api/v1/stats/throughput?minutes=${CHART_MINUTES}`)),
  };
  state.admin = await admin;
  $("role").hidden = false;
  $("role").textContent = state.admin ? "admin" : "viewer";
  $("actions").hidden = !state.admin;
  const show = async (list, keep, render) => {
    keep(await list);
    render();
  };
  const fill = (map) => (rows) => {
    for (const row of rows) map.set(row.id, row);
  };
  renderQueue();
  await Promise.all([
    show(lists.bots, fill(state.bots), renderBots),
    show(lists.jobs, fill(state.jobs), renderJobs),
    show(lists.deployments, fill(state.deployments), renderDeployments),
    show(lists.projects, fill(state.projects), renderProjects),
    show(
      lists.throughput,
      (t) => (state.throughput = t.minutes.map((p) => ({ minute: Math.floor(Date.parse(p.at) / MINUTE_MS), completed: p.completed }))),
      renderThroughput,
    ),
  ]);
  loaded = true;
  for (const m of early.splice(0)) onFleet(m);
  for (const j of await lists.jobs) if (!FINAL_JOB.has(j.status)) followJob(j.id);
  // The clock moves on without events: heartbeat ages and the chart's window (no request is made).
  setInterval(() => {
    renderBots();
    renderThroughput();
  }, 10_000);
}

$("sign-in-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  try {
    await api("GET", "/api/v1/bots?limit=1");
  } catch (err) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("sign-in-error").textContent = err instanceof ApiError && err.status === 401 ? "That token is not valid." : err.message;
    return;
  }
  // Signed in: a load that fails from here on (the network) says so and keeps the token; the streams retry.
  start().catch((err) => toast(`Could not load the dashboard: ${err.message}`, true));
});

$("sign-out").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  location.reload();
});

/** Parses a form field as JSON, or says why not in the form's error line. */
function jsonField(form, name, errorId, what) {
  try {
    return { ok: true, value: JSON.parse(String(form.get(name) || "null")) };
  } catch {
    $(errorId).textContent = `${what} is not valid JSON.`;
    return { ok: false };
  }
}

/** A job made from the page is watched at once (its fleet event may come before or after this). */
function watchNewJob(job) {
  state.jobs.set(job.id, { ...state.jobs.get(job.id), ...job });
  followJob(job.id);
  renderJobs();
}

$("create-task").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  $("create-error").textContent = "";
  const payload = jsonField(form, "payload", "create-error", "The payload");
  if (!payload.ok) return;
  const task = { payload: payload.value ?? {}, ...(form.get("capability") ? { capability: String(form.get("capability")).trim() } : {}) };
  try {
    if (form.get("as_job")) watchNewJob(await api("POST", "/api/v1/jobs", { task }));
    else {
      await api("POST", "/api/v1/tasks", task);
      toast("Task created");
    }
  } catch (err) {
    $("create-error").textContent = problemOf(err);
  }
});

$("create-workflow").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  $("workflow-error").textContent = "";
  const steps = jsonField(form, "task_payloads", "workflow-error", "The steps");
  if (!steps.ok) return;
  const capability = String(form.get("capability") ?? "").trim();
  const body = { name: String(form.get("name") ?? "").trim(), task_payloads: steps.value, ...(capability ? { capability } : {}) };
  try {
    const workflow = await api("POST", "/api/v1/workflows", body);
    if (form.get("run")) watchNewJob(await api("POST", `/api/v1/workflows/${workflow.id}/execute`, {}));
    else toast(`Workflow ${short(workflow.id)} created`);
  } catch (err) {
    $("workflow-error").textContent = problemOf(err);
  }
});

$("detail-close").addEventListener("click", () => $("detail").close());
$("detail-copy").addEventListener("click", () => navigator.clipboard?.writeText($("detail-body").textContent));

// A kept token is dropped only if the coordinator refuses it, not when the network fails the first load.
if (sessionStorage.getItem(TOKEN_KEY))
  start().catch((err) => {
    if (err instanceof ApiError && err.status === 401) sessionStorage.removeItem(TOKEN_KEY);
    else toast(`Could not load the dashboard: ${err.message}`, true);
  });
