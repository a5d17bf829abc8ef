/**
 * `npm run bench:engine`: transitions per second through the engine (no ledger; the peers' queue
 * stand-in), next to two peers doing the same work without Effect (parse, validate, route, mutate,
 * stringify, hash the transition, hand the successor to a queue stand-in), in one run:
 * - a hand-written loop over the messages, the least any code can do;
 * - the handler a user would write instead of this project: `@aws-lambda-powertools/batch`'s
 *   `BatchProcessor` with `processPartialResponse` over the SQS event Lambda would pass (records in
 *   parallel, its default; the partial batch response), the same steps in its record handler, and
 *   the successors of the batch sent to the stand-in in one call, as the engine sends them.
 * Then the record schema's share of a transition (decode a body, encode the new state), compiled
 * as the engine runs it and interpreted, alternating in this process.
 */
import { hash } from "node:crypto"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { BatchProcessor, EventType, processPartialResponse } from "@aws-lambda-powertools/batch"
import { Effect, Layer, Schema } from "effect"
import { toSqsEvent } from "../src/domain/sqsEvent.ts"
import { initialTransition, toAttributes } from "../src/domain/transition.ts"
import { Greeting, greetingPipeline } from "../src/pipelines/greeting.ts"
import { compileRecordSchema, processBatch } from "../src/programs/engine.ts"
import { EngineSettings } from "../src/services/EngineSettings.ts"
import type { OutgoingMessage, QueueMessage } from "../src/domain/messages.ts"
import { MessageQueue } from "../src/services/MessageQueue.ts"

const BATCHES = Number(process.env["BENCH_BATCHES"] ?? 2000)
// best of the rounds after the first: on a shared machine the best of a few is still noisy
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 10)

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

/** A round's wall time and its process CPU time (user + system), in ms: on a busy machine the second says more. */
interface Timing {
  readonly wall: number
  readonly cpu: number
}
const startTimer = () => {
  const wall = performance.now()
  const cpu = process.cpuUsage()
  return (): Timing => {
    const used = process.cpuUsage(cpu)
    return { wall: performance.now() - wall, cpu: (used.user + used.system) / 1000 }
  }
}

const inputs = (round: number) => Array.from({ length: BATCHES }, (_, index) => batch(round, index))

// --- the engine, with the peers' queue stand-in -------------------------------------------------
/**
 * The peers' stand-in as a `MessageQueue`: it keeps the entries it is given and answers each as
 * sent. Not the memory queue, which also makes a stored message with a new id, a receive count and
 * a visibility time for each (for the tests that receive them again): work the peers' stand-in
 * does not do, so the engine paid for a better queue, not for itself. Synchronous, as the memory
 * queue was; the peers' `await` of an answered promise costs a microtask a batch.
 */
const standInQueue = (sent: Array<OutgoingMessage>) =>
  Layer.succeed(
    MessageQueue,
    MessageQueue.of({
      send: (_queueUrl, entries) =>
        Effect.sync(() => {
          sent.push(...entries)
          return { successful: entries.map((entry) => entry.id), failed: [] }
        }),
      receive: () => Effect.die("not used by this benchmark"),
      delete: () => Effect.die("not used by this benchmark"),
      changeVisibility: () => Effect.die("not used by this benchmark"),
      attributes: () => Effect.die("not used by this benchmark")
    })
  )

const engineRound = (batches: ReadonlyArray<ReadonlyArray<QueueMessage>>) => {
  const sent: Array<OutgoingMessage> = []
  return Effect.gen(function*() {
    const run = processBatch(greetingPipeline)
    const stop = startTimer()
    for (const messages of batches) yield* run(messages)
    const elapsed = stop()
    if (sent.length !== batches.length * 10) throw new Error("engine lost successors")
    return elapsed
  }).pipe(Effect.provide(Layer.mergeAll(standInQueue(sent), EngineSettings.layerWith({ queueUrl: "bench" }))))
}

// --- the peers: the same steps by hand --------------------------------------------------------
interface Successor {
  readonly body: string
  readonly attributes: Record<string, string>
}

/** One message's work: its successor, or none when the record is done. */
const handStep = (body: string, attributes: Readonly<Record<string, string | undefined>>, messageId: string): Successor | undefined => {
  const record = JSON.parse(body) as Record<string, unknown>
  if (typeof record !== "object" || record === null) throw new Error("not a record")
  for (const key of ["id", "greeting", "name"]) {
    if (record[key] !== undefined && typeof record[key] !== "string") throw new Error(`bad ${key}`)
  }
  const step = Number(attributes["pipeline.step"] ?? 0)
  let next: Record<string, unknown> | undefined
  if (record["greeting"] === undefined) next = { ...record, greeting: "hello" }
  else if (record["name"] === undefined) next = { ...record, name: "world" }
  if (next === undefined) return undefined
  const sorted = JSON.stringify(Object.fromEntries(Object.entries(next).sort(([a], [b]) => (a < b ? -1 : 1))))
  // the one-shot hash, as the engine's transitionId: neither side wins by its hashing API
  const transitionId = hash("sha256", `${String(next["id"] ?? "")}\u0000${sorted}`, "hex")
  return {
    body: JSON.stringify(next),
    attributes: {
      "pipeline.step": String(step + 1),
      "pipeline.trace_id": attributes["pipeline.trace_id"] ?? messageId,
      "pipeline.transition_id": transitionId
    }
  }
}

const baselineRound = (batches: ReadonlyArray<ReadonlyArray<QueueMessage>>) => {
  const sent: Array<Successor> = []
  const stop = startTimer()
  for (const messages of batches) {
    for (const message of messages) {
      const next = handStep(message.body, message.attributes, message.messageId)
      if (next !== undefined) sent.push(next)
    }
  }
  const elapsed = stop()
  if (sent.length !== batches.length * 10) throw new Error("baseline lost successors")
  return elapsed
}

type SqsEvent = ReturnType<typeof toSqsEvent>
type SqsRecord = SqsEvent["Records"][number]

/** The queue stand-in, asynchronous as an SQS client is: one call for a batch's successors. */
const sendStandIn = (sent: Array<Successor>) => async (entries: ReadonlyArray<Successor>) => {
  sent.push(...entries)
}

/** A Lambda handler on Powertools' batch utility: each record through `handStep`, the batch's successors sent at the end. */
const powertoolsHandler = (send: (entries: ReadonlyArray<Successor>) => Promise<void>) => {
  const processor = new BatchProcessor(EventType.SQS)
  return async (event: SqsEvent) => {
    const successors: Array<Successor> = []
    const recordHandler = async (record: SqsRecord) => {
      const attributes = Object.fromEntries(Object.entries(record.messageAttributes).map(([name, value]) => [name, value.stringValue]))
      const next = handStep(record.body, attributes, record.messageId)
      if (next !== undefined) successors.push(next)
    }
    const response = await processPartialResponse(event, recordHandler, processor)
    await send(successors)
    return response
  }
}

const powertoolsRound = async (events: ReadonlyArray<SqsEvent>) => {
  const sent: Array<Successor> = []
  const handler = powertoolsHandler(sendStandIn(sent))
  let failures = 0
  const stop = startTimer()
  for (const event of events) failures += (await handler(event)).batchItemFailures.length
  const elapsed = stop()
  if (failures > 0 || sent.length !== events.length * 10) throw new Error("powertools peer lost successors")
  return elapsed
}

const transitions = BATCHES * 10
const results = { engine: [] as Array<Timing>, baseline: [] as Array<Timing>, powertools: [] as Array<Timing> }
// a full collection before each timed run, so that none pays for the garbage of the one before it
setFlagsFromString("--expose-gc")
const collectGarbage = runInNewContext("gc") as () => void
/** A side's input, made just before its run and collected after it: no side's run marks another's input. */
const fresh = <A>(make: () => A): A => {
  const input = make()
  collectGarbage()
  return input
}
const sides: ReadonlyArray<(round: number) => Promise<void>> = [
  async (round) => void results.baseline.push(baselineRound(fresh(() => inputs(round)))),
  async (round) => void results.powertools.push(await powertoolsRound(fresh(() => inputs(round).map((messages) => toSqsEvent(messages))))),
  async (round) => void results.engine.push(await Effect.runPromise(engineRound(fresh(() => inputs(round)))))
]
for (let round = 0; round < ROUNDS; round++) {
  // each round starts with another side: none is always the one that runs after the others
  for (let i = 0; i < sides.length; i++) await sides[(round + i) % sides.length]!(round)
}

// the first round warms up
const best = (timings: ReadonlyArray<Timing>, of: keyof Timing = "wall") => Math.min(...timings.slice(1).map((timing) => timing[of]))
const row = (name: string, timings: ReadonlyArray<Timing>) => {
  const ms = best(timings)
  return `${name.padEnd(12)} ${(transitions / (ms / 1000)).toFixed(0).padStart(10)} ${((ms * 1000) / transitions).toFixed(2).padStart(10)} ${
    ((best(timings, "cpu") * 1000) / transitions).toFixed(2).padStart(10)
  }`
}

console.log(`${transitions} transitions (greeting, batches of 10) x ${ROUNDS} rounds, best of rounds 2-${ROUNDS}, node ${process.version}`)
console.log(`${"".padEnd(12)} ${"per second".padStart(10)} ${"µs each".padStart(10)} ${"CPU µs".padStart(10)}`)
console.log(row("engine", results.engine))
console.log(row("powertools", results.powertools))
console.log(row("hand loop", results.baseline))
console.log(
  `engine / powertools time: ${(best(results.engine) / best(results.powertools)).toFixed(2)}x (goal: ≤ 1), CPU time: ${
    (best(results.engine, "cpu") / best(results.powertools, "cpu")).toFixed(2)
  }x`
)
// on a busy machine each side's best may come from a quieter moment than the other's: the two runs
// of one round are next to each other in time, so the middle of the rounds' own ratios says more
const medianRatio = (of: keyof Timing) => {
  const ratios = results.engine.slice(1).map((timing, round) => timing[of] / results.powertools[round + 1]![of]).sort((a, b) => a - b)
  const middle = ratios.length >> 1
  return ratios.length % 2 === 1 ? ratios[middle]! : (ratios[middle - 1]! + ratios[middle]!) / 2
}
console.log(`engine / powertools, median of the rounds' ratios: time ${medianRatio("wall").toFixed(2)}x, CPU time ${medianRatio("cpu").toFixed(2)}x`)
console.log(`engine / hand loop time: ${(best(results.engine) / best(results.baseline)).toFixed(1)}x`)

// the record schema's part of a transition (a body decoded, a new state encoded), compiled as the
// engine has it and interpreted (a copy of the schema Effect was not asked to compile), alternating
// in this process: separate runs of the whole bench drift more than the difference
const interpretedGreeting = Schema.Struct({
  id: Schema.optionalKey(Schema.String),
  greeting: Schema.optionalKey(Schema.String),
  name: Schema.optionalKey(Schema.String)
})
compileRecordSchema(Greeting)
const schemaCost = (schema: typeof Greeting) => {
  const decode = Schema.decodeUnknownExit(schema)
  const encode = Schema.encodeExit(schema)
  const bodies = Array.from({ length: 100_000 }, (_, i) => ({ id: `r${i}` }))
  return () => {
    const started = performance.now()
    for (const body of bodies) {
      const decoded = decode(body)
      if (decoded._tag === "Success") encode({ ...decoded.value, greeting: "hello" })
    }
    return ((performance.now() - started) * 1000) / bodies.length
  }
}
const compiledCost = schemaCost(Greeting)
const interpretedCost = schemaCost(interpretedGreeting)
const costs = { compiled: Infinity, interpreted: Infinity }
for (let round = 0; round < 10; round++) {
  costs.compiled = Math.min(costs.compiled, compiledCost())
  costs.interpreted = Math.min(costs.interpreted, interpretedCost())
}
console.log(
  `record schema, decode + encode per transition: ${costs.compiled.toFixed(2)} µs compiled (as the engine runs it), ` +
    `${costs.interpreted.toFixed(2)} µs interpreted`
)
