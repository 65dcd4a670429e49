/**
 * The Status Center in a real browser (Debian's chromium driven by playwright-core) against `npm start`
 * as it comes: sign in, watch a job go from queued to completed, cancel a running job and see the bot's
 * process stop, watch a deployment advance through its stages, drop the network and see the page come
 * back to exactly the current state, and check that a viewer has no actions. Screenshots go to a
 * temporary directory, or with UPDATE_SCREENSHOTS=1 to docs/screenshots/ (the README shows them): a
 * test run leaves the tree as it found it.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import os from "node:os";
import path from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../scripts/lib/coordinator";
import { until } from "../../scripts/lib/harness";
import { cleanUpRuns, freePortBlock, npmStart, type Run, stateDirs, upAndHealthy } from "../helpers/npm-start";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHOTS =
  process.env.UPDATE_SCREENSHOTS === "1" ? path.join(ROOT, "docs/screenshots") : path.join(os.tmpdir(), "clawbot-status-screenshots");

/**
 * A TCP proxy between the browser and the coordinator, so the test can cut the page's network (every
 * connection dropped, new ones refused) and restore it, while the coordinator itself runs on.
 */
function startProxy(target: number): Promise<{ port: number; cut: () => void; restore: () => void; close: () => Promise<void> }> {
  const open = new Set<Socket>();
  let down = false;
  const server: Server = createServer((client) => {
    if (down) return client.destroy();
    const upstream = tcpConnect(target, "127.0.0.1");
    open.add(client);
    open.add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () =>
      resolve({
        port: (server.address() as { port: number }).port,
        cut: () => {
          down = true;
          for (const s of open) s.destroy();
        },
        restore: () => {
          down = false;
        },
        close: () => new Promise((r) => server.close(() => r())),
      }),
    ),
  );
}

let run: Run;
let coordinatorUrl: string;
let pageUrl: string;
let adminToken: string;
let browser: Browser;
let proxy: Awaited<ReturnType<typeof startProxy>>;

async function api(method: string, route: string, body?: unknown, token = adminToken) {
  const res = await fetch(`${coordinatorUrl}${route}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function signIn(page: Page, token: string) {
  await page.goto(`${pageUrl}/`);
  await page.waitForURL(`${pageUrl}/status`);
  await page.getByLabel("API token (admin or viewer)").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: /^Fleet/ }).waitFor();
}

/** Clicks a Details button and returns what the dialog shows, once it shows `title`. */
async function openDetail(page: Page, details: ReturnType<Page["locator"]>, title: RegExp): Promise<any> {
  await details.click();
  await expect.poll(() => page.locator("#detail-title").textContent()).toMatch(title);
  const body = JSON.parse((await page.locator("#detail-body").textContent()) ?? "{}");
  await page.getByRole("button", { name: "Close" }).click();
  return body;
}

const jobCard = (page: Page, id: string) => page.locator(`li[data-job="${id}"]`);

const running = (marker: string) => {
  try {
    return execFileSync("pgrep", ["-f", marker], { encoding: "utf8" }).trim().split("\n").filter(Boolean);
  } catch {
    return [];
  }
};

beforeAll(async () => {
  expect(existsSync(CHROMIUM), `${CHROMIUM} (Debian's chromium package; .ci/run installs it)`).toBe(true);
  mkdirSync(SHOTS, { recursive: true });
  const stateDir = mkdtempSync(path.join(os.tmpdir(), "cbc-status-"));
  stateDirs.push(stateDir);
  const port = await freePortBlock();
  coordinatorUrl = `http://127.0.0.1:${port}`;
  run = npmStart({ PORT: String(port), CLAWBOT_STATE_DIR: stateDir, CRON_INTERVAL_S: "5" });
  await upAndHealthy(run, "npm start is up", async () => (await fetch(`${coordinatorUrl}/health`).catch(() => null))?.status === 200);
  adminToken = /^ADMIN_TOKEN=(.+)$/m.exec(readFileSync(path.join(stateDir, "dev.vars"), "utf8"))![1]!.trim();
  await until("the local bot online", 30_000, async () => (await api("GET", "/api/v1/bots")).body.some((b: any) => b.status === "online"));
  proxy = await startProxy(port);
  pageUrl = `http://127.0.0.1:${proxy.port}`;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await proxy?.close();
  if (run) process.kill(-run.child.pid!, "SIGINT");
  await run?.exited;
  await cleanUpRuns();
}, 60_000);

describe("Status Center in a real browser", () => {
  it("refuses a wrong token, then shows the live fleet and a job going from queued to completed with a toast", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(`${pageUrl}/status`);
    await page.getByLabel("API token (admin or viewer)").fill("not-a-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect.poll(() => page.getByRole("alert").first().textContent()).toContain("not valid");

    await signIn(page, adminToken);
    await page.getByRole("cell", { name: "local-bot" }).waitFor();
    await expect.poll(() => page.locator("#role").textContent()).toBe("admin");
    await page.getByText("live", { exact: true }).waitFor();

    // Created from the page's form, watched as a job.
    await page.getByLabel("Capability", { exact: true }).fill("echo");
    await page.getByLabel("Payload (JSON)").fill('{"delay_ms": 3000}');
    await page.getByRole("button", { name: "Create", exact: true }).click();
    const card = page.locator("li[data-job]").first();
    await card.getByText(/^running/).waitFor({ timeout: 15_000 });
    // The bot running it shows the task as its current one, live; the task opens with its event log.
    const localBot = (await api("GET", "/api/v1/bots?limit=200")).body.find((b: any) => b.name === "local-bot");
    const taskId: string = localBot.current_task_id;
    expect((await api("GET", `/api/v1/tasks/${taskId}`)).body.job_id).toBe(await card.getAttribute("data-job"));
    const botRow = page.locator("#bots tr", { hasText: "local-bot" });
    await botRow.getByRole("button", { name: `task ${taskId.slice(0, 8)} details` }).click();
    await expect.poll(() => page.locator("#detail-title").textContent()).toBe(`Task ${taskId}`);
    expect(await page.locator("#detail-body").textContent()).toContain('"type": "task_assigned"');
    await page.screenshot({ path: path.join(SHOTS, "status-running.png") });
    await page.getByRole("button", { name: "Close" }).click();
    await card.getByText(/^completed · 100%/).waitFor({ timeout: 15_000 });
    // Freed, with a success rate, and the completion counted in this minute's column.
    await botRow.locator("td.current-task", { hasText: "—" }).waitFor({ timeout: 5000 });
    await expect.poll(() => botRow.locator("td.success").textContent()).toMatch(/^\d+% of \d+$/);
    // Its health score as the API gives it (a healthy bot: 1.00, not quarantined).
    expect(await botRow.locator("td.health").textContent()).toBe(localBot.health_score.toFixed(2));
    await expect
      .poll(async () => Number(/(\d+) in 30 min/.exec((await page.locator("#throughput-summary").textContent()) ?? "")?.[1]))
      .toBeGreaterThan(0);
    await page
      .getByRole("status")
      .filter({ hasText: /completed$/ })
      .first()
      .waitFor();
    await page.screenshot({ path: path.join(SHOTS, "status-completed.png"), fullPage: true });

    // Bad input is refused as the API refuses it, and nothing is made.
    await page.getByLabel("Payload (JSON)").fill("{not json");
    await page.getByRole("button", { name: "Create", exact: true }).click();
    await expect.poll(() => page.locator("#create-error").textContent()).toContain("not valid JSON");
    await page.close();
  }, 90_000);

  it("a workflow made from the form runs as a job to the end; bad steps are refused as the API refuses them", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await signIn(page, adminToken);
    const workflowsBefore = (await api("GET", "/api/v1/workflows?limit=200")).body.length;
    await page.getByLabel("Name").fill("page-workflow");
    await page.getByLabel("Capability of every step").fill("echo");
    await page.getByLabel(/^Steps/).fill("{}");
    await page.getByRole("button", { name: "Create workflow" }).click();
    await expect.poll(() => page.locator("#workflow-error").textContent()).toMatch(/^task_payloads: /);
    await page.getByLabel(/^Steps/).fill("[1, 2");
    await page.getByRole("button", { name: "Create workflow" }).click();
    await expect.poll(() => page.locator("#workflow-error").textContent()).toContain("not valid JSON");
    expect((await api("GET", "/api/v1/workflows?limit=200")).body.length).toBe(workflowsBefore);

    await page.getByLabel(/^Steps/).fill('[{"delay_ms": 300}, {"step": 2}, {"step": 3}]');
    await page.getByRole("button", { name: "Create workflow" }).click();
    const card = page.locator("li[data-job]", { hasText: "workflow job" }).first();
    await card.getByText(/^completed · 100%/).waitFor({ timeout: 30_000 });
    const detail = await openDetail(page, card.getByRole("button", { name: "Details" }), /^Job /);
    expect(detail.job).toMatchObject({ status: "completed", progress: 100 });
    expect(detail.events.filter((e: any) => e.type === "step" && e.data.status === "completed")).toHaveLength(3);
    expect((await api("GET", "/api/v1/workflows?limit=200")).body.length).toBe(workflowsBefore + 1);
    await page.close();
  }, 90_000);

  it("a looping job's card says which run of a step it is at: a for_each step's items one after the other", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await signIn(page, adminToken);
    const workflow = (
      await api("POST", "/api/v1/workflows", {
        name: "page-loop",
        capability: "echo",
        steps: [{ payload: { files: ["a", "b"] } }, { payload: { delay_ms: 1200 }, for_each: "steps[0].result.echo.files" }],
      })
    ).body;
    const job = (await api("POST", `/api/v1/workflows/${workflow.id}/execute`)).body;
    const card = jobCard(page, job.id);
    await card.getByText(/^completed · 100%/).waitFor({ timeout: 30_000 });
    await expect.poll(() => card.textContent()).toContain("step 1 item 1: completed");
    expect((await api("GET", `/api/v1/jobs/${job.id}`)).body.result).toEqual([
      { echo: { delay_ms: 1200, item: "a", item_index: 0 } },
      { echo: { delay_ms: 1200, item: "b", item_index: 1 } },
    ]);
    await page.close();
  }, 60_000);

  it("cancel on a running job stops the bot's process", async () => {
    const page = await browser.newPage();
    await signIn(page, adminToken);
    const marker = `status-cancel-${Date.now()}`;
    const job = (
      await api("POST", "/api/v1/jobs", {
        task: {
          capability: "openclaw",
          payload: { handler: "openclaw", project_dir: "cancel.example", prompt: `[openclaw:hang] ${marker}` },
        },
      })
    ).body;
    await until("the openclaw run started", 30_000, async () => running(marker).length > 0);
    const card = jobCard(page, job.id);
    await card.getByText(/^running/).waitFor({ timeout: 15_000 });
    await card.getByRole("button", { name: "Cancel" }).click();
    await card.locator(".status-cancelled").first().waitFor({ timeout: 10_000 });
    await until("the bot's process gone", 10_000, async () => running(marker).length === 0);
    await page.close();
  }, 90_000);

  it("a screenshot a bot uploads during a job appears on the job's card, loaded with the tab's token", async () => {
    const page = await browser.newPage();
    await signIn(page, adminToken);
    const job = (
      await api("POST", "/api/v1/jobs", {
        task: {
          capability: "openclaw",
          payload: { handler: "openclaw", project_dir: "page-shot.example", prompt: "[openclaw:screenshot] [openclaw:slow]" },
        },
      })
    ).body;
    const img = jobCard(page, job.id).locator("img.screenshot");
    await img.waitFor({ timeout: 30_000 });
    await expect
      .poll(() => img.evaluate((node) => (node as unknown as { naturalWidth: number }).naturalWidth), { timeout: 10_000 })
      .toBe(1);
    expect(await img.getAttribute("alt")).toBe("screenshot home.png");
    expect(await img.getAttribute("src")).toMatch(/^blob:/);
    await page.close();
  }, 60_000);

  it("a failed project stands out and can be dismissed", async () => {
    const page = await browser.newPage();
    await signIn(page, adminToken);
    const project = (
      await api("POST", "/api/v1/projects", {
        name: "Broken site",
        domain: "broken-site.example",
        description: "[openclaw:fail]",
        typeId: 1,
      })
    ).body;
    const card = page.locator("#projects li", { hasText: "Broken site" });
    await card.locator(".status-failed").first().waitFor({ timeout: 30_000 });
    expect(await card.getAttribute("class")).toBe("failed");
    await card.getByRole("button", { name: "Dismiss" }).click();
    await expect.poll(() => card.count()).toBe(0);
    expect((await api("GET", `/api/v1/projects/${project.id}`)).body.status).toBe("failed"); // only hidden from this tab
    await page.close();
  }, 60_000);

  it("a deployment advances through its ten stages to READY on the page", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await signIn(page, adminToken);
    const created = await api("POST", "/api/v1/deployments", { name: "status-center-vps" });
    expect(created.status).toBe(202);
    const card = page.locator("#deployments li", { hasText: "status-center-vps" });
    await card.locator(".status-READY").waitFor({ timeout: 60_000 });
    expect(await card.locator(".stages span.done").count()).toBe(10);
    await page.screenshot({ path: path.join(SHOTS, "status-deployment.png"), fullPage: true });
    // Its full record: the deployment, its event log (every stage), its logs.
    const detail = await openDetail(page, card.getByRole("button", { name: "Details" }), /^Deployment /);
    expect(detail.deployment).toMatchObject({ id: created.body.id, status: "READY" });
    expect(detail.events.map((e: any) => e.data?.stage).filter(Boolean)).toContain("setup_complete");
    expect(detail.logs.length).toBeGreaterThan(0);
    await page.close();
  }, 90_000);

  it("after the network drops, the page says so, and when it is back it shows exactly what happened meanwhile", async () => {
    const page = await browser.newPage();
    await signIn(page, adminToken);
    await page.getByText("live", { exact: true }).waitFor();
    proxy.cut();
    await page.getByText("reconnecting…").waitFor({ timeout: 10_000 });
    // While the page is cut off, a job runs to the end (created straight at the coordinator).
    const job = (await api("POST", "/api/v1/jobs", { task: { capability: "echo", payload: { offline: true } } })).body;
    await until("the job completed", 20_000, async () => (await api("GET", `/api/v1/jobs/${job.id}`)).body.status === "completed");
    await page.screenshot({ path: path.join(SHOTS, "status-reconnecting.png") });
    proxy.restore();
    await page.getByText("live", { exact: true }).waitFor({ timeout: 20_000 });
    await jobCard(page, job.id)
      .getByText(/^completed/)
      .waitFor({ timeout: 10_000 });
    await page.close();
  }, 120_000);

  it("first paint with real data is under 1 s with 1,000 tasks and 100 bots in the database", async () => {
    // 100 more bots (registered; the page lists them all) and 1,000 tasks waiting for a capability nobody has.
    for (let i = 0; i < 100; i += 10) {
      await Promise.all(
        Array.from({ length: 10 }, (_, j) => api("POST", "/api/v1/bots", { name: `paint-${i + j}`, capabilities: ["paint"] })),
      );
    }
    for (let i = 0; i < 2; i++) {
      const tasks = Array.from({ length: 500 }, (_, j) => ({ payload: { i, j }, capability: "nobody-has-this" }));
      expect((await api("POST", "/api/v1/tasks/batch", { tasks })).status).toBe(201);
    }
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await signIn(page, adminToken); // signed in once: the token is in this tab's session storage
    const fleetShown = () => page.locator("#bots tr").nth(100).waitFor(); // local-bot, the deployed bot and the 100 new ones
    await fleetShown();
    // Three reloads, each once the page before it has finished loading (no reload racing its own requests).
    const paintsMs: number[] = [];
    for (let i = 0; i < 3; i++) {
      await page.waitForLoadState("networkidle");
      const started = Date.now();
      await page.reload();
      await fleetShown();
      paintsMs.push(Date.now() - started);
    }
    const medianMs = [...paintsMs].sort((a, b) => a - b)[1]!;
    console.log(`Status Center first paint with data: ${paintsMs.join(", ")} ms, median ${medianMs} (102 bots, 1,000 pending tasks)`);
    // The target is 1 s on a quiet machine (the README has the figures); CI runs this beside the other
    // suites on a shared machine, so the check guards against a regression at twice that.
    expect(medianMs).toBeLessThan(2000);
    await page.close();
  }, 90_000);

  it("a viewer sees everything and no action; the page works at phone width", async () => {
    const viewer = (await api("POST", "/api/v1/tokens", { kind: "viewer", name: "status-viewer" })).body.token;
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await signIn(page, viewer);
    await expect.poll(() => page.locator("#role").textContent()).toBe("viewer");
    await page.getByRole("cell", { name: "local-bot" }).waitFor();
    expect(await page.locator("#actions").isHidden()).toBe(true);
    expect(await page.getByRole("button", { name: "Cancel" }).count()).toBe(0);
    expect(await page.getByRole("button", { name: "Tear down" }).count()).toBe(0);
    // Nothing overflows the phone's width.
    expect(
      await page.evaluate(
        () => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth,
      ),
    ).toBeLessThanOrEqual(390);
    await page.screenshot({ path: path.join(SHOTS, "status-phone-viewer.png"), fullPage: true });
    // The token never went into a URL.
    expect(page.url()).not.toContain(viewer);
    await page.close();
  }, 60_000);
});
