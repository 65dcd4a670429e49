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

/** Every process of a process group, read from /proc: its pid, whether it is workerd, its CPU ticks. Null off Linux. */
function groupProcesses(pgid: number): { pid: number; workerd: boolean; ticks: number }[] | null {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  const found: { pid: number; workerd: boolean; ticks: number }[] = [];
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      // Fields after the command (which may hold spaces) in parentheses: state is 3rd, pgrp 5th, utime 14th, stime 15th.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) !== pgid) continue;
      found.push({ pid: Number(pid), workerd: stat.includes("(workerd)"), ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // the process ended between the listing and the read
    }
  }
  return found;
}

export function groupCpuMs(pgid: number): GroupCpu | null {
  const processes = groupProcesses(pgid);
  if (!processes) return null;
  const toMs = (ticks: number) => (ticks * 1000) / TICKS_PER_SECOND;
  const sum = (list: typeof processes) => list.reduce((total, p) => total + p.ticks, 0);
  return { totalMs: toMs(sum(processes)), workerdMs: toMs(sum(processes.filter((p) => p.workerd))) };
}

/** The workerd processes of a process group (`wrangler dev`'s), for a native profile. */
export function workerdPids(pgid: number): number[] {
  return (groupProcesses(pgid) ?? []).filter((p) => p.workerd).map((p) => p.pid);
}
