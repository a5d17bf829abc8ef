/**
 * The demo `npm start` runs: a pipeline over a set of sample ids, in a data dir, on whatever
 * backends its layers give (the embedded queue and bucket for `npm start`). Each step returns
 * what happened; the runtime prints it. Like every program it imports no pipeline: the runtime
 * passes one in, with how to see a record's state once its messages are gone.
 *
 * - `forgetDemo`: what `--fresh` removes (the embedded queue's file, the bucket, the demo's marker).
 * - `produceOnce`: a record per id, once per data dir (a second run continues the queue).
 * - `runDemo`: the agent until the queue is empty, then the outcome: records done (the pipeline's
 *   router says so of each record's state), the dead letters with their reasons, objects made.
 */
import { join } from "node:path"
import { type Deferred, Effect, FileSystem, Option, Schema } from "effect"
import type { AnyPipeline } from "../domain/Pipeline.ts"
import { EngineSettings } from "../services/EngineSettings.ts"
import { ObjectStore } from "../services/ObjectStore.ts"
import { DATABASE_FILE } from "../services/SqliteFile.ts"
import { type AgentStats, runAgent } from "./agent.ts"
import { type DeadLetter, peekDeadLetters } from "./deadLetters.ts"
import { inProcessRunner } from "./inProcessRunner.ts"
import { parseInputs, produce } from "./producer.ts"

export class DemoFailed extends Schema.TaggedError<DemoFailed>()("DemoFailed", { message: Schema.String }) {}

/** The ids produced so far in a data dir, so that a second run only continues. */
const MARKER = "produced.json"
const Produced = Schema.fromJsonString(Schema.Array(Schema.String))

/** `--fresh`: the embedded queue (and ledger) file, the local bucket and the marker go; anything else stays. */
// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const forgetDemo = Effect.fn("forgetDemo")(function*(dataDir: string) {
  const fs = yield* FileSystem.FileSystem
  for (const name of [DATABASE_FILE, `${DATABASE_FILE}-wal`, `${DATABASE_FILE}-shm`, "bucket", MARKER]) {
    yield* fs.remove(join(dataDir, name), { recursive: true, force: true })
  }
})

/** Produces the initial record of each id not produced before in `dataDir`. */
// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const produceOnce = Effect.fn("produceOnce")(function*(pipeline: AnyPipeline, dataDir: string, ids: ReadonlyArray<string>) {
  const fs = yield* FileSystem.FileSystem
  const { queueUrl } = yield* EngineSettings
  const marker = join(dataDir, MARKER)
  // no marker yet, or one that cannot be read: nothing was produced
  const text = yield* fs.readFileString(marker).pipe(Effect.option)
  const already = new Set(Option.getOrElse(Option.flatMap(text, Schema.decodeUnknownOption(Produced)), () => []))
  const fresh = ids.filter((id) => !already.has(id))
  const { messages, invalid } = parseInputs(pipeline, queueUrl, fresh.map((id) => ({ source: id, text: id })))
  if (invalid.length > 0) return yield* new DemoFailed({ message: `invalid sample records: ${invalid.map((i) => i.reason).join("; ")}` })
  const result = yield* produce(queueUrl, messages)
  yield* fs.writeFileString(marker, JSON.stringify([...already, ...fresh]))
  return { produced: result.sent, records: ids.length }
})

/** How many of `ids` the router says are done, given each record's state. */
// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const recordsDone = Effect.fn("recordsDone")(function*<E, R>(
  pipeline: AnyPipeline,
  ids: ReadonlyArray<string>,
  stateOf: (id: string) => Effect.Effect<unknown, E, R>
) {
  const states = yield* Effect.forEach(ids, stateOf)
  return states.filter((state) => pipeline.router(state)._tag === "Done").length
})

export interface DemoOptions<E, R> {
  /** The records of the demo, by id. */
  readonly ids: ReadonlyArray<string>
  /** A record's state as it can be seen after the run (the messages of a record that is done are gone). */
  readonly stateOf: (id: string) => Effect.Effect<unknown, E, R>
  /** The folder of the bucket where the pipeline puts what a person looks at (e.g. `thumbnails`): counted before and after. */
  readonly outputFolder: string
  readonly concurrency: number
  readonly stop: Deferred.Deferred<void>
  readonly onProgress?: ((stats: AgentStats) => Effect.Effect<void>) | undefined
}

export interface DemoOutcome {
  readonly stats: AgentStats
  /** Of `records`, how many are done. */
  readonly done: number
  readonly records: number
  /** How many dead letters the DLQ holds, and the ones looked at (all of them unless there are very many). */
  readonly deadLetterCount: number
  readonly deadLetters: ReadonlyArray<DeadLetter>
  /** Objects in the output folder written by this run. */
  readonly made: number
  /** Where those objects are, for people. */
  readonly outputAt: string
}

/** Dead letters read for the summary; the count is exact regardless. */
const DEAD_LETTERS_SHOWN = 1000

/** Runs the agent on the pipeline's queue until it is empty (or `stop`), then says how it went. */
// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const runDemo = Effect.fn("runDemo")(function*<E, R>(pipeline: AnyPipeline, options: DemoOptions<E, R>) {
  const store = yield* ObjectStore
  const { queueUrl } = yield* EngineSettings
  const output = store.list(`${options.outputFolder}/`)
  const before = (yield* output).length
  const stats = yield* runAgent({
    queueUrl,
    concurrency: options.concurrency,
    untilEmpty: true,
    waitSeconds: 1,
    stop: options.stop,
    onProgress: options.onProgress,
    progressEvery: "250 millis"
  }).pipe(Effect.provide(inProcessRunner(pipeline)))
  const after = (yield* output).length
  const dead = yield* peekDeadLetters(DEAD_LETTERS_SHOWN)
  return {
    stats,
    done: yield* recordsDone(pipeline, options.ids, options.stateOf),
    records: options.ids.length,
    deadLetterCount: dead.count,
    deadLetters: dead.letters,
    made: after - before,
    outputAt: join(store.location, options.outputFolder)
  } satisfies DemoOutcome
})
