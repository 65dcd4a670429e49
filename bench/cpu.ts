/**
 * CPU time (user + system, ms) used so far by every process of a process group — `wrangler dev`'s
 * Node process and its workerd — read from /proc (Linux; null elsewhere). The bench reads it before
 * and after a phase to give CPU per task, the figure that sets throughput on a saturated machine.
 */
import { readdirSync, readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ, 100 on every Linux the bench runs on

export interface GroupCpu {
  /** Every process of the group together. */
  totalMs: number;
  /** workerd alone (the Worker, its Durable Objects and the local D1 and storage simulation). */
  workerdMs: number;
}

export function groupCpuMs(pgid: number): GroupCpu | null {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  let total = 0;
  let workerd = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the command (which may hold spaces) in parentheses: state is 3rd, pgrp 5th, utime 14th, stime 15th.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) !== pgid) continue;
      const ticks = Number(fields[11]) + Number(fields[12]);
      total += ticks;
      if (stat.includes("(workerd)")) workerd += ticks;
    } catch {
      // the process ended between the listing and the read
    }
  }
  const toMs = (ticks: number) => (ticks * 1000) / TICKS_PER_SECOND;
  return { totalMs: toMs(total), workerdMs: toMs(workerd) };
}
