#!/usr/bin/env node
/**
 * A local stand-in for the `openclaw` CLI, for `npm start` and the tests.
 *
 *   openclaw run <project dir> --prompt <prompt>
 *     prints "progress N" lines (10 … 100), writes <project dir>/OPENCLAW.md with the prompt, exits 0.
 *     The prompt (it carries the project's description) picks another ending:
 *       [openclaw:fail]  prints an error to stderr and exits 3
 *       [openclaw:hang]  never finishes (until it is killed)
 *       [openclaw:slow]  takes ten times as long
 *       [openclaw:screenshot]  also saves <project dir>/.openclaw/screenshots/home.png (a 1×1 PNG)
 *   openclaw onboard …   (the deployment setup script's call) succeeds.
 *
 * OPENCLAW_STANDIN_STEP_MS sets the pause between progress lines (default 100).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";

const [command, ...rest] = process.argv.slice(2);
/** A 1×1 PNG, the "screenshot" a run saves on request. */
const SCREENSHOT_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function run() {
  const dir = rest[0];
  const promptAt = rest.indexOf("--prompt");
  const prompt = promptAt >= 0 ? rest[promptAt + 1] : undefined;
  if (!dir || prompt === undefined) {
    console.error("usage: openclaw run <project dir> --prompt <prompt>");
    process.exit(2);
  }
  const stepMs = Number(process.env.OPENCLAW_STANDIN_STEP_MS ?? 100) * (prompt.includes("[openclaw:slow]") ? 10 : 1);
  console.log(`openclaw stand-in: initializing ${dir}`);
  for (const percent of [10, 30, 50]) {
    console.log(`progress ${percent}`);
    await sleep(stepMs);
  }
  if (prompt.includes("[openclaw:hang]")) {
    console.log("waiting for a template registry that never answers…");
    await new Promise(() => setInterval(() => {}, 60_000));
  }
  if (prompt.includes("[openclaw:fail]")) {
    console.error("error: could not clone the frontend template (stand-in failure)");
    process.exit(3);
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "OPENCLAW.md"), `# Initialized by the openclaw stand-in\n\n${prompt}\n`);
  if (prompt.includes("[openclaw:screenshot]")) {
    mkdirSync(path.join(dir, ".openclaw", "screenshots"), { recursive: true });
    writeFileSync(path.join(dir, ".openclaw", "screenshots", "home.png"), Buffer.from(SCREENSHOT_PNG, "base64"));
    console.log("saved a screenshot of the home page");
  }
  for (const percent of [80, 100]) {
    console.log(`progress ${percent}`);
    await sleep(stepMs);
  }
  console.log("project initialized");
}

if (command === "run") await run();
else if (command === "onboard") console.log("openclaw stand-in: onboarded");
else {
  console.error(`openclaw stand-in: unknown command ${command ?? "(none)"}`);
  process.exit(2);
}
