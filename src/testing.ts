/**
 * The test kit (`sqs-state-pipeline/testing`): run records through a pipeline to the end, in
 * memory, with the same agent and engine as production, and see how each ended.
 *
 * ```ts
 * const run = await Effect.runPromise(runPipeline(orders, ["A-1", { id: "A-2", sku: "x" }]))
 * run.done          // the records the router said done for, in their final state
 * run.deadLetters   // each dead letter's reason (error tag), message, step and body
 * run.objects       // what the mutations stored, by key
 * ```
 *
 * Runs on memory layers: a queue with a dead-letter queue (3 receives), a bucket, a transition
 * ledger; the pipeline's own layer on top (or `options.layer` in its stead, for fakes). Retryable
 * failures are retried at once and redelivered without waiting, so a test takes milliseconds.
 */
import { Deferred, Duration, Effect, Layer, type LogLevel, Option, References, Schema } from "effect"
import type { StepFailure } from "./domain/errors.ts"
import type { Pipeline, RuntimeServices } from "./domain/Pipeline.ts"
import { runAgent } from "./programs/agent.ts"
import { DeadLetterAttribute } from "./programs/engine.ts"
import { inProcessRunner } from "./programs/inProcessRunner.ts"
import { parseInputs, produce } from "./programs/producer.ts"
import { EngineSettings } from "./services/EngineSettings.ts"
import { MessageQueue } from "./services/MessageQueue.ts"
import { MemoryQueueControl } from "./services/queue/memory.ts"
import { ObjectStore } from "./services/ObjectStore.ts"
import { MemoryObjectStoreControl } from "./services/objectStore/memory.ts"
import { TransitionLedger } from "./services/TransitionLedger.ts"

/** Make a mutation fail: every time, or its first `times` runs (for one record with `recordId`). */
export interface InjectedFailure {
  readonly mutation: string
  readonly error: StepFailure
  readonly times?: number | undefined
  readonly recordId?: string | undefined
}

export interface RunOptions<R> {
  /** Objects in the bucket before the run, by key. */
  readonly objects?: Readonly<Record<string, Uint8Array | string>> | undefined
  readonly failures?: ReadonlyArray<InjectedFailure> | undefined
  /** Builds the pipeline's own services in place of its layer (fakes of a payment API, say). */
  readonly layer?: Layer.Layer<Exclude<R, RuntimeServices>, unknown, RuntimeServices> | undefined
  /** Receives before a message is dead-lettered (the queue's maxReceiveCount); default 3. */
  readonly maxReceives?: number | undefined
  /** The engine's log lines from this level up; default "None" (a test reads the result instead). */
  readonly logLevel?: LogLevel.LogLevel | undefined
}

export interface DeadLetter {
  /** The error's tag: `SchemaViolation`, `UnknownState`, a mutation's own error... */
  readonly reason: string
  readonly message: string
  /** The mutation that failed, when one did. */
  readonly step: string | undefined
  readonly body: string
}

export interface PipelineRun<Rec> {
  /** The records the router said done for, in their final state, in the order they finished. */
  readonly done: ReadonlyArray<Rec>
  readonly deadLetters: ReadonlyArray<DeadLetter>
  /** The bucket after the run, by key. */
  readonly objects: ReadonlyMap<string, Uint8Array>
  /** Records moved one step. */
  readonly transitions: number
}

const QUEUE = "test-queue"
const DEAD_LETTERS = "test-queue-dlq"

/** The router, with the injected failures in front of the mutations it names, and each done record kept. */
const instrumented = <Rec, E extends StepFailure, R>(
  pipeline: Pipeline<Rec, E, R>,
  failures: ReadonlyArray<InjectedFailure>,
  finished: Map<string, Rec>
): Pipeline<Rec, E | StepFailure, R> => {
  const used = failures.map(() => 0)
  return {
    ...pipeline,
    router: (record) => {
      const route = pipeline.router(record)
      if (route._tag === "Done") finished.set(pipeline.recordId(record), record)
      if (route._tag !== "Mutation") return route
      return {
        ...route,
        run: (input: Rec) => {
          const index = failures.findIndex((failure, i) =>
            failure.mutation === route.name &&
            (failure.recordId === undefined || failure.recordId === pipeline.recordId(input)) &&
            (failure.times === undefined || used[i]! < failure.times)
          )
          if (index === -1) return route.run(input)
          used[index]!++
          return Effect.fail(failures[index]!.error)
        }
      }
    }
  }
}

/**
 * Sends `records` (ids, as `produce` takes them, or records) into a memory queue and runs the
 * pipeline until the queue is empty. Fails if an input is not a valid record for the pipeline.
 */
export const runPipeline = <Rec, E extends StepFailure, R>(
  pipeline: Pipeline<Rec, E, R>,
  records: ReadonlyArray<Rec | string>,
  options: RunOptions<R> = {}
): Effect.Effect<PipelineRun<Rec>, Error> =>
  Effect.gen(function*() {
    const finished = new Map<string, Rec>()
    const run = instrumented(pipeline, options.failures ?? [], finished)
    const inputs = records.map((record, i) => ({
      source: `record ${i + 1}`,
      // an id as `produce` takes it; a record encoded as it travels (left as is when it cannot be, so decoding says why)
      text: typeof record === "string"
        ? record
        : JSON.stringify(Option.getOrElse(Schema.encodeUnknownOption(pipeline.schema)(record), () => record))
    }))
    const { messages, invalid } = parseInputs(run as never, QUEUE, inputs)
    if (invalid.length > 0) {
      return yield* Effect.fail(new Error(invalid.map((bad) => `${bad.source}: ${bad.reason}`).join("\n")))
    }
    const store = yield* ObjectStore
    for (const [key, value] of Object.entries(options.objects ?? {})) {
      yield* store.put(key, typeof value === "string" ? new TextEncoder().encode(value) : value, "application/octet-stream")
    }
    yield* produce(QUEUE, messages)
    const stats = yield* runAgent({ queueUrl: QUEUE, concurrency: 10, untilEmpty: true, waitSeconds: 0, stop: yield* Deferred.make<void>() })
      .pipe(Effect.provide(inProcessRunner(run as never)))
    const letters = (yield* MemoryQueueControl).messages(DEAD_LETTERS)
    const objects = new Map([...(yield* MemoryObjectStoreControl).objects].map(([key, { bytes }]) => [key, bytes]))
    return {
      done: [...finished.values()],
      deadLetters: letters.map((letter): DeadLetter => ({
        reason: letter.attributes[DeadLetterAttribute.tag] ?? "MaxReceiveCountExceeded",
        message: letter.attributes[DeadLetterAttribute.message] ?? "",
        step: letter.attributes[DeadLetterAttribute.step],
        body: letter.body
      })),
      objects,
      transitions: stats.advanced
    }
  }).pipe(
    Effect.provide(
      Layer.provideMerge(
        (options.layer ?? pipeline.layer) as Layer.Layer<never, unknown, RuntimeServices>,
        Layer.mergeAll(
          MessageQueue.layerMemory({
            [QUEUE]: { deadLetterQueueUrl: DEAD_LETTERS, maxReceiveCount: options.maxReceives ?? 3, visibilityTimeout: 0 },
            [DEAD_LETTERS]: {}
          }),
          ObjectStore.layerMemory,
          TransitionLedger.layerMemory,
          EngineSettings.layerWith({ queueUrl: QUEUE, deadLetterQueueUrl: Option.some(DEAD_LETTERS), retryFor: Duration.zero })
        )
      )
    ),
    Effect.provideService(References.MinimumLogLevel, options.logLevel ?? "None"),
    Effect.mapError((error) => (error instanceof Error ? error : new Error(String(error))))
  )
