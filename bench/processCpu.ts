/** CPU time of another process (a server the benches start), read from /proc: Linux only. */
import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"

const CLOCK_TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100

/** CPU seconds a process has used (user + system, all its threads). */
export const cpuSeconds = (pid: number) => {
  // the fields after the command name, which is in parentheses and may hold spaces
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}
