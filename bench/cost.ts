/**
 * `npm run bench:cost`: what a million thumbnail records cost on AWS, by design, from counts this
 * run measures.
 *
 * It runs the thumbnail pipeline (download, raw image to the bucket, two thumbnails) the way the
 * agent runs it (runAgent + the in-process handler, batches of up to 10 from a backlog) on the
 * local backends, with every service counted where it is called: SQS requests as SqsQueue makes
 * them (a send, delete or visibility change of n entries is ceil(n/10) requests), S3 requests by
 * object store call (put = PUT, get = GET, head = HEAD, list = LIST), DynamoDB ledger writes (a
 * claim is one PutItem, an ending one UpdateItem: one write unit each for these small items), and
 * the handler's wall time per batch. Images come from files (file:// source), so the duration is
 * the steps' own work and no network's. Then, per million records:
 * - the original design: one Lambda invoke per message, three SQS requests per message (receive,
 *   send, delete), the same work per message as measured, no ledger;
 * - this project, one step per pass: the requests, invokes and duration measured;
 * - this project with run-ahead (a 30 s budget) and the object cache (32 MiB; the requests counted
 *   below it), measured the same way, when the engine has it (its settings have `runAhead`,
 *   PIPELINE_RUN_AHEAD); "not implemented" otherwise;
 * - the same state machine on Step Functions, one Task state per mutation invoking a Lambda with
 *   one record (the router's choices known in advance: no Choice states), then Succeed. Standard
 *   pays per state transition; Express per execution and its duration (the tasks' time, 64 MB).
 *
 * Duration is measured on this machine; a 128 MB function has 128/1769 of a vCPU, so CPU-bound
 * steps take longer there: the table prices the duration as measured, and a last line says what
 * it comes to if the steps were that much slower (the comparison between designs does not change:
 * they all do the same work).
 *
 * Options (environment): BENCH_IMAGES (sample set size, default 20), THUMBNAIL_SIZES (default 100,200).
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { ConfigProvider, Deferred, Duration, Effect, FileSystem, Layer } from "effect"
import { NodeServices } from "@effect/platform-node"
import { MAX_BATCH } from "../src/domain/messages.ts"
import { makeThumbnailPipeline, ThumbnailSizesConfig, ThumbnailSteps } from "../src/pipelines/thumbnails/index.ts"
import { makeSampleImages } from "../src/pipelines/thumbnails/sampleImages.ts"
import { runAgent } from "../src/programs/agent.ts"
import { inProcessRunner } from "../src/programs/inProcessRunner.ts"
import { BatchRunner } from "../src/services/BatchRunner.ts"
import { EngineSettings } from "../src/services/EngineSettings.ts"
import { MessageQueue } from "../src/services/MessageQueue.ts"
import { ObjectStore } from "../src/services/ObjectStore.ts"
import { TransitionLedger } from "../src/services/TransitionLedger.ts"

const IMAGES = Number(process.env["BENCH_IMAGES"] ?? 20)
const QUEUE = "thumbnails"
const MILLION = 1_000_000

// --- prices ----------------------------------------------------------------------------------------
// US East (N. Virginia), on-demand, no free tier, as published on the pages below; checked 2026-11-30.
const PRICE = {
  /** https://aws.amazon.com/sqs/pricing/ — standard queue, per request (a 64 KB chunk of a payload is a request). */
  sqsRequest: 0.40 / MILLION,
  /** https://aws.amazon.com/lambda/pricing/ — per invoke, either architecture. */
  lambdaInvoke: 0.20 / MILLION,
  /** https://aws.amazon.com/lambda/pricing/ — Arm, first 7.5 billion GB-s a month, billed per 1 ms. */
  lambdaArmGbSecond: 0.0000133334,
  /** https://aws.amazon.com/dynamodb/pricing/on-demand/ — per write request unit (since the November 2024 cut). */
  dynamoWrite: 0.625 / MILLION,
  /** https://aws.amazon.com/s3/pricing/ — S3 Standard, PUT, COPY, POST, LIST per request. */
  s3Put: 0.005 / 1000,
  /** https://aws.amazon.com/s3/pricing/ — S3 Standard, GET, SELECT and all other requests (HEAD). */
  s3Get: 0.0004 / 1000,
  /** https://aws.amazon.com/step-functions/pricing/ — Standard workflows, per state transition. */
  sfnStandardTransition: 0.025 / 1000,
  /** https://aws.amazon.com/step-functions/pricing/ — Express workflows, per execution (request). */
  sfnExpressRequest: 1.00 / MILLION,
  /** https://aws.amazon.com/step-functions/pricing/ — Express, first 1,000 hours' worth of GB-s, memory in 64 MB chunks, duration rounded up to 100 ms. */
  sfnExpressGbSecond: 0.00001667
} as const
const LAMBDA_GB = 128 / 1024
const EXPRESS_GB = 64 / 1024
/** A 128 MB function's share of a vCPU (a full one at 1,769 MB). */
const CPU_SHARE_128 = 128 / 1769

type Counts = Record<string, number>
const add = (counts: Counts, key: string, n = 1) => {
  counts[key] = (counts[key] ?? 0) + n
}
const total = (counts: Counts) => Object.values(counts).reduce((sum, n) => sum + n, 0)
const requestsFor = (entries: number) => Math.ceil(entries / MAX_BATCH)

interface Measured {
  readonly records: number
  readonly sqs: Counts
  readonly s3: Counts
  ledgerWrites: number
  /** Handler wall time of each batch, ms. */
  readonly batchMillis: Array<number>
  /** Messages of each batch. */
  readonly batchSizes: Array<number>
  readonly transitions: number
  readonly done: number
  /** Messages handled per mutation run (steps that ran a mutation, not the done passes). */
  readonly steps: number
}

/** The services below, counted where they are called. */
const counting = (measured: Measured) => {
  const queue = Layer.effect(
    MessageQueue,
    MessageQueue.use((inner) =>
      Effect.succeed(MessageQueue.of({
        send: (url, messages) => Effect.andThen(Effect.sync(() => add(measured.sqs, "SendMessageBatch", requestsFor(messages.length))), inner.send(url, messages)),
        receive: (url, options) => Effect.andThen(Effect.sync(() => add(measured.sqs, "ReceiveMessage")), inner.receive(url, options)),
        delete: (url, entries) => Effect.andThen(Effect.sync(() => add(measured.sqs, "DeleteMessageBatch", requestsFor(entries.length))), inner.delete(url, entries)),
        changeVisibility: (url, entries, seconds) =>
          Effect.andThen(Effect.sync(() => add(measured.sqs, "ChangeMessageVisibilityBatch", requestsFor(entries.length))), inner.changeVisibility(url, entries, seconds)),
        attributes: (url) => Effect.andThen(Effect.sync(() => add(measured.sqs, "GetQueueAttributes")), inner.attributes(url))
      })))
  )
  const store = Layer.effect(
    ObjectStore,
    ObjectStore.use((inner) =>
      Effect.succeed(ObjectStore.of({
        location: inner.location,
        put: (key, body, contentType) => Effect.andThen(Effect.sync(() => add(measured.s3, "PUT")), inner.put(key, body, contentType)),
        get: (key) => Effect.andThen(Effect.sync(() => add(measured.s3, "GET")), inner.get(key)),
        head: (key) => Effect.andThen(Effect.sync(() => add(measured.s3, "HEAD")), inner.head(key)),
        list: (prefix) => Effect.andThen(Effect.sync(() => add(measured.s3, "LIST")), inner.list(prefix))
      })))
  )
  const ledger = Layer.effect(
    TransitionLedger,
    TransitionLedger.use((inner) =>
      Effect.succeed(TransitionLedger.of({
        ...inner,
        claim: (claims) => Effect.andThen(Effect.sync(() => (measured.ledgerWrites += claims.length)), inner.claim(claims)),
        finish: (finishes) => Effect.andThen(Effect.sync(() => (measured.ledgerWrites += finishes.length)), inner.finish(finishes))
      })))
  )
  return { queue, store, ledger }
}

/** The whole sample set through the agent on the local backends, counted. */
const measure = (
  imageSource: string,
  stockNumbers: ReadonlyArray<string>,
  sizes: ReadonlyArray<number>,
  runAhead?: { readonly budget: Duration.Duration; readonly cacheBytes: number }
) =>
  Effect.gen(function*() {
    const dataDir = mkdtempSync(join(tmpdir(), "bench-cost-"))
    const measured: Measured = { records: stockNumbers.length, sqs: {}, s3: {}, ledgerWrites: 0, batchMillis: [], batchSizes: [], transitions: 0, done: 0, steps: 0 }
    const pipeline = makeThumbnailPipeline(sizes)
    const { queue, store, ledger } = counting(measured)
    const backends = Layer.mergeAll(
      queue.pipe(Layer.provide(MessageQueue.layerLocal({ directory: dataDir, visibilityTimeout: 60 }))),
      // the cache above the count: what it serves costs no request
      runAhead === undefined
        ? store.pipe(Layer.provide(ObjectStore.layerLocal(join(dataDir, "bucket"))))
        : ObjectStore.withRecentObjects(store.pipe(Layer.provide(ObjectStore.layerLocal(join(dataDir, "bucket")))), runAhead.cacheBytes),
      ledger.pipe(Layer.provide(TransitionLedger.layerLocal(dataDir))),
      // run-ahead's budget, for an engine that has it (an engine that does not ignores it)
      EngineSettings.layerWith({ queueUrl: QUEUE, retryFor: Duration.seconds(5), ...(runAhead === undefined ? {} : { runAhead: runAhead.budget }) })
    )
    const services = ThumbnailSteps.layer.pipe(
      Layer.provideMerge(backends),
      Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ IMAGE_SOURCE: imageSource })))
    )
    return yield* Effect.gen(function*() {
      const q = yield* MessageQueue
      // seeded as `produce` sends them: not counted
      const seeded = stockNumbers.map((stockNo, i) => ({ id: `s${i}`, body: JSON.stringify(pipeline.initialRecord(stockNo)) }))
      yield* q.send(QUEUE, seeded)
      for (const key of Object.keys(measured.sqs)) delete measured.sqs[key]
      const inner = yield* BatchRunner
      const timed = BatchRunner.of({
        run: (messages) =>
          Effect.suspend(() => {
            const started = performance.now()
            return inner.run(messages).pipe(Effect.ensuring(Effect.sync(() => {
              measured.batchMillis.push(performance.now() - started)
              measured.batchSizes.push(messages.length)
            })))
          })
      })
      const stop = yield* Deferred.make<void>()
      const stats = yield* runAgent({ queueUrl: QUEUE, concurrency: MAX_BATCH, untilEmpty: true, waitSeconds: 1, stop }).pipe(
        Effect.provideService(BatchRunner, timed)
      )
      if (stats.done !== stockNumbers.length || stats.failed > 0 || stats.deadLettered > 0) {
        return yield* Effect.die(new Error(`expected ${stockNumbers.length} records done, got ${JSON.stringify(stats)}`))
      }
      return { ...measured, transitions: stats.succeeded, done: stats.done, steps: stats.advanced }
    }).pipe(
      Effect.provide(Layer.provideMerge(inProcessRunner(pipeline), services)),
      Effect.ensuring(Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
    )
  })

// --- the designs ------------------------------------------------------------------------------------
interface PerRecord {
  readonly sqsRequests: number
  readonly invokes: number
  /** Billed Lambda ms (each invoke rounded up to 1 ms). */
  readonly lambdaMillis: number
  readonly ledgerWrites: number
  readonly s3Put: number
  readonly s3Get: number
  readonly sfnTransitions: number
  readonly sfnExpressRequests: number
  /** Express duration billed, s (each execution rounded up to 100 ms). */
  readonly sfnExpressSeconds: number
}

const costOf = (r: PerRecord, slowdown = 1) => {
  const items = {
    sqs: r.sqsRequests * PRICE.sqsRequest,
    lambda: r.invokes * PRICE.lambdaInvoke + (r.lambdaMillis * slowdown / 1000) * LAMBDA_GB * PRICE.lambdaArmGbSecond,
    dynamo: r.ledgerWrites * PRICE.dynamoWrite,
    s3: r.s3Put * PRICE.s3Put + r.s3Get * PRICE.s3Get,
    sfn: r.sfnTransitions * PRICE.sfnStandardTransition + r.sfnExpressRequests * PRICE.sfnExpressRequest +
      r.sfnExpressSeconds * slowdown * EXPRESS_GB * PRICE.sfnExpressGbSecond
  }
  return { ...items, total: Object.values(items).reduce((a, b) => a + b, 0) }
}

/** The run-ahead budget the row with run-ahead measures (a Lambda's remaining time bounds it too), with the object cache (PIPELINE_OBJECT_CACHE). */
const RUN_AHEAD = { budget: Duration.seconds(30), cacheBytes: 32 * 1024 * 1024 }

const thisProject = (m: Measured): PerRecord => ({
  s3Put: (((m.s3["PUT"] ?? 0) + (m.s3["LIST"] ?? 0)) / m.records),
  s3Get: (((m.s3["GET"] ?? 0) + (m.s3["HEAD"] ?? 0)) / m.records),
  sfnTransitions: 0,
  sfnExpressRequests: 0,
  sfnExpressSeconds: 0,
  sqsRequests: total(m.sqs) / m.records,
  invokes: m.batchMillis.length / m.records,
  lambdaMillis: m.batchMillis.reduce((sum, ms) => sum + Math.ceil(ms), 0) / m.records,
  ledgerWrites: m.ledgerWrites / m.records
})

const designs = (m: Measured, ahead: Measured | undefined) => {
  const perRecord = (n: number) => n / m.records
  const messagesPerRecord = perRecord(m.transitions)
  const stepsPerRecord = perRecord(m.steps)
  const batches = m.batchMillis.length
  const handlerMillis = m.batchMillis.reduce((a, b) => a + b, 0)
  const millisPerMessage = handlerMillis / m.transitions
  const { s3Put, s3Get } = thisProject(m)
  const same = { s3Put, s3Get, sfnTransitions: 0, sfnExpressRequests: 0, sfnExpressSeconds: 0 }
  // a Task state's work: the mutation's share of the measured time (done passes cost next to nothing)
  const taskMillis = handlerMillis / Math.max(1, m.steps)
  const rows: Array<readonly [string, PerRecord | string]> = [
    ["original design (1 invoke + 3 SQS requests a message)", {
      ...same,
      sqsRequests: 3 * messagesPerRecord,
      invokes: messagesPerRecord,
      lambdaMillis: messagesPerRecord * Math.ceil(millisPerMessage),
      ledgerWrites: 0
    }],
    ["this project, one step per pass (measured)", thisProject(m)],
    [
      `this project, run-ahead ${Duration.format(RUN_AHEAD.budget)} + 32 MiB cache (measured)`,
      ahead === undefined ? "not implemented: the engine has no PIPELINE_RUN_AHEAD yet" : thisProject(ahead)
    ],
    ["Step Functions Standard (a Task a mutation, Succeed)", {
      ...same,
      sqsRequests: 0,
      invokes: stepsPerRecord,
      lambdaMillis: stepsPerRecord * Math.ceil(taskMillis),
      ledgerWrites: 0,
      sfnTransitions: stepsPerRecord + 1
    }],
    ["Step Functions Express (the same, 64 MB)", {
      ...same,
      sqsRequests: 0,
      invokes: stepsPerRecord,
      lambdaMillis: stepsPerRecord * Math.ceil(taskMillis),
      ledgerWrites: 0,
      sfnExpressRequests: 1,
      sfnExpressSeconds: Math.ceil((stepsPerRecord * taskMillis) / 100) / 10
    }]
  ]
  return { rows, messagesPerRecord, stepsPerRecord, batches, handlerMillis }
}

const dollars = (value: number) => `$${(value * MILLION).toFixed(2)}`

const program = Effect.gen(function*() {
  const sizes = yield* ThumbnailSizesConfig
  const set = yield* makeSampleImages(join(tmpdir(), `pipeline-bench-samples-${IMAGES}`), { count: IMAGES })
  const images = set.images.filter((image) => !image.broken)
  // one file:// template for JPEGs and PNGs alike: hard links by stock number, as npm start makes them
  const fs = yield* FileSystem.FileSystem
  const byStockNo = join(set.folder, "by-stock-no")
  yield* fs.remove(byStockNo, { recursive: true, force: true })
  yield* fs.makeDirectory(byStockNo, { recursive: true })
  for (const image of images) yield* fs.link(join(set.folder, image.file), join(byStockNo, image.stockNo))
  const imageSource = `${pathToFileURL(byStockNo).href}/{stock_no}`

  // a warm-up pass (module loading, sharp's first use), then the measured one
  yield* measure(imageSource, images.map((image) => image.stockNo), sizes)
  const m = yield* measure(imageSource, images.map((image) => image.stockNo), sizes)
  // the engine's settings say whether it has run-ahead
  const hasRunAhead = yield* EngineSettings.use((settings) => Effect.succeed("runAhead" in settings)).pipe(
    Effect.provide(EngineSettings.layerWith({ queueUrl: QUEUE }))
  )
  const ahead = hasRunAhead ? yield* measure(imageSource, images.map((image) => image.stockNo), sizes, RUN_AHEAD) : undefined
  const { rows, messagesPerRecord, stepsPerRecord, batches, handlerMillis } = designs(m, ahead)

  console.log(
    `thumbnail pipeline, ${m.records} records (widths ${sizes.join(",")}), run by the agent on the local backends with the local ledger; node ${process.version}`
  )
  console.log(
    `measured: ${fixedN(messagesPerRecord)} messages (transitions) a record, ${fixedN(stepsPerRecord)} of them steps; ` +
      `SQS ${fixedN(total(m.sqs) / m.transitions, 3)} requests a transition (${Object.entries(m.sqs).map(([op, n]) => `${op} ${n}`).join(", ")}); ` +
      `S3 ${Object.entries(m.s3).map(([op, n]) => `${op} ${fixedN(n / m.records)}`).join(", ")} a record; ` +
      `ledger ${fixedN(m.ledgerWrites / m.transitions, 3)} writes a transition; ` +
      `${batches} batches of ${fixedN(m.transitions / batches, 1)} messages, handler ${fixedN(handlerMillis / batches, 0)} ms a batch ` +
      `(${fixedN(handlerMillis / m.transitions, 1)} ms a message)`
  )
  console.log("")
  const columns = ["SQS", "Lambda", "DynamoDB", "S3", "Step Fns", "total"]
  console.log(`${"cost per million records (us-east-1)".padEnd(56)}${columns.map((c) => c.padStart(11)).join("")}`)
  const costs: Array<readonly [string, ReturnType<typeof costOf>]> = []
  for (const [name, row] of rows) {
    if (typeof row === "string") {
      console.log(`${name.padEnd(56)}  ${row}`)
      continue
    }
    const cost = costOf(row)
    costs.push([name, cost])
    console.log(`${name.padEnd(56)}${[cost.sqs, cost.lambda, cost.dynamo, cost.s3, cost.sfn, cost.total].map((v) => dollars(v).padStart(11)).join("")}`)
  }
  console.log("")
  for (const [name, row] of rows) {
    if (typeof row === "string") continue
    console.log(
      `  ${name}: ${fixedN(row.sqsRequests, 2)} SQS requests, ${fixedN(row.invokes, 2)} invokes, ${fixedN(row.lambdaMillis, 0)} Lambda ms, ` +
        `${fixedN(row.ledgerWrites, 2)} ledger writes, ${fixedN(row.s3Put, 2)} S3 PUT/LIST + ${fixedN(row.s3Get, 2)} GET/HEAD` +
        (row.sfnTransitions > 0 ? `, ${fixedN(row.sfnTransitions, 0)} state transitions` : "") +
        (row.sfnExpressRequests > 0 ? `, ${row.sfnExpressRequests} execution of ${fixedN(row.sfnExpressSeconds, 1)} s billed` : "") +
        " a record"
    )
  }
  const slower = rows.flatMap(([name, row]) => typeof row === "string" ? [] : [`${name.split(" (")[0]} ${dollars(costOf(row, 1 / CPU_SHARE_128).total)}`])
  console.log(`if CPU-bound steps ran ${fixedN(1 / CPU_SHARE_128, 1)}x slower on a 128 MB function (its share of a vCPU): ${slower.join("; ")}`)
})

const fixedN = (value: number, digits = 2) => value.toFixed(digits)

await Effect.runPromise(program.pipe(Effect.provide(NodeServices.layer)))
