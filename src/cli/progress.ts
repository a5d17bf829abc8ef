/**
 * What the agent shows a person: one live progress line on a terminal, and a summary. Both count
 * records (done, dead-lettered, handed back for a retry) as well as transitions (steps taken).
 */
import { Effect } from "effect"
import type { AgentStats } from "../programs/agent.ts"

const rate = (stats: AgentStats) => (stats.elapsedMillis > 0 ? (stats.advanced * 1000) / stats.elapsedMillis : 0)

export const progressLine = (stats: AgentStats): string =>
  `done ${stats.done} · dead-lettered ${stats.deadLettered} · retried ${stats.failed} · ` +
  `transitions ${stats.advanced} · in flight ${stats.inFlight} · ${rate(stats).toFixed(1)}/s`

/** Redraws the progress line in place (stderr, so stdout stays clean for the summary). */
export const drawProgress = (stats: AgentStats) =>
  Effect.sync(() => void process.stderr.write(`\r\x1b[K${progressLine(stats)}`))

export const clearProgress = Effect.sync(() => void process.stderr.write("\r\x1b[K"))

/** The summary as data (the agent's last log line when not on a terminal); `summaryText` says the same. */
export const summaryOf = (stats: AgentStats) => ({
  done: stats.done,
  deadLettered: stats.deadLettered,
  retried: stats.failed,
  duplicates: stats.duplicates,
  transitions: stats.advanced,
  received: stats.received,
  released: stats.released,
  receiveErrors: stats.receiveErrors,
  seconds: Number((stats.elapsedMillis / 1000).toFixed(2)),
  perSecond: Number(rate(stats).toFixed(1)),
  // what the Lambda handler's metrics say per step and per dead-letter reason
  steps: Object.fromEntries(
    Array.from(stats.steps, ([step, { millis, runs }]) => [step, { runs, averageMillis: Number((millis / Math.max(runs, 1)).toFixed(1)) }])
  ),
  deadLetteredBy: Object.fromEntries(stats.deadLetteredBy)
})

const plural = (count: number, one: string, many: string) => `${count} ${count === 1 ? one : many}`

export const summaryText = (stats: AgentStats): string => {
  const s = summaryOf(stats)
  return `agent: ${plural(s.done, "record", "records")} done, ${s.deadLettered} dead-lettered, ${s.retried} retried; ` +
    `${plural(s.transitions, "transition", "transitions")} in ${s.seconds} s (${s.perSecond}/s)` +
    (s.duplicates > 0 ? `, ${plural(s.duplicates, "duplicate", "duplicates")} skipped` : "") +
    (s.released > 0 ? `, ${s.released} handed back` : "") +
    (s.receiveErrors > 0 ? `, ${s.receiveErrors} receive errors` : "") +
    Object.entries(s.steps).map(([step, { averageMillis, runs }]) => `\n  ${step}: ${plural(runs, "run", "runs")}, ${averageMillis} ms on average`)
      .join("") +
    (s.deadLettered > 0 && Object.keys(s.deadLetteredBy).length > 0
      ? `\n  dead-lettered: ${Object.entries(s.deadLetteredBy).map(([reason, count]) => `${count} ${reason}`).join(", ")}`
      : "")
}
