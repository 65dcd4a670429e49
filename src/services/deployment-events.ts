/**
 * What a deployment's watchers see: every log line of its stage machine as a
 * `log` event, and its status/stage as `status` (with `complete` once READY or
 * ERROR), published after the guarded write that made them; the fleet stream
 * gets a `deployment` summary when its status changes.
 */
import { isTerminalStatus } from "../core/deployment-machine";
import { streamName } from "../core/stream";
import { type DeploymentEventInput, type DeploymentPatch, writeDeployment } from "../db/deployments";
import type { Ctx } from "./context";
import { publish, publishFleet } from "./streams";

/** `writeDeployment`, then (if it won) the stream. */
export async function writeAndPublish(
  ctx: Ctx,
  id: string,
  readUpdatedAt: number,
  patch: DeploymentPatch,
  logLines: DeploymentEventInput[],
  nowMs: number,
): Promise<boolean> {
  if (!(await writeDeployment(ctx.db, id, readUpdatedAt, patch, logLines, nowMs))) return false;
  const events = logLines.map((e) => ({
    type: "log" as const,
    data: { deployment_id: id, level: e.level ?? "info", type: e.type, stage: e.stage, message: e.message },
  }));
  let state: Record<string, unknown> | undefined;
  if (patch.status !== undefined || patch.stage !== undefined) {
    // Only what this write changed: the stream merges it into the state it keeps.
    state = { deployment_id: id, status: patch.status, stage: patch.stage, error: patch.error };
    for (const k of Object.keys(state)) if (state[k] === undefined) delete state[k];
    events.push({ type: "status", data: state } as never);
    if (patch.status && isTerminalStatus(patch.status)) events.push({ type: "complete", data: state } as never);
  }
  await publish(ctx, streamName("deployment", id), events, state);
  if (patch.status !== undefined) await publishFleet(ctx, { type: "deployment", data: state! });
  return true;
}
