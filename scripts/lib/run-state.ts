/**
 * What a test or benchmark run leaves in the temporary directory: its coordinator's persisted state
 * (D1, Durable Objects, R2: tens of MB a run, 88 MB for a benchmark's fleet of 10,000 bots) goes when
 * the run stops, unless KEEP_STATE=1 (to look at a failed run). Logs stay: a failed test names its log.
 */
import { existsSync, readdirSync, rmSync } from "node:fs";
import path from "node:path";

export const keepState = () => process.env.KEEP_STATE === "1";

/** Removes `dir` whole (nothing in it is worth keeping once the run is over). */
export function removeRunDir(dir: string): void {
  if (!keepState()) rmSync(dir, { recursive: true, force: true });
}

/** Removes what `dir` holds but its `.log` files (a coordinator's wrangler.log, its bots' logs). */
export function removeRunState(dir: string): void {
  if (keepState() || !existsSync(dir)) return;
  for (const entry of readdirSync(dir)) {
    if (!entry.endsWith(".log")) rmSync(path.join(dir, entry), { recursive: true, force: true });
  }
}
