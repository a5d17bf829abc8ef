/**
 * `npm start`: the thumbnail example end to end on this machine, with no AWS account.
 *
 * Makes a sample image set (no downloads), serves it on 127.0.0.1 so the real download path is
 * used, produces a record per image, runs the agent until the queue is empty, and prints what
 * happened. A second run continues from the local queue; `--fresh` starts over.
 */
import { readFile, rm, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import { Config, ConfigProvider, Console, Effect, Layer, Schema } from "effect"
import { Command, Flag } from "effect/cli"
import { thumbnailPipelineConfig } from "../pipelines/thumbnails/index.ts"
import { runAgent } from "../programs/agent.ts"
import { inProcessRunner } from "../programs/inProcessRunner.ts"
import { parseInputs, produce } from "../programs/producer.ts"
import { makeSampleImages, serveImages } from "../pipelines/thumbnails/sampleImages.ts"
import { localBackendsLayer } from "./layers.ts"
import { LOCAL_QUEUE } from "../services/EngineSettings.ts"
import { DataDirConfig } from "../services/DataDir.ts"
import { deadLetterQueueName } from "../services/queue/local.ts"
import { ObjectStore } from "../services/ObjectStore.ts"
import type { QueueMessage } from "../domain/messages.ts"
import { MessageQueue } from "../services/MessageQueue.ts"
import { defaultConcurrency } from "./commands.ts"
import { clearProgress, drawProgress, summaryOf } from "./progress.ts"
import { graceful } from "./graceful.ts"

class StartFailed extends Schema.TaggedError<StartFailed>()("StartFailed", { message: Schema.String }) {}

/** Reads every message of the dead-letter queue without taking them off it. */
const peekAll = Effect.fn("peekAll")(function*(queueUrl: string) {
  const queue = yield* MessageQueue
  const seen: Array<QueueMessage> = []
  while (true) {
    const batch = yield* queue.receive(queueUrl, { maxMessages: 10, visibilityTimeout: 30 })
    if (batch.length === 0) break
    seen.push(...batch)
  }
  yield* queue.changeVisibility(queueUrl, seen.map((m, i) => ({ id: `p${i}`, receiptHandle: m.receiptHandle })), 0)
  return seen
})

export const start = Command.make(
  "start",
  {
    count: Flag.Int("count").pipe(Flag.withDescription("How many sample records"), Flag.withDefault(20)),
    fresh: Flag.Boolean("fresh").pipe(Flag.withDescription("Forget the local queue and bucket first"), Flag.withDefault(false))
  },
  Effect.fn("cli.start")(function*(flags) {
    if (flags.count < 1) return yield* new StartFailed({ message: "--count must be at least 1" })
    const dataDir = resolve(yield* DataDirConfig)
    if (flags.fresh) {
      yield* Effect.promise(() => Promise.all(["queue.sqlite", "queue.sqlite-wal", "queue.sqlite-shm", "bucket", "produced.json"].map((name) =>
        rm(join(dataDir, name), { recursive: true, force: true })
      )))
    }
    const samples = yield* makeSampleImages(join(dataDir, "samples"), { count: flags.count })
    const server = yield* serveImages(samples.folder)
    yield* Console.error(`${samples.images.length} sample images in ${samples.folder}, served at ${server.baseUrl}`)

    const pipeline = yield* thumbnailPipelineConfig
    const services = Layer.provideMerge(pipeline.layer, localBackendsLayer).pipe(
      Layer.provide(ConfigProvider.layerAdd(ConfigProvider.fromUnknown({ IMAGE_SOURCE: server.imageSource }), { asPrimary: true }))
    )
    const interactive = process.stderr.isTTY === true

    yield* graceful((stop) => Effect.gen(function*() {
      const store = yield* ObjectStore
      // a record is produced once per data dir: a second run only continues the queue
      const marker = "produced.json"
      const already = new Set<string>(yield* Effect.tryPromise(() =>
        readFile(join(dataDir, marker), "utf8").then((text) => JSON.parse(text) as Array<string>)
      ).pipe(Effect.orElseSucceed(() => [])))
      const fresh = samples.images.filter((image) => !already.has(image.stockNo))
      const { messages, invalid } = parseInputs(pipeline, LOCAL_QUEUE, fresh.map((image) => ({ source: image.stockNo, text: image.stockNo })))
      if (invalid.length > 0) return yield* new StartFailed({ message: `invalid sample records: ${invalid.map((i) => i.reason).join("; ")}` })
      const produced = yield* produce(LOCAL_QUEUE, messages)
      yield* Effect.tryPromise(() =>
        writeFile(join(dataDir, marker), JSON.stringify([...already, ...fresh.map((image) => image.stockNo)]))
      ).pipe(Effect.orDie)
      yield* Console.error(
        produced.sent > 0 ? `produced ${produced.sent} records` : `continuing: all ${samples.images.length} records were produced before`
      )

      const sizes = (yield* Config.String("THUMBNAIL_SIZES").pipe(Config.withDefault("100,200"))).split(",").map((s) => Number(s.trim()))
      const thumbnailsBefore = (yield* store.list("thumbnails/")).length
      const stats = yield* runAgent({
          queueUrl: LOCAL_QUEUE,
          concurrency: defaultConcurrency,
          untilEmpty: true,
          waitSeconds: 1,
          stop,
          onProgress: interactive ? drawProgress : undefined,
          progressEvery: "250 millis"
        }).pipe(Effect.provide(inProcessRunner(pipeline)))
      if (interactive) yield* clearProgress
      const thumbnails = yield* store.list("thumbnails/")
      const smallest = Math.min(...sizes)
      const done = thumbnails.filter((object) => object.key.startsWith(`thumbnails/${smallest}/`)).length
      const dead = yield* peekAll(deadLetterQueueName(LOCAL_QUEUE))
      const summary = summaryOf(stats)
      const made = thumbnails.length - thumbnailsBefore
      yield* Console.log([
        `records done:        ${done} of ${samples.images.length}`,
        `dead-letter queue:   ${dead.length}`,
        ...dead.map((message) => `  ${message.body}  ${message.attributes["error.tag"]}: ${message.attributes["error.message"]}`),
        `time:                ${summary.seconds} s (${summary.transitions} transitions)`,
        `thumbnails made:     ${made} (${(made / Math.max(summary.seconds, 0.001)).toFixed(1)}/s)`,
        `thumbnails on disk:  ${join(store.location, "thumbnails")}`,
        "",
        "next:",
        "  npm run cli -- status       the queue and the dead letters by reason",
        ...(dead.length > 0
          ? [
            "  npm run cli -- dlq list     each dead letter with its reason and record",
            "  npm run cli -- dlq redrive  send them back once the cause is fixed"
          ]
          : [])
      ].join("\n"))
    }).pipe(Effect.provide(services)))
  }, Effect.scoped)
).pipe(Command.withDescription("Run the thumbnail example on this machine: sample images, producer, agent, summary"))
