/**
 * The command line: `agent` and `produce` over the same backends and handler as Lambda.
 */
import { availableParallelism } from "node:os"
import { resolve } from "node:path"
import { Console, Effect, FileSystem, Layer, Option, type PlatformError, Runtime, Schema, Stdio, Stream } from "effect"
import { Argument, CliError, Command, Flag } from "effect/cli"
import type { AnyPipeline } from "../domain/Pipeline.ts"
import { defaultPipelineName } from "../pipelines/index.ts"
import { BATCH_WINDOW_ACCEPTED, BatchWindowSetting, parseBatchWindow, runAgent } from "../programs/agent.ts"
import { inProcessRunner } from "../programs/inProcessRunner.ts"
import { EngineSettings } from "../services/EngineSettings.ts"
import { linesOf, parseInputs, produce, type ProducerInput } from "../programs/producer.ts"
import { backendsFor } from "./layers.ts"
import { BatchRunner } from "../services/BatchRunner.ts"
import { loadPipeline, StartedIn } from "./loadPipeline.ts"
import { clearProgress, drawProgress, summaryOf, summaryText } from "./progress.ts"
import { graceful } from "./graceful.ts"

/** A command used wrongly: said in one line, exit 2. */
export class UsageError extends Schema.TaggedError<UsageError>()("UsageError", { message: Schema.String }) {
  override readonly [Runtime.errorExitCode] = 2
  override get [CliError.userMessage]() {
    return this.message
  }
}
export class ProduceFailed extends Schema.TaggedError<ProduceFailed>()("ProduceFailed", { message: Schema.String }) {}

const PositiveInt = Schema.Int.pipe(Schema.check(Schema.isGreaterThan(0)))

/** The agent's work is mostly waiting on the network: several messages per core keep it busy. */
export const defaultConcurrency = Math.max(10, 5 * availableParallelism())

export const root = Command.make("sqs-state-pipeline").pipe(
  Command.withSharedFlags({
    pipeline: Flag.String("pipeline").pipe(
      Flag.withDescription(`A built-in pipeline by name, or the path of a module exporting one (default: $PIPELINE_NAME, else ${defaultPipelineName})`),
      Flag.optional
    )
  }),
  Command.withDescription("State-machine pipelines on SQS and Lambda, or on this machine")
)

/** The backends from the environment, with the pipeline's own services on top. */
const servicesFor = (pipeline: AnyPipeline) => Layer.provideMerge(pipeline.layer, backendsFor(pipeline.name))

export const agent = Command.make(
  "agent",
  {
    concurrency: Flag.Int("concurrency").pipe(
      Flag.withDescription(`Messages in flight at most (default ${defaultConcurrency})`),
      Flag.withSchema(PositiveInt),
      Flag.withDefault(defaultConcurrency)
    ),
    untilEmpty: Flag.Boolean("until-empty").pipe(
      Flag.withDescription("Exit when the queue and the work in flight are empty"),
      Flag.withDefault(false)
    ),
    lambda: Flag.String("lambda").pipe(
      Flag.withDescription("Invoke this deployed Lambda function instead of running the handler here"),
      Flag.optional
    ),
    waitSeconds: Flag.Int("wait-seconds").pipe(
      Flag.withDescription("Long-poll wait, 0 to 20"),
      Flag.withDefault(20)
    ),
    batchWindow: Flag.String("batch-window").pipe(
      Flag.withDescription(
        `Gather a batch for up to this long before running it, such as "1 second", at most 300 seconds (default: $PIPELINE_BATCH_WINDOW, else 0: run what each receive brings)`
      ),
      Flag.optional
    )
  },
  Effect.fn("cli.agent")(function*(flags) {
    const pipeline = yield* loadPipeline((yield* root).pipeline)
    if (flags.waitSeconds < 0 || flags.waitSeconds > 20) {
      return yield* new UsageError({ message: "--wait-seconds must be between 0 and 20" })
    }
    // --batch-window, else PIPELINE_BATCH_WINDOW, both held to one rule
    const windowText = Option.getOrUndefined(flags.batchWindow)
    const batchWindow = windowText === undefined ? yield* BatchWindowSetting : Option.getOrUndefined(parseBatchWindow(windowText))
    if (batchWindow === undefined) {
      return yield* new UsageError({ message: `--batch-window must be ${BATCH_WINDOW_ACCEPTED}, got ${JSON.stringify(windowText)}` })
    }
    const interactive = yield* (yield* Stdio.Stdio).stderrIsTerminal
    const runner = Option.isSome(flags.lambda) ? BatchRunner.layerLambda(flags.lambda.value) : inProcessRunner(pipeline)
    yield* graceful((stop) =>
      Effect.gen(function*() {
        const { queueUrl } = yield* EngineSettings
        yield* Effect.logInfo(`agent: ${pipeline.name} on ${queueUrl}, ${flags.concurrency} in flight at most`)
        const stats = yield* runAgent({
          queueUrl,
          concurrency: flags.concurrency,
          untilEmpty: flags.untilEmpty,
          waitSeconds: flags.waitSeconds,
          batchWindow,
          stop,
          onProgress: interactive ? drawProgress : undefined,
          progressEvery: "250 millis"
        }).pipe(Effect.provide(runner))
        if (interactive) {
          yield* clearProgress
          yield* Console.log(summaryText(stats))
        } else {
          yield* Effect.logInfo("agent summary").pipe(Effect.annotateLogs(summaryOf(stats)))
        }
      }).pipe(Effect.provide(servicesFor(pipeline)))
    )
  })
).pipe(Command.withDescription("Long-poll the queue and run each batch through the handler, like Lambda's event source mapping"))

/** Why a file or stdin could not be read, as the system said it (`ENOENT: no such file or directory, open '...'`). */
const why = (error: PlatformError.PlatformError) => (error.reason.cause instanceof Error ? error.reason.cause.message : error.message)

/** The records to produce: the arguments, else `--file`, else stdin (JSON Lines), each input named for messages. */
const readInputs = (records: ReadonlyArray<string>, file: Option.Option<string>) =>
  Effect.gen(function*() {
    if (Option.isSome(file)) {
      const path = resolve(yield* StartedIn, file.value)
      const content = yield* FileSystem.FileSystem.use((fs) => fs.readFileString(path)).pipe(
        Effect.mapError((error) => new UsageError({ message: `cannot read ${file.value}: ${why(error)}` }))
      )
      return linesOf(content, file.value)
    }
    if (records.length > 0) return records.map((text, i): ProducerInput => ({ source: `argument ${i + 1}`, text }))
    const stdio = yield* Stdio.Stdio
    if (yield* stdio.stdinIsTerminal) {
      return yield* new UsageError({ message: "give ids or JSON records as arguments, --file with JSON Lines, or JSON Lines on stdin" })
    }
    const content = yield* stdio.stdin.pipe(
      Stream.decodeText,
      Stream.mkString,
      Effect.mapError((error) => new UsageError({ message: `cannot read stdin: ${why(error)}` }))
    )
    return linesOf(content, "stdin")
  })

export const produceCommand = Command.make(
  "produce",
  {
    records: Argument.String("record").pipe(
      Argument.withDescription("Ids (each becomes the pipeline's initial record) or JSON records"),
      Argument.variadic()
    ),
    file: Flag.String("file").pipe(Flag.withDescription("A JSON Lines file of records"), Flag.optional),
    skipInvalid: Flag.Boolean("skip-invalid").pipe(
      Flag.withDescription("Send the valid records even if some are invalid"),
      Flag.withDefault(false)
    )
  },
  Effect.fn("cli.produce")(function*(flags) {
    const pipeline = yield* loadPipeline((yield* root).pipeline)
    const inputs = yield* readInputs(flags.records, flags.file)
    yield* Effect.gen(function*() {
      const { queueUrl } = yield* EngineSettings
      const { messages, invalid } = parseInputs(pipeline, queueUrl, inputs)
      for (const bad of invalid) yield* Console.error(`${bad.source}: ${bad.reason}`)
      if (invalid.length > 0 && !flags.skipInvalid) {
        return yield* new ProduceFailed({
          message: `${invalid.length} of ${inputs.length} inputs are invalid; nothing was sent (--skip-invalid sends the rest)`
        })
      }
      const result = yield* produce(queueUrl, messages)
      for (const failure of result.failed) yield* Console.error(`not sent: ${failure.body}: ${failure.reason}`)
      yield* Console.log(`sent ${result.sent} records to ${queueUrl}` + (invalid.length > 0 ? ` (${invalid.length} invalid skipped)` : ""))
      if (result.failed.length > 0) return yield* new ProduceFailed({ message: `${result.failed.length} records were not sent` })
    }).pipe(Effect.provide(backendsFor(pipeline.name)))
  })
).pipe(Command.withDescription("Push initial state records into the queue"))
