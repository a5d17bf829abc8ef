/**
 * `npm run bench:engine`: transitions per second through the engine with in-memory layers, next
 * to a hand-written baseline doing the same work without Effect (parse, validate, route, mutate,
 * stringify, hash the transition, hand the successor to a queue stand-in), in one run.
 */
import { createHash } from "node:crypto"
import { Effect, Layer } from "effect"
import { initialTransition, toAttributes } from "../src/domain/transition.ts"
import { greetingPipeline } from "../src/pipelines/greeting.ts"
import { processBatch } from "../src/programs/engine.ts"
import { EngineSettings } from "../src/services/EngineSettings.ts"
import { MemoryQueueControl } from "../src/services/queue/memory.ts"
import type { QueueMessage } from "../src/domain/messages.ts"
import { MessageQueue } from "../src/services/MessageQueue.ts"

const BATCHES = Number(process.env["BENCH_BATCHES"] ?? 2000)
const ROUNDS = 5

const batch = (round: number, index: number): ReadonlyArray<QueueMessage> =>
  Array.from({ length: 10 }, (_, i) => {
    const record = { id: `r${round}-${index}-${i}` }
    return {
      messageId: `m${index}-${i}`,
      receiptHandle: `h${index}-${i}`,
      body: JSON.stringify(record),
      attributes: toAttributes(initialTransition(record.id, record)),
      receiveCount: 1
    }
  })

const inputs = (round: number) => Array.from({ length: BATCHES }, (_, index) => batch(round, index))

// --- the engine, with the memory queue ---------------------------------------------------------
const engineRound = (batches: ReadonlyArray<ReadonlyArray<QueueMessage>>) =>
  Effect.gen(function*() {
    const run = processBatch(greetingPipeline)
    const control = yield* MemoryQueueControl
    const started = performance.now()
    for (const messages of batches) yield* run(messages)
    const elapsed = performance.now() - started
    if (control.messages("bench").length !== batches.length * 10) throw new Error("engine lost successors")
    return elapsed
  }).pipe(Effect.provide(Layer.mergeAll(MessageQueue.layerMemory(), EngineSettings.layerWith({ queueUrl: "bench" }))))

// --- the baseline: the same steps by hand --------------------------------------------------------
const baselineRound = (batches: ReadonlyArray<ReadonlyArray<QueueMessage>>) => {
  const sent: Array<{ body: string; attributes: Record<string, string> }> = []
  const started = performance.now()
  for (const messages of batches) {
    for (const message of messages) {
      const record = JSON.parse(message.body) as Record<string, unknown>
      if (typeof record !== "object" || record === null) throw new Error("not a record")
      for (const key of ["id", "greeting", "name"]) {
        if (record[key] !== undefined && typeof record[key] !== "string") throw new Error(`bad ${key}`)
      }
      const step = Number(message.attributes["pipeline.step"] ?? 0)
      let next: Record<string, unknown> | undefined
      if (record["greeting"] === undefined) next = { ...record, greeting: "hello" }
      else if (record["name"] === undefined) next = { ...record, name: "world" }
      if (next === undefined) continue
      const body = JSON.stringify(next)
      const sorted = JSON.stringify(Object.fromEntries(Object.entries(next).sort(([a], [b]) => (a < b ? -1 : 1))))
      const transitionId = createHash("sha256").update(String(next["id"] ?? "")).update("\u0000").update(sorted).digest("hex")
      sent.push({
        body,
        attributes: {
          "pipeline.step": String(step + 1),
          "pipeline.trace_id": message.attributes["pipeline.trace_id"] ?? message.messageId,
          "pipeline.transition_id": transitionId
        }
      })
    }
  }
  const elapsed = performance.now() - started
  if (sent.length !== batches.length * 10) throw new Error("baseline lost successors")
  return elapsed
}

const transitions = BATCHES * 10
const results = { engine: [] as Array<number>, baseline: [] as Array<number> }
for (let round = 0; round < ROUNDS; round++) {
  results.baseline.push(baselineRound(inputs(round)))
  results.engine.push(await Effect.runPromise(engineRound(inputs(round))))
}

const best = (times: ReadonlyArray<number>) => Math.min(...times.slice(1)) // the first round warms up
const row = (name: string, ms: number) =>
  `${name.padEnd(10)} ${(transitions / (ms / 1000)).toFixed(0).padStart(10)} ${((ms * 1000) / transitions).toFixed(2).padStart(10)}`

console.log(`${transitions} transitions (greeting, batches of 10) x ${ROUNDS} rounds, best of rounds 2-${ROUNDS}, node ${process.version}`)
console.log(`${"".padEnd(10)} ${"per second".padStart(10)} ${"µs each".padStart(10)}`)
console.log(row("engine", best(results.engine)))
console.log(row("baseline", best(results.baseline)))
console.log(`engine / baseline time: ${(best(results.engine) / best(results.baseline)).toFixed(1)}x`)
