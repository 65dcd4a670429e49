/**
 * What `npm start` leaves behind if it is killed with SIGKILL (or its terminal
 * dies): `workerd`, the relay and locally deployed bots run in process groups
 * of their own and would keep their ports. Each run records its groups in a
 * pid file; the next run stops whatever of them is still alive first. A group
 * is only signalled if one of its processes still runs a command we started
 * there (the recorded markers), so a recycled id of someone else's group is
 * never touched.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";

export interface RecordedGroup {
  /** The process group id (the children were spawned detached, each leading its group). */
  pgid: number;
  /** What it is, for the log. */
  what: string;
  /** Strings the command line of a member contains (a script or binary path). */
  markers: string[];
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ");
  } catch {
    return ""; // gone (or a zombie)
  }
}

/** Live processes of a group (read from /proc: the leader may be dead while members live on). */
function members(pgid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid pgrp …"; comm may contain spaces, so split after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[2]) === pgid && fields[0] !== "Z") out.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

const ours = (g: RecordedGroup) => members(g.pgid).filter((pid) => g.markers.some((m) => commandLine(pid).includes(m)));

/** Stops the groups a previous run recorded and that are still alive; returns what it stopped. */
export async function stopLeftovers(pidFile: string, log: (msg: string) => void): Promise<string[]> {
  if (!existsSync(pidFile)) return [];
  let groups: RecordedGroup[] = [];
  try {
    groups = JSON.parse(readFileSync(pidFile, "utf8")) as RecordedGroup[];
  } catch {
    log(`ignoring an unreadable ${pidFile}`);
  }
  const stopped: string[] = [];
  for (const g of groups) {
    const pids = ours(g);
    if (!pids.length) continue;
    log(`stopping ${g.what} (process group ${g.pgid}) left running by an earlier npm start`);
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    stopped.push(g.what);
  }
  // Bounded wait until they are gone and their ports are free.
  for (let i = 0; i < 50 && groups.some((g) => ours(g).length > 0); i++) await new Promise((r) => setTimeout(r, 100));
  rmSync(pidFile, { force: true });
  return stopped;
}

export function recordGroups(pidFile: string, groups: RecordedGroup[]): void {
  writeFileSync(pidFile, JSON.stringify(groups, null, 2));
}
