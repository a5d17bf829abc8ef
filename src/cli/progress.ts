/**
 * What the agent shows a person: one live progress line on a terminal, and a summary.
 */
import { Effect } from "effect"
import type { AgentStats } from "../programs/agent.ts"

const rate = (stats: AgentStats) => (stats.elapsedMillis > 0 ? (stats.succeeded * 1000) / stats.elapsedMillis : 0)

export const progressLine = (stats: AgentStats): string =>
  `done ${stats.succeeded} · in flight ${stats.inFlight} · failed ${stats.failed} · ${rate(stats).toFixed(1)}/s`

/** Redraws the progress line in place (stderr, so stdout stays clean for the summary). */
export const drawProgress = (stats: AgentStats) =>
  Effect.sync(() => void process.stderr.write(`\r\x1b[K${progressLine(stats)}`))

export const clearProgress = Effect.sync(() => void process.stderr.write("\r\x1b[K"))

export const summaryOf = (stats: AgentStats) => ({
  transitions: stats.succeeded,
  failed: stats.failed,
  received: stats.received,
  released: stats.released,
  receiveErrors: stats.receiveErrors,
  seconds: Number((stats.elapsedMillis / 1000).toFixed(2)),
  perSecond: Number(rate(stats).toFixed(1))
})

export const summaryText = (stats: AgentStats): string => {
  const s = summaryOf(stats)
  return `agent: ${s.transitions} transitions in ${s.seconds} s (${s.perSecond}/s), ${s.failed} failed` +
    (s.released > 0 ? `, ${s.released} handed back` : "") +
    (s.receiveErrors > 0 ? `, ${s.receiveErrors} receive errors` : "")
}
