/**
 * What a newcomer does first, against `npm start` as it comes (its local bot, the stand-in openclaw CLI):
 * create a website project and watch it over WebSocket until `ready`; a failing one until `failed`; a
 * three-step workflow execution with its progress; and a cancel mid-step that stops the bot's process.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { until } from "../../scripts/lib/harness";
import { cleanUpRuns, freePortBlock, npmStart, type Run, stateDirs, upAndHealthy } from "../helpers/npm-start";

let run: Run;
let base: string;
let stateDir: string;
let adminToken: string;

async function api(method: string, route: string, body?: unknown) {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: { Authorization: `Bearer ${adminToken}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as any };
}

/** Watches a stream until `done` says so (bounded); returns every message in order. */
function watch(route: string, done: (m: any) => boolean, timeoutMs = 60_000): Promise<any[]> {
  return new Promise((resolve, reject) => {
    const got: any[] = [];
    const ws = new WebSocket(`${base.replace("http", "ws")}${route}`, { headers: { Authorization: `Bearer ${adminToken}` } });
    const timer = setTimeout(() => {
      ws.close();
      reject(new Error(`${route}: no end within ${timeoutMs} ms; got ${JSON.stringify(got.map((m) => m.type))}`));
    }, timeoutMs);
    ws.on("message", (data) => {
      const m = JSON.parse(data.toString());
      got.push(m);
      if (done(m)) {
        clearTimeout(timer);
        ws.close();
        resolve(got);
      }
    });
    ws.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

const standInsRunning = (marker: string) => {
  try {
    return execFileSync("pgrep", ["-f", marker], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
  } catch {
    return [];
  }
};

beforeAll(async () => {
  stateDir = mkdtempSync(path.join(os.tmpdir(), "cbc-projects-"));
  stateDirs.push(stateDir);
  const port = await freePortBlock();
  base = `http://127.0.0.1:${port}`;
  run = npmStart({ PORT: String(port), CLAWBOT_STATE_DIR: stateDir, OPENCLAW_STANDIN_STEP_MS: "100" });
  await upAndHealthy(run, "npm start is up", async () => (await fetch(`${base}/health`).catch(() => null))?.status === 200);
  adminToken = /^ADMIN_TOKEN=(.+)$/m.exec(readFileSync(path.join(stateDir, "dev.vars"), "utf8"))![1]!.trim();
  // Its local bot is online with both capabilities.
  await until("the local bot online", 30_000, async () => {
    const bots = (await api("GET", "/api/v1/bots?capability=openclaw")).body;
    return bots.some((b: any) => b.status === "online" && b.capabilities.includes("echo"));
  });
}, 180_000);

afterAll(async () => {
  if (run) process.kill(-run.child.pid!, "SIGINT");
  await run?.exited;
  await cleanUpRuns();
}, 60_000);

describe("npm start: projects and jobs out of the box", () => {
  it("a website project goes creating → ready, watched over its WebSocket; the bot made it with openclaw", async () => {
    const created = await api("POST", "/api/v1/projects", { name: "Shop", domain: "shop.example", description: "a shop", typeId: 1 });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    const p = created.body;
    const messages = await watch(p.websocket_url, (m) => m.type === "complete");
    expect(messages[0]).toMatchObject({ type: "status", status: "creating" });
    expect(messages.at(-1)).toMatchObject({ type: "complete", status: "ready" });
    expect((await api("GET", p.status_url)).body).toEqual({ status: "ready" });
    // The init job's own stream has the run's output and progress.
    const events = (await api("GET", `/api/v1/jobs/${p.init_job_id}/events?limit=500`)).body;
    expect(events.some((e: any) => e.type === "log" && e.data.lines.includes("project initialized"))).toBe(true);
    expect(events.filter((e: any) => e.type === "progress").map((e: any) => e.data.progress)).toEqual([10, 30, 50, 80, 100]);
    const made = path.join(stateDir, "local-bot", "projects", "shop.example", "OPENCLAW.md");
    expect(existsSync(made)).toBe(true);
    expect(readFileSync(made, "utf8")).toContain("Project name: Shop");
  }, 90_000);

  it("a project whose openclaw run fails ends failed, with the exit code and stderr as its error", async () => {
    const p = (
      await api("POST", "/api/v1/projects", { name: "Broken", domain: "broken.example", description: "[openclaw:fail]", typeId: 1 })
    ).body;
    const messages = await watch(p.websocket_url, (m) => m.type === "complete");
    expect(messages.at(-1)).toMatchObject({ status: "failed" });
    const project = (await api("GET", `/api/v1/projects/${p.id}`)).body;
    expect(project.status).toBe("failed");
    expect(project.error).toMatch(/exited with 3: error: could not clone the frontend template/);
  }, 90_000);

  it("a three-step workflow execution reports progress step by step and completes", async () => {
    const wf = (
      await api("POST", "/api/v1/workflows", {
        name: "three steps",
        capability: "echo",
        task_payloads: [{ delay_ms: 300 }, { delay_ms: 300 }, { delay_ms: 300 }],
      })
    ).body;
    const executed = await api("POST", `/api/v1/workflows/${wf.id}/execute`);
    expect(executed.status).toBe(202);
    const messages = await watch(`${executed.body.websocket_url}?since=0`, (m) => m.type === "complete");
    expect(messages.at(-1)).toMatchObject({ status: "completed", progress: 100 });
    const statusProgress = messages.filter((m) => m.type === "step" && m.data.status === "completed").map((m) => m.data.step_index);
    expect(statusProgress).toEqual([0, 1, 2]);
    expect(messages.some((m) => m.type === "progress")).toBe(true);
    const seqs = messages.map((m) => m.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
  }, 90_000);

  it("a schedule fires from its own alarm under wrangler dev (not the cron), and the local bot runs each run", async () => {
    const created = await api("POST", "/api/v1/schedules", {
      name: "every two seconds",
      every_seconds: 2,
      task: { capability: "echo", payload: { scheduled: true } },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.id;
    const runs = await until("two completed runs", 30_000, async () => {
      const jobs = (await api("GET", `/api/v1/jobs?schedule_id=${id}&status=completed`)).body;
      return jobs.length >= 2 && jobs;
    });
    for (const run of runs) expect(Date.parse(run.created_at) - Date.parse(run.scheduled_for)).toBeLessThan(2000);
    expect((await api("POST", `/api/v1/schedules/${id}/pause`)).body.status).toBe("paused");
  }, 60_000);

  it("cancelling a job mid-step stops the bot's process at once", async () => {
    const marker = `cancel-me-${Date.now()}`;
    const job = (
      await api("POST", "/api/v1/jobs", {
        task: {
          capability: "openclaw",
          payload: { handler: "openclaw", project_dir: "cancelled.example", prompt: `[openclaw:hang] ${marker}` },
        },
      })
    ).body;
    await until("the openclaw run started", 30_000, async () => standInsRunning(marker).length > 0);
    const cancelled = await api("POST", `/api/v1/jobs/${job.id}/cancel`);
    expect(cancelled.body.status).toBe("cancelled");
    await until("the openclaw process gone", 10_000, async () => standInsRunning(marker).length === 0);
    // And the bot takes work again.
    const next = await api("POST", "/api/v1/jobs", { task: { capability: "echo", payload: { after: "cancel" } } });
    await until(
      "the next job completed",
      20_000,
      async () => (await api("GET", `/api/v1/jobs/${next.body.id}`)).body.status === "completed",
    );
  }, 90_000);
});

/** Resident memory (bytes) of every workerd process of this `npm start`. */
function workerdRssBytes(): number {
  let total = 0;
  for (const pid of standInsRunning(`workerd.*${stateDir}`).concat(standInsRunning("workerd serve"))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      total += Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) * 1024;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

describe("artifacts against npm start", () => {
  it("a job's bot uploads a screenshot: a watcher sees it in the job's stream and downloads it byte for byte", async () => {
    const created = await api("POST", "/api/v1/jobs", {
      task: {
        capability: "openclaw",
        payload: { handler: "openclaw", project_dir: "shots.example", prompt: "a landing page [openclaw:screenshot]" },
      },
    });
    expect(created.status).toBe(202);
    const events = await watch(`/api/v1/ws/jobs/${created.body.id}`, (m) => m.type === "complete");
    const shot = events.find((m) => m.type === "screenshot");
    expect(shot?.data).toMatchObject({ name: "home.png", content_type: "image/png" });
    const res = await fetch(`${base}${shot.data.content_url}`, { headers: { Authorization: `Bearer ${adminToken}` } });
    expect(res.headers.get("Content-Type")).toBe("image/png");
    const downloaded = Buffer.from(await res.arrayBuffer());
    const result = (await api("GET", `/api/v1/jobs/${created.body.id}/result`)).body;
    const onDisk = readFileSync(path.join(result.steps[0].result.project_path, ".openclaw", "screenshots", "home.png"));
    expect(downloaded.equals(onDisk)).toBe(true);
    expect(shot.data.size).toBe(onDisk.byteLength);
    // The run's log is an artifact of the job too.
    expect(result.artifacts.map((a: any) => a.kind).sort()).toEqual(["log", "screenshot"]);
  }, 90_000);

  it("a 50 MiB upload streams through: the Worker's memory does not grow with the size, and the bytes come back whole", async () => {
    const { createHash } = await import("node:crypto");
    const chunk = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31) & 0xff;
    /** Uploads `mib` MiB as a stream; returns the artifact and how far workerd's memory rose above where it was. */
    const uploadMiB = async (mib: number) => {
      const baseline = workerdRssBytes();
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, workerdRssBytes())), 25);
      let sent = 0;
      const body = new ReadableStream({
        pull(controller) {
          if (sent++ >= mib) return controller.close();
          controller.enqueue(new Uint8Array(chunk));
        },
      });
      const res = await fetch(`${base}/api/v1/artifacts?name=${mib}mib.bin`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${adminToken}`,
          "Content-Type": "application/octet-stream",
          "Content-Length": String(mib * 1024 * 1024),
        },
        body,
        duplex: "half",
      } as RequestInit);
      clearInterval(sampler);
      const stored = (await res.json()) as any;
      expect(res.status, JSON.stringify(stored)).toBe(201);
      return { stored, growthMiB: (peak - baseline) / (1024 * 1024) };
    };
    await uploadMiB(16); // the first upload warms the code paths and the local R2 up
    const fifty = await uploadMiB(50);
    const hundred = await uploadMiB(100);
    console.log(
      `streamed uploads: workerd RSS peak +${fifty.growthMiB.toFixed(1)} MiB for 50 MiB, +${hundred.growthMiB.toFixed(1)} MiB for 100 MiB`,
    );
    // Held whole, a body adds at least its size; streamed, about one 8 MiB part and its copies (plus garbage
    // the runtime has not collected yet, which makes RSS a loose measure: hence the Worker's own count below).
    expect(fifty.growthMiB).toBeLessThan(50);
    expect(hundred.growthMiB).toBeLessThan(100);
    // The Worker logs the most bytes it held at once: one part (8 MiB) plus the chunk that filled it.
    for (const { stored } of [fifty, hundred]) {
      const line = run
        .output()
        .split("\n")
        .find((l) => l.includes('"artifact stored"') && l.includes(stored.id));
      expect(line, "the upload's log line").toBeTruthy();
      const peakBytes = Number(/"buffered_peak_bytes":(\d+)/.exec(line!)?.[1]);
      expect(peakBytes).toBeGreaterThan(0);
      expect(peakBytes).toBeLessThanOrEqual(9 * 1024 * 1024);
    }

    const expected = createHash("sha256");
    for (let i = 0; i < 50; i++) expected.update(chunk);
    expect(fifty.stored).toMatchObject({ size: 50 * 1024 * 1024, sha256: expected.digest("hex") });
    const down = await fetch(`${base}${fifty.stored.content_url}`, { headers: { Authorization: `Bearer ${adminToken}` } });
    const got = createHash("sha256");
    for await (const part of down.body as unknown as AsyncIterable<Uint8Array>) got.update(part);
    expect(got.digest("hex")).toBe(fifty.stored.sha256);
  }, 120_000);
});
