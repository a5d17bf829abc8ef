/**
 * `npm run bench:thumbnails`: the thumbnail pipeline against bare sharp, in one run, on the same
 * inputs (the sample set of src/pipelines/thumbnails/sampleImages.ts minus its broken file).
 *
 * 1. Throughput, in thumbnails per second, rounds alternating after a warm-up, medians compared:
 *    - the pipeline end to end: every record from `{stock_no}` to done through the engine
 *      (processBatch, one batch of 10 at a time) on the memory queue and the memory bucket, each
 *      raw image downloaded over HTTP from the sample server, which runs in another process;
 *    - the pipeline's thumbnail steps alone: records that already have their raw image in the
 *      bucket, from `{…,"has_raw":true}` to done;
 *    - bare sharp doing the same resizes its cheapest way: the file read from disk, one decode with
 *      shrink-on-load to the largest width, each smaller size from those pixels; the same settings
 *      (cache off, concurrency 1, one image at a time).
 * 2. Peak RSS in a fresh process (goal ≤ 128 MB) of one 24 MP baseline JPEG through the Lambda
 *    handler, bundled with esbuild as src/deploy/build.ts bundles it (bench/thumbnailsRss.ts, with
 *    `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128` as Lambda sets it), next to bare sharp on the same image
 *    (bench/sharpRss.ts); and one Lambda batch of ten such images through the handler.
 *
 *    - the same with run-ahead (every step of a record in one pass) and the just-written raw image
 *      kept in memory for the thumbnail steps to read;
 *    - the fair peer: a bare script doing what the pipeline must (download, store the raw image,
 *      make and store both thumbnails), no queue;
 *    - the pipeline (one step per pass, and run ahead) and the fair peer on moto's server: SQS and
 *      S3 over HTTP through the live layers, the peer storing with PutObject; and run ahead with
 *      moto's S3 but the queue in memory, which tells moto's SQS share of the difference.
 *    The pipeline's rounds receive the next batch while one runs and delete in the background, as
 *    the agent does. Each round takes the set in a shuffled order of its own, the same for every
 *    row: the producer sends in it, the peers work in it. And the queue requests per transition on
 *    the memory queue, one step per pass and run ahead.
 *
 * Options (environment): BENCH_IMAGES (sample set size, default 20), BENCH_ROUNDS (default 5),
 * THUMBNAIL_SIZES (default 100,200).
 */
import { execFile, spawn } from "node:child_process"
import { existsSync, linkSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { open, readFile, rename } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createInterface } from "node:readline"
import { pathToFileURL } from "node:url"
import { promisify } from "node:util"
import { CreateBucketCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { CreateQueueCommand, SQSClient } from "@aws-sdk/client-sqs"
import { build } from "esbuild"
import { lambdaBundleOptions } from "../src/deploy/build.ts"
import { ConfigProvider, Duration, Effect, Fiber, Layer } from "effect"
import sharp from "sharp"
import { makeThumbnailPipeline, rawKey, ThumbnailSizesConfig, ThumbnailSteps } from "../src/pipelines/thumbnails/index.ts"
import { acknowledge, processBatch } from "../src/programs/engine.ts"
import { EngineSettings } from "../src/services/EngineSettings.ts"
import { makeSampleImages, type SampleImage } from "../src/pipelines/thumbnails/sampleImages.ts"
import { ObjectStore } from "../src/services/ObjectStore.ts"
import { MessageQueue } from "../src/services/MessageQueue.ts"
import { MemoryQueueControl } from "../src/services/queue/memory.ts"
import { startMoto } from "../test/support/moto.ts"
import { cpuSeconds } from "./processCpu.ts"

const IMAGES = Number(process.env["BENCH_IMAGES"] ?? 20)
const ROUNDS = Number(process.env["BENCH_ROUNDS"] ?? 5)
const RSS_RUNS = 3
/** Raw images in memory at once: the pipeline's limit, and the fair peer's ten at a time. */
const RAW_IMAGES_AT_ONCE = 10
const QUEUE = "thumbnails"
const root = join(import.meta.dirname, "..")
const bundles = join(root, "node_modules", ".cache", "thumbnail-bench")

const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2
}
const fixed = (value: number, digits = 1) => value.toFixed(digits)

/**
 * The set in an order of its own for each round, the same for every row of the round: the pipeline's
 * records reach it in whatever order the queue gives, so the peers must not keep the sample set's
 * order, which puts the 24 MP photo first (the longest job first: the best order for a peer that
 * works ten at a time; on moto its median round was 6% faster than in shuffled orders).
 */
const shuffled = <A>(items: ReadonlyArray<A>, seed: number): Array<A> => {
  const result = [...items]
  let state = seed
  for (let i = result.length - 1; i > 0; i--) {
    state = (state * 1103515245 + 12345) % 2147483648
    const j = state % (i + 1)
    ;[result[i], result[j]] = [result[j]!, result[i]!]
  }
  return result
}

/** The sample server in a process of its own, so serving the files is not charged to the pipeline. */
const imageServer = (folder: string) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const module = pathToFileURL(join(root, "src", "pipelines", "thumbnails", "sampleImages.ts")).href
      const code = `import { Effect } from "effect"; import { serveImages } from ${JSON.stringify(module)};
        Effect.runFork(Effect.scoped(Effect.flatMap(serveImages(${JSON.stringify(folder)}),
          (server) => Effect.andThen(Effect.sync(() => console.log(server.imageSource)), Effect.never))))`
      const child = spawn(process.execPath, ["--input-type=module", "-e", code], { cwd: root, stdio: ["ignore", "pipe", "inherit"] })
      const [imageSource] = await createInterface({ input: child.stdout! })[Symbol.asyncIterator]().next().then((line) => [line.value as string])
      return { child, imageSource: imageSource! }
    }),
    ({ child }) => Effect.sync(() => child.kill())
  )

/** SQS and S3 on moto's server: the queue and the bucket the moto rounds use. */
interface MotoBackend {
  readonly queueUrl: string
  readonly bucket: string
}

/** moto, with the SDK's environment pointing at it, a queue and a bucket. */
const motoBackend = Effect.acquireRelease(
  Effect.promise(async () => {
    const moto = await startMoto()
    Object.assign(process.env, { AWS_ENDPOINT_URL: moto.endpoint, AWS_REGION: "us-east-1", AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing" })
    const sqs = new SQSClient({})
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: QUEUE }))
    const s3 = new S3Client({ forcePathStyle: true })
    await s3.send(new CreateBucketCommand({ Bucket: "thumbnails" }))
    sqs.destroy()
    s3.destroy()
    return { moto, backend: { queueUrl: QueueUrl!, bucket: "thumbnails" } satisfies MotoBackend }
  }),
  ({ moto }) => Effect.promise(() => moto.stop())
)

/** One pass of the whole set through the engine, from `initial` records to done; seconds. */
const pipelineRound = (
  images: ReadonlyArray<SampleImage>,
  sizes: ReadonlyArray<number>,
  imageSource: string,
  options: {
    readonly rawInBucket: ReadonlyMap<string, { readonly bytes: Uint8Array; readonly contentType: string }> | undefined
    /**
     * `local`: the embedded SQLite queue and folder bucket (in a fresh temp folder), as `npm start`
     * runs; `moto`: SQS and S3 over HTTP on moto's server (the live layers); memory otherwise.
     */
    readonly backend: "memory" | "local" | MotoBackend
    /** Run-ahead (PIPELINE_RUN_AHEAD) with the just-written objects kept (PIPELINE_OBJECT_CACHE): one pass a record. */
    readonly runAhead?: boolean | undefined
    /** On moto, the queue in memory all the same: what moto's SQS costs the round, apart from its S3. */
    readonly queueInMemory?: boolean | undefined
    /** Called with the memory queue's request counts after the round (memory backends only). */
    readonly onRequests?: ((requests: Readonly<Record<string, number>>) => void) | undefined
  }
) => {
  const dataDir = options.backend === "local" ? mkdtempSync(join(tmpdir(), "bench-thumbnails-")) : undefined
  const { backend } = options
  const store = backend === "memory"
    ? ObjectStore.layerMemory
    : backend === "local"
    ? ObjectStore.layerLocal(join(dataDir!, "bucket"))
    : ObjectStore.layerS3(backend.bucket)
  const queueInMemory = backend === "memory" || options.queueInMemory === true
  const backends = Layer.mergeAll(
    queueInMemory
      ? MessageQueue.layerMemory({ [QUEUE]: {} })
      : backend === "local"
      ? MessageQueue.layerLocal({ directory: dataDir! })
      : MessageQueue.layerSqs,
    options.runAhead === true ? ObjectStore.withRecentObjects(store, 64 * 1024 * 1024) : store
  )
  const queueUrl = typeof backend === "object" && !queueInMemory ? backend.queueUrl : QUEUE
  const pipeline = makeThumbnailPipeline(sizes)
  const processMessages = processBatch(pipeline)
  return Effect.gen(function*() {
    const queue = yield* MessageQueue
    const store = yield* ObjectStore
    if (options.rawInBucket !== undefined) {
      for (const [key, raw] of options.rawInBucket) yield* store.put(key, raw.bytes, raw.contentType)
    }
    const started = performance.now()
    // the producer's sends at once, as the producer sends them
    yield* Effect.forEach(Array.from({ length: Math.ceil(images.length / 10) }, (_, i) => images.slice(i * 10, i * 10 + 10)), (chunk) =>
      queue.send(queueUrl, chunk.map((image, j) => ({
        id: `s${j}`,
        body: JSON.stringify(
          options.rawInBucket === undefined ? pipeline.initialRecord(image.stockNo) : { stock_no: image.stockNo, has_raw: true }
        )
      }))), { concurrency: "unbounded", discard: true })
    let done = 0
    const deletes: Array<Fiber.Fiber<void>> = []
    // the next batch is received while one runs, as the agent receives while it has room. Every
    // record done ends the round; so does an empty answer to a receive that began after the last
    // successor was sent (a record left over then fails the count below)
    const receive = Effect.forkChild(queue.receive(queueUrl, { maxMessages: 10 }))
    let receiving = yield* receive
    let sentSinceReceive = true
    while (done < images.length) {
      const messages = yield* Fiber.join(receiving)
      if (messages.length === 0 && !sentSinceReceive) break
      receiving = yield* receive
      sentSinceReceive = false
      if (messages.length === 0) continue
      const outcomes = yield* processMessages(messages)
      if (outcomes.some((outcome) => outcome._tag === "Advanced")) sentSinceReceive = true
      // deleted in the background, as the agent deletes
      deletes.push(yield* Effect.forkChild(acknowledge(queueUrl, outcomes)))
      for (const outcome of outcomes) {
        if (outcome._tag === "Done") done++
        else if (outcome._tag === "Failed" || outcome._tag === "DeadLettered") throw new Error(`${outcome._tag}: ${outcome.error.message}`)
      }
    }
    yield* Fiber.interrupt(receiving)
    yield* Fiber.joinAll(deletes)
    if (done !== images.length) throw new Error(`${done} of ${images.length} records done`)
    const seconds = (performance.now() - started) / 1000
    const control = yield* Effect.serviceOption(MemoryQueueControl)
    if (options.onRequests !== undefined && control._tag === "Some") options.onRequests(control.value.requests)
    return seconds
  }).pipe(
    Effect.provide(
      Layer.mergeAll(
        EngineSettings.layerWith({ queueUrl, retryFor: Duration.seconds(5), runAhead: options.runAhead === true ? Duration.minutes(1) : Duration.zero }),
        ThumbnailSteps.layer.pipe(
          Layer.provideMerge(backends),
          Layer.provide(ConfigProvider.layer(ConfigProvider.fromUnknown({ IMAGE_SOURCE: imageSource, THUMBNAIL_RAW_IMAGES_IN_MEMORY: String(RAW_IMAGES_AT_ONCE) })))
        )
      )
    ),
    Effect.ensuring(Effect.sync(() => dataDir !== undefined && rmSync(dataDir, { recursive: true, force: true })))
  )
}

/** One pass of the whole set through bare sharp, one decode per image; seconds. */
/** Bare sharp on each image's bytes, read from disk or, given a source template, downloaded with fetch. */
const bareRound = async (folder: string, images: ReadonlyArray<SampleImage>, sizes: ReadonlyArray<number>, source?: string) => {
  const started = performance.now()
  for (const image of images) {
    const input = source === undefined
      ? await readFile(join(folder, image.file))
      : Buffer.from(await (await fetch(source.replace("{stock_no}", image.stockNo))).arrayBuffer())
    const largest = await sharp(input).autoOrient().resize({ width: sizes[0]!, withoutEnlargement: true }).raw()
      .toBuffer({ resolveWithObject: true })
    for (const size of sizes) {
      await sharp(largest.data, { raw: largest.info }).resize({ width: size, withoutEnlargement: true }).jpeg({ quality: 80 })
        .toBuffer()
    }
  }
  return (performance.now() - started) / 1000
}

/**
 * The fair peer: a bare script doing the work the pipeline must do, without a queue: download each
 * image, store the raw image, make both thumbnails from the bytes in hand and store them (files in
 * a fresh folder, flushed as the local bucket does), ten images at a time as the engine takes a batch; seconds.
 */
const fairBareRound = async (images: ReadonlyArray<SampleImage>, sizes: ReadonlyArray<number>, source: string, moto?: MotoBackend) => {
  const out = mkdtempSync(join(tmpdir(), "bench-fair-"))
  // stored as durably as the local bucket stores: a temp file, flushed, renamed into place; or an S3 PutObject
  const s3 = moto === undefined ? undefined : new S3Client({ forcePathStyle: true })
  const store = async (name: string, data: Uint8Array) => {
    if (s3 !== undefined) {
      await s3.send(new PutObjectCommand({ Bucket: moto!.bucket, Key: `fair/${name}`, Body: data }))
      return
    }
    const temp = join(out, `.${name}.tmp`)
    const handle = await open(temp, "w")
    try {
      await handle.writeFile(data)
      await handle.datasync()
    } finally {
      await handle.close()
    }
    await rename(temp, join(out, name))
  }
  const started = performance.now()
  // ten at a time, as the engine works on a batch of ten
  const one = async (image: SampleImage) => {
    const input = Buffer.from(await (await fetch(source.replace("{stock_no}", image.stockNo))).arrayBuffer())
    await store(`${image.stockNo}.raw`, input)
    const largest = await sharp(input).autoOrient().resize({ width: sizes[0]!, withoutEnlargement: true }).raw()
      .toBuffer({ resolveWithObject: true })
    for (const size of sizes) {
      const thumbnail = await sharp(largest.data, { raw: largest.info }).resize({ width: size, withoutEnlargement: true }).jpeg({ quality: 80 })
        .toBuffer()
      await store(`${image.stockNo}-${size}.jpg`, thumbnail)
    }
  }
  for (let i = 0; i < images.length; i += RAW_IMAGES_AT_ONCE) await Promise.all(images.slice(i, i + RAW_IMAGES_AT_ONCE).map(one))
  const seconds = (performance.now() - started) / 1000
  rmSync(out, { recursive: true, force: true })
  s3?.destroy()
  return seconds
}

/** Bundles a bench child the way src/deploy/build.ts bundles the handler (sharp stays outside). */
const bundle = async (name: string) => {
  const outfile = join(bundles, `${name}.mjs`)
  await build({ ...lambdaBundleOptions, entryPoints: [join(root, "bench", `${name}.ts`)], outfile })
  return outfile
}

interface RssReport {
  readonly maxRssMB: number
  readonly afterImportMB: number
}

/** Peak RSS over several fresh processes, one after the other: the worst run. */
const peakRss = async (script: string, args: ReadonlyArray<string>, env: Record<string, string>): Promise<RssReport> => {
  let worst: RssReport | undefined
  for (let run = 0; run < RSS_RUNS; run++) {
    const { stdout } = await promisify(execFile)(process.execPath, [script, ...args], {
      env: { ...process.env, ...env },
      encoding: "utf8",
      maxBuffer: 1 << 20
    }).catch((error: { stderr?: string }) => {
      throw new Error(`${script} failed: ${(error.stderr ?? String(error)).split("\n").filter((line) => line.length < 400).slice(-8).join("\n")}`)
    })
    const report = JSON.parse(stdout.trim().split("\n").at(-1)!) as RssReport
    if (worst === undefined || report.maxRssMB > worst.maxRssMB) worst = report
  }
  return worst!
}

const program = Effect.gen(function*() {
  sharp.cache(false)
  sharp.concurrency(1)
  const sizes = yield* ThumbnailSizesConfig
  const set = yield* makeSampleImages(join(tmpdir(), `pipeline-bench-samples-${IMAGES}`), { count: IMAGES })
  const images = set.images.filter((image) => !image.broken)
  const big = set.images.find((image) => image.kind === "photo" && image.width * image.height >= 24_000_000)
  if (big === undefined) throw new Error("the sample set has no 24 MP photo")
  // ten names for the 24 MP file: one Lambda batch of large images
  const batch = Array.from({ length: 10 }, (_, i) => `BIG${String(i + 1).padStart(2, "0")}`)
  for (const name of batch) {
    const path = join(set.folder, `${name}.jpg`)
    if (!existsSync(path)) linkSync(join(set.folder, big.file), path)
  }
  const server = yield* imageServer(set.folder)
  const rawInBucket = new Map<string, { bytes: Uint8Array; contentType: string }>()
  for (const image of images) {
    const bytes = yield* Effect.promise(() => readFile(join(set.folder, image.file)))
    const extension = image.file.split(".").at(-1)!
    rawInBucket.set(rawKey(image.stockNo, extension), { bytes, contentType: extension === "png" ? "image/png" : "image/jpeg" })
  }

  const thumbnails = images.length * sizes.length
  const megapixels = images.reduce((sum, image) => sum + image.width * image.height, 0) / 1e6
  console.log(
    `thumbnail benchmark: ${images.length} images (${fixed(megapixels)} MP in all, the largest ${fixed(big.width * big.height / 1e6, 0)} MP), ` +
      `widths ${sizes.join(",")}, ${ROUNDS} rounds after a warm-up, same inputs throughout; the pipeline runs through ` +
      `the engine (processBatch, batches of 10)`
  )

  const endToEnd: Array<number> = []
  const endToEndAhead: Array<number> = []
  const stepsOnly: Array<number> = []
  const bare: Array<number> = []
  const bareDownloading: Array<number> = []
  const fair: Array<number> = []
  const endToEndMoto: Array<number> = []
  const endToEndAheadMoto: Array<number> = []
  const endToEndAheadMotoS3: Array<number> = []
  const fairMoto: Array<number> = []
  console.log("starting moto…")
  const { backend: moto, moto: motoServer } = yield* motoBackend
  // moto's server shares this machine's cores with the work: its CPU time a round, by row
  const motoCpu = { oneStep: [] as Array<number>, ahead: [] as Array<number>, fair: [] as Array<number> }
  const withMotoCpu = <A, E, R>(into: Array<number>, round: number, effect: Effect.Effect<A, E, R>) =>
    Effect.suspend(() => {
      const before = cpuSeconds(motoServer.pid)
      return Effect.tap(effect, () => Effect.sync(() => round >= 0 && into.push(cpuSeconds(motoServer.pid) - before)))
    })
  for (let round = -1; round < ROUNDS; round++) {
    const order = shuffled(images, round + 2)
    const e = yield* pipelineRound(order, sizes, server.imageSource, { rawInBucket: undefined, backend: "local" })
    const a = yield* pipelineRound(order, sizes, server.imageSource, { rawInBucket: undefined, backend: "local", runAhead: true })
    const s = yield* pipelineRound(order, sizes, server.imageSource, { rawInBucket, backend: "memory" })
    const em = yield* withMotoCpu(motoCpu.oneStep, round, pipelineRound(order, sizes, server.imageSource, { rawInBucket: undefined, backend: moto }))
    const am = yield* withMotoCpu(motoCpu.ahead, round, pipelineRound(order, sizes, server.imageSource, { rawInBucket: undefined, backend: moto, runAhead: true }))
    const amq = yield* pipelineRound(order, sizes, server.imageSource, { rawInBucket: undefined, backend: moto, runAhead: true, queueInMemory: true })
    const fm = yield* withMotoCpu(motoCpu.fair, round, Effect.promise(() => fairBareRound(order, sizes, server.imageSource, moto)))
    const b = yield* Effect.promise(() => bareRound(set.folder, order, sizes))
    const d = yield* Effect.promise(() => bareRound(set.folder, order, sizes, server.imageSource))
    const f = yield* Effect.promise(() => fairBareRound(order, sizes, server.imageSource))
    if (round >= 0) {
      endToEnd.push(e)
      endToEndAhead.push(a)
      stepsOnly.push(s)
      bare.push(b)
      bareDownloading.push(d)
      fair.push(f)
      endToEndMoto.push(em)
      endToEndAheadMoto.push(am)
      endToEndAheadMotoS3.push(amq)
      fairMoto.push(fm)
    }
  }
  // SQS-style requests per transition (memory queue: receives, sends, deletes, visibility changes)
  const transitions = images.length * (1 + sizes.length)
  // the producer's sends (one per 10 records) are not the engine's
  const perTransition = (requests: Readonly<Record<string, number>>) =>
    (Object.values(requests).reduce((sum, n) => sum + n, 0) - Math.ceil(images.length / 10)) / transitions
  let oneStep = 0
  let ahead = 0
  yield* pipelineRound(images, sizes, server.imageSource, { rawInBucket: undefined, backend: "memory", onRequests: (r) => (oneStep = perTransition(r)) })
  yield* pipelineRound(images, sizes, server.imageSource, { rawInBucket: undefined, backend: "memory", runAhead: true, onRequests: (r) => (ahead = perTransition(r)) })
  const rate = (times: ReadonlyArray<number>) => thumbnails / median(times)
  const line = (label: string, times: ReadonlyArray<number>) =>
    console.log(
      `  ${label.padEnd(72)} ${thumbnails} thumbnails in ${fixed(median(times), 3)} s = ${fixed(rate(times)).padStart(5)} thumbnails/s`
    )
  line("pipeline end to end, local backends (download from 127.0.0.1, thumbnails):", endToEnd)
  line("the same with run-ahead and the just-written objects kept:", endToEndAhead)
  line("fair bare peer (fetch, store the raw image, sharp, store both thumbnails):", fair)
  line("pipeline thumbnail steps alone (memory bucket holding the raw images):", stepsOnly)
  line("bare sharp (files from disk, one decode per image):", bare)
  line("bare sharp on the same downloads (fetch from 127.0.0.1, then sharp):", bareDownloading)
  console.log(
    `  ratio pipeline / bare sharp: end to end ${fixed(rate(endToEnd) / rate(bare), 2)}, ` +
      `thumbnail steps ${fixed(rate(stepsOnly) / rate(bare), 2)} (goal >= 0.9); ` +
      `end to end / bare sharp with the same downloads ${fixed(rate(endToEnd) / rate(bareDownloading), 2)}`
  )
  console.log(
    `  ratio pipeline / fair bare peer: one step per pass ${fixed(rate(endToEnd) / rate(fair), 2)}, ` +
      `with run-ahead ${fixed(rate(endToEndAhead) / rate(fair), 2)} (goal >= 0.9)`
  )
  line("pipeline end to end on moto (SQS and S3 over HTTP), one step per pass:", endToEndMoto)
  line("the same with run-ahead and the just-written objects kept:", endToEndAheadMoto)
  line("the same with the queue in memory (moto's S3 only):", endToEndAheadMotoS3)
  line("fair bare peer on moto (the raw image and thumbnails stored with PutObject):", fairMoto)
  console.log(
    `  ratio pipeline / fair bare peer on moto: one step per pass ${fixed(rate(endToEndMoto) / rate(fairMoto), 2)}, ` +
      `with run-ahead ${fixed(rate(endToEndAheadMoto) / rate(fairMoto), 2)} (goal >= 0.9); ` +
      `run-ahead with the queue in memory ${fixed(rate(endToEndAheadMotoS3) / rate(fairMoto), 2)}`
  )
  console.log(
    `  moto's server, CPU seconds a round (median): one step per pass ${fixed(median(motoCpu.oneStep), 2)}, ` +
      `run-ahead ${fixed(median(motoCpu.ahead), 2)}, fair peer ${fixed(median(motoCpu.fair), 2)}`
  )
  console.log(
    `  queue requests per transition (memory queue, batches of 10, the producer's sends left out): one step per pass ${fixed(oneStep, 3)}, ` +
      `with run-ahead ${fixed(ahead, 3)} (goal <= 0.12)`
  )

  mkdirSync(bundles, { recursive: true })
  const handlerScript = yield* Effect.promise(() => bundle("thumbnailsRss"))
  const sharpScript = yield* Effect.promise(() => bundle("sharpRss"))
  // as the stack configures the function: 128 MB, NODE_OPTIONS=--expose-gc, MALLOC_ARENA_MAX=2
  const lambda = { IMAGE_SOURCE: server.imageSource, AWS_LAMBDA_FUNCTION_MEMORY_SIZE: "128", NODE_OPTIONS: "--expose-gc", MALLOC_ARENA_MAX: "2" }
  const handler = yield* Effect.promise(() => peakRss(handlerScript, [big.stockNo], lambda))
  const bareRss = yield* Effect.promise(() => peakRss(sharpScript, [join(set.folder, big.file), sizes.join(",")], {}))
  const handlerBatch = yield* Effect.promise(() => peakRss(handlerScript, batch, lambda))
  console.log(`peak RSS in a fresh process, worst of ${RSS_RUNS} runs, ${big.width}x${big.height} baseline JPEG (${big.stockNo}):`)
  console.log(
    `  ${"through the Lambda handler (esbuild bundle, folder bucket, 128 MB Lambda):".padEnd(72)} ${fixed(handler.maxRssMB)} MB ` +
      `(${fixed(handler.afterImportMB)} MB once loaded; goal <= 128 MB)`
  )
  console.log(`  ${"bare sharp, same image and widths:".padEnd(72)} ${fixed(bareRss.maxRssMB)} MB (${fixed(bareRss.afterImportMB)} MB once loaded)`)
  console.log(`  ${"one Lambda batch of ten such images through the handler:".padEnd(72)} ${fixed(handlerBatch.maxRssMB)} MB`)
})

await Effect.runPromise(Effect.scoped(program))
