/**
 * `npm start`: the thumbnail example end to end on this machine, with no AWS account.
 *
 * Makes a sample image set (no downloads), serves it on 127.0.0.1 so the real download path is
 * used, and runs the demo program (`src/programs/demo.ts`) with the thumbnail pipeline on the
 * embedded queue and bucket: a record per image, the agent until the queue is empty, a summary.
 * A second run continues from the local queue; `--fresh` starts over.
 *
 * It also saves, in the data dir's settings.json, an `IMAGE_SOURCE` that reads the sample images
 * from disk: the server is gone once start ends, and the README's next commands (`produce`,
 * `agent`) should run the example on the same samples without a setting to find first.
 */
import { join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { ConfigProvider, Console, Effect, FileSystem, Layer, Option, Stdio } from "effect"
import { Command, Flag } from "effect/cli"
import {
  makeThumbnailPipeline,
  rawKeyPrefix,
  sizeFlag,
  thumbnailKey,
  type ThumbnailRecord,
  ThumbnailSizesConfig
} from "../pipelines/thumbnails/index.ts"
import { makeSampleImages, type SampleSet, serveImages } from "../pipelines/thumbnails/sampleImages.ts"
import { type DemoOutcome, forgetDemo, produceOnce, runDemo } from "../programs/demo.ts"
import { DataDirConfig } from "../services/DataDir.ts"
import { saveSettings } from "../services/SavedSettings.ts"
import { ObjectStore } from "../services/ObjectStore.ts"
import { defaultConcurrency, root, UsageError } from "./commands.ts"
import { localBackendsFor } from "./layers.ts"
import { clearProgress, drawProgress, summaryOf } from "./progress.ts"
import { graceful } from "./graceful.ts"

/**
 * A thumbnail record's state as the bucket shows it, once its messages are gone: `has_raw` if its
 * raw image is there, `size_N` for each width the pipeline was built with whose thumbnail is there.
 */
const recordInBucket = (sizes: ReadonlyArray<number>) => (stockNo: string) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    const raw = yield* store.list(rawKeyPrefix(stockNo))
    const made = yield* Effect.forEach(sizes, (size) => Effect.map(store.head(thumbnailKey(size, stockNo)), Option.isSome))
    const record: ThumbnailRecord = {
      stock_no: stockNo,
      has_raw: raw.length > 0,
      ...Object.fromEntries(sizes.map((size, i) => [sizeFlag(size), made[i]!]))
    }
    return record
  })

/** A record of this run worth tracing: the first dead-lettered one (its body names it), else the first. */
export const recordToTrace = (outcome: DemoOutcome, ids: ReadonlyArray<string>): string | undefined => {
  for (const letter of outcome.deadLetters) {
    try {
      const stockNo: unknown = JSON.parse(letter.body)?.stock_no
      if (typeof stockNo === "string" && ids.includes(stockNo)) return stockNo
    } catch {
      // not a record of this run
    }
  }
  return ids[0]
}

/**
 * The samples by stock number alone (`by-stock-no/STK000003` for `STK000003.png`; hard links), so
 * that one `file://` template finds JPEGs and PNGs alike (the type is read from the bytes).
 * Made again each run: a sample made again is a new file.
 */
const samplesByStockNo = (samples: SampleSet) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const folder = join(samples.folder, "by-stock-no")
    yield* fs.remove(folder, { recursive: true, force: true })
    yield* fs.makeDirectory(folder, { recursive: true })
    for (const image of samples.images) yield* fs.link(join(samples.folder, image.file), join(folder, image.stockNo))
    return `${pathToFileURL(folder).href}/{stock_no}`
  })

/** How the user runs the command line: this project's npm script, or the installed package's bin. */
const cli = process.env["npm_package_name"] === "sqs-state-pipeline" ? "npm run cli --" : "npx sqs-state-pipeline"

export const summaryText = (outcome: DemoOutcome, traceable?: string): string => {
  const summary = summaryOf(outcome.stats)
  const dead = outcome.deadLetterCount
  return [
    `records done:        ${outcome.done} of ${outcome.records}`,
    `dead-letter queue:   ${dead}`,
    ...outcome.deadLetters.map((letter) =>
      `  ${letter.body}  ${letter.reason}` + (letter.errorMessage === undefined ? "" : `: ${letter.errorMessage}`)
    ),
    `time:                ${summary.seconds} s (${summary.transitions} transitions)`,
    ...Object.entries(summary.steps).map(([step, { averageMillis, runs }]) => `  ${step.padEnd(18)} ${runs} runs, ${averageMillis} ms on average`),
    `thumbnails made:     ${outcome.made} (${(outcome.made / Math.max(summary.seconds, 0.001)).toFixed(1)}/s)`,
    `thumbnails on disk:  ${outcome.outputAt}`,
    "",
    "next:",
    `  ${cli} status       the queue and the dead letters by reason`,
    ...(dead > 0
      ? [
        `  ${cli} dlq list     each dead letter with its reason and record`,
        `  ${cli} dlq redrive  send them back once the cause is fixed`
      ]
      : []),
    ...(traceable === undefined ? [] : [`  ${cli} trace ${traceable}  that record's history, step by step`])
  ].join("\n")
}

export const start = Command.make(
  "start",
  {
    count: Flag.Int("count").pipe(Flag.withDescription("How many sample records"), Flag.withDefault(20)),
    fresh: Flag.Boolean("fresh").pipe(Flag.withDescription("Forget the local queue and bucket first"), Flag.withDefault(false))
  },
  Effect.fn("cli.start")(function*(flags) {
    if (flags.count < 1) return yield* new UsageError({ message: "--count must be at least 1" })
    const asked = (yield* root).pipeline
    if (Option.isSome(asked) && asked.value !== "thumbnails") {
      return yield* new UsageError({
        message: `npm start runs the thumbnail example only; run ${asked.value} with produce and agent (--pipeline ${asked.value})`
      })
    }
    const dataDir = resolve(yield* DataDirConfig)
    if (flags.fresh) yield* forgetDemo(dataDir)
    const samples = yield* makeSampleImages(join(dataDir, "samples"), { count: flags.count })
    const server = yield* serveImages(samples.folder)
    yield* saveSettings(dataDir, { IMAGE_SOURCE: yield* samplesByStockNo(samples) })
    yield* Console.error(`${samples.images.length} sample images in ${samples.folder}, served at ${server.baseUrl}`)

    const sizes = yield* ThumbnailSizesConfig
    const pipeline = makeThumbnailPipeline(sizes)
    const stockNos = samples.images.map((image) => image.stockNo)
    // the embedded backends whatever the environment says, and the images from this server; each
    // record's steps in one pass, the raw image kept for them to read (unless the environment says
    // otherwise): where run-ahead pays, quick steps next to a queue round trip each
    const services = Layer.provideMerge(pipeline.layer, localBackendsFor(pipeline.name)).pipe(
      Layer.provide(ConfigProvider.layerAdd(ConfigProvider.fromUnknown({ IMAGE_SOURCE: server.imageSource }), { asPrimary: true })),
      Layer.provide(ConfigProvider.layerAdd(ConfigProvider.fromUnknown({ PIPELINE_RUN_AHEAD: "30 seconds", PIPELINE_OBJECT_CACHE: "64 MiB" })))
    )
    const interactive = yield* (yield* Stdio.Stdio).stderrIsTerminal

    // the summary is printed inside: after a stop by signal, nothing after `graceful` runs
    yield* graceful((stop) =>
      Effect.gen(function*() {
        const { produced, records } = yield* produceOnce(pipeline, dataDir, stockNos)
        yield* Console.error(produced > 0 ? `produced ${produced} records` : `continuing: all ${records} records were produced before`)
        const outcome = yield* runDemo(pipeline, {
          ids: stockNos,
          stateOf: recordInBucket(sizes),
          outputFolder: "thumbnails",
          concurrency: defaultConcurrency,
          stop,
          onProgress: interactive ? drawProgress : undefined
        })
        if (interactive) yield* clearProgress
        yield* Console.log(summaryText(outcome, recordToTrace(outcome, stockNos)))
      }).pipe(Effect.provide(services))
    )
  }, Effect.scoped)
).pipe(Command.withDescription("Run the thumbnail example on this machine: sample images, producer, agent, summary"))
