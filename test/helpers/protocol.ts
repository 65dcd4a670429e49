/** Checks of the bot protocol over a socket's message log, shared by the Workers-pool and Node-pool tests. */

/**
 * Protocol violations in one socket's log: a `task_assigned` that arrives while
 * the bot still holds an earlier task (one not yet acknowledged as settled, nor
 * cancelled). Empty means the bot was never offered two tasks at once.
 */
export function overlappingAssignments(log: any[]): string[] {
  const violations: string[] = [];
  let holding: string | null = null;
  for (const m of log) {
    if (m.type === "task_assigned") {
      if (holding && holding !== m.payload.task_id) violations.push(`${m.payload.task_id} assigned while ${holding} was held`);
      holding = m.payload.task_id;
    } else if ((m.type === "task_ack" && m.payload.status !== "in_progress") || m.type === "task_cancelled") {
      if (m.payload.task_id === holding) holding = null;
    }
  }
  return violations;
}
