/**
 * The function under Lambda's own runtime: the built x86_64 zip unpacked as the task root, AWS's
 * Runtime Interface Emulator and Node runtime client (test/support/lambdaRuntime.ts builds them on
 * first use), moto behind it. In one run, next to peers under the same runtime:
 *
 * - cold start doing real work: a fresh container's first invocation, one thumbnail record's
 *   download step (read the image, store it raw, send the next state), from the invoke to the
 *   answer (init included), for our function and for a handler bundled from the bare AWS SDK doing
 *   the same reads, PutObject and SendMessage; with the CPU time the runtime process used by then,
 *   which a busy machine distorts less than the wall clock;
 * - init alone (a fresh container's empty batch less a warm one) for both and an empty handler;
 * - the runtime process's RSS after that first record;
 * - peak RSS (VmHWM) of a 24 MP baseline JPEG of about 17.9 MB (sharp noise, so that it compresses
 *   badly) through the whole chain in one container with the stack's environment, next to bare
 *   sharp on the same file (bench/sharpRss.ts, as JavaScript, with the function's NODE_OPTIONS and
 *   malloc settings).
 *
 *   node bench/lambda.ts [--runs 5] [--zip path/to/function-x86_64.zip]
 *
 * `--zip` measures another build of the function (an earlier commit's, for a before/after);
 * `BENCH_NODE_OPTIONS` replaces the stack's NODE_OPTIONS (all three handlers run with it).
 */
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3"
import { CreateQueueCommand, DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs"
import { build as esbuild } from "esbuild"
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import sharp from "sharp"
import { build, lambdaBundleOptions, root } from "../src/deploy/build.ts"
import { type LambdaContainer, startContainer, unpackZip } from "../test/support/lambdaRuntime.ts"
import { startMoto } from "../test/support/moto.ts"

const runs = Number(process.argv[process.argv.indexOf("--runs") + 1] || 5) || 5
const work = mkdtempSync(join(tmpdir(), "bench-lambda-"))
const median = (values: ReadonlyArray<number>) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}
const ms = (value: number) => `${Math.round(value)} ms`

// ---------------------------------------------------------------------------------------------
// the images: a small one for cold starts, the 24 MP one for memory

const images = join(work, "images")
mkdirSync(images)
await sharp({ create: { width: 1600, height: 1200, channels: 3, noise: { type: "gaussian", mean: 128, sigma: 20 }, background: "#808080" } })
  .jpeg({ quality: 80 }).toFile(join(images, "STK000001.jpg"))
const bigFile = join(images, "STK000002.jpg")
await sharp({ create: { width: 6000, height: 4000, channels: 3, noise: { type: "gaussian", mean: 128, sigma: 50 }, background: "#808080" } })
  .jpeg({ quality: 91, progressive: false }).toFile(bigFile)
const bigMB = statSync(bigFile).size / 1e6

// ---------------------------------------------------------------------------------------------
// the task roots: ours (the zip), the bare-SDK peer and an empty handler (bundled the same way)

const zipOption = process.argv.indexOf("--zip")
const zip = zipOption > 0 ? process.argv[zipOption + 1]! : (await build("x86_64")).zip
const ours = unpackZip(zip, join(work, "ours"))
const bundled = async (name: string, contents: string) => {
  const dir = join(work, name)
  await esbuild({
    ...lambdaBundleOptions,
    stdin: { contents, resolveDir: root, sourcefile: `${name}.js`, loader: "js" },
    outfile: join(dir, "index.mjs")
  })
  return dir
}
const bare = await bundled("bare", `
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs"
import { readFile } from "node:fs/promises"
const s3 = new S3Client({ forcePathStyle: true })
const sqs = new SQSClient({ useQueueUrlAsEndpoint: false })
export const handler = async (event) => {
  for (const message of event.Records) {
    const record = JSON.parse(message.body)
    const path = new URL(process.env.IMAGE_SOURCE.replace("{stock_no}", record.stock_no)).pathname
    const body = await readFile(path)
    await s3.send(new PutObjectCommand({ Bucket: process.env.PIPELINE_BUCKET, Key: "raw/" + record.stock_no + ".jpg", Body: body, ContentType: "image/jpeg" }))
    await sqs.send(new SendMessageCommand({ QueueUrl: process.env.PIPELINE_QUEUE_URL, MessageBody: JSON.stringify({ ...record, has_raw: true }) }))
  }
  return { batchItemFailures: [] }
}`)
const empty = await bundled("empty", "export const handler = async () => ({})")

// ---------------------------------------------------------------------------------------------
// moto and the function's environment

const moto = await startMoto()
const aws = { AWS_ENDPOINT_URL: moto.endpoint, AWS_REGION: "us-east-1", AWS_ACCESS_KEY_ID: "testing", AWS_SECRET_ACCESS_KEY: "testing" }
Object.assign(process.env, aws)
const sqs = new SQSClient({ useQueueUrlAsEndpoint: false })
const queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: "bench" }))).QueueUrl!
const dlqUrl = (await sqs.send(new CreateQueueCommand({ QueueName: "bench-dlq" }))).QueueUrl!
const s3 = new S3Client({ forcePathStyle: true })
await s3.send(new CreateBucketCommand({ Bucket: "bench" }))
const environment = {
  ...aws,
  PIPELINE_NAME: "thumbnails",
  PIPELINE_QUEUE_URL: queueUrl,
  PIPELINE_DLQ_URL: dlqUrl,
  PIPELINE_BUCKET: "bench",
  IMAGE_SOURCE: `file://${images}/{stock_no}.jpg`,
  THUMBNAIL_SIZES: "100,200",
  // as the stack sets them (infra/template.yaml)
  NODE_OPTIONS: process.env["BENCH_NODE_OPTIONS"] ?? "--expose-gc --max-semi-space-size=2",
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "32768",
  AWS_LAMBDA_LOG_FORMAT: "JSON",
  AWS_LAMBDA_LOG_LEVEL: "WARN"
}

const event = (bodies: ReadonlyArray<string>) => ({
  Records: bodies.map((body, i) => ({
    messageId: `m${i}-${Date.now()}`,
    receiptHandle: "r",
    body,
    attributes: { ApproximateReceiveCount: "1" },
    messageAttributes: {},
    eventSource: "aws:sqs"
  }))
})

/**
 * The runtime (the emulator's child node process): its RSS now and its peak, in MB, and the CPU
 * time it has used (user and system, ms), which a busy machine distorts less than the wall clock.
 */
const memory = (container: LambdaContainer) => {
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, "utf8")
      if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) !== container.pid) continue
      const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0)
      // utime and stime, fields 14 and 15, in clock ticks (100 a second on Linux)
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ")
      return { rss: kb("VmRSS") / 1024, peak: kb("VmHWM") / 1024, cpuMillis: (Number(stat[11]) + Number(stat[12])) * 10 }
    } catch {
      // gone meanwhile
    }
  }
  throw new Error("no runtime process under the emulator")
}

const drain = async () => {
  for (const url of [queueUrl, dlqUrl]) {
    while (true) {
      const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: url, MaxNumberOfMessages: 10 }))
      if (Messages.length === 0) break
      await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: url, Entries: Messages.map((m, i) => ({ Id: `${i}`, ReceiptHandle: m.ReceiptHandle! })) }))
    }
  }
}

/**
 * From the invoke to the answer, without the 100 ms the harness waits after it for the last log
 * lines (until 2026-11-30 they counted in every figure, which made the ratios look closer to 1).
 */
const timed = async (container: LambdaContainer, payload: unknown) => {
  const { status, body, millis } = await container.invoke(payload)
  if (status !== 200 || (typeof body === "object" && body !== null && "errorType" in body)) throw new Error(`invocation failed: ${JSON.stringify(body)}`)
  return millis
}

interface Subject {
  readonly name: string
  readonly taskRoot: string
  readonly handler: string
  readonly work: boolean
}
const subjects: ReadonlyArray<Subject> = [
  { name: "ours", taskRoot: ours, handler: "dist/lambda/handler.handler", work: true },
  { name: "bare SDK", taskRoot: bare, handler: "index.handler", work: true },
  { name: "empty", taskRoot: empty, handler: "index.handler", work: false }
]

const results = new Map<string, { cold: Array<number>; cpu: Array<number>; init: Array<number>; rssAfter: Array<number> }>()
for (let run = 0; run < runs; run++) {
  for (const subject of subjects) {
    const result = results.get(subject.name) ?? { cold: [], cpu: [], init: [], rssAfter: [] }
    results.set(subject.name, result)
    if (subject.work) {
      const container = await startContainer({ taskRoot: subject.taskRoot, handler: subject.handler, environment })
      try {
        result.cold.push(await timed(container, event([`{"stock_no":"STK000001"}`])))
        const after = memory(container)
        result.rssAfter.push(after.rss)
        result.cpu.push(after.cpuMillis)
      } finally {
        await container.stop()
      }
      await drain()
    }
    // init alone: a fresh container's empty batch less a warm one
    const container = await startContainer({ taskRoot: subject.taskRoot, handler: subject.handler, environment })
    try {
      const cold = await timed(container, event([]))
      const warm = await timed(container, event([]))
      result.init.push(cold - warm)
    } finally {
      await container.stop()
    }
  }
}

// the 24 MP image through the whole chain, one container
const chain = await startContainer({ taskRoot: ours, handler: "dist/lambda/handler.handler", environment })
let bodies = [`{"stock_no":"STK000002"}`]
let steps = 0
let chainMemory = { rss: 0, peak: 0 }
const peaks: Array<string> = []
try {
  while (bodies.length > 0 && steps < 10) {
    const { body } = await chain.invoke(event(bodies))
    steps++
    if (typeof body === "object" && body !== null && "errorType" in body) throw new Error(JSON.stringify(body))
    peaks.push(memory(chain).peak.toFixed(0))
    const { Messages = [] } = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }))
    if (Messages.length > 0) {
      await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queueUrl, Entries: Messages.map((m, i) => ({ Id: `${i}`, ReceiptHandle: m.ReceiptHandle! })) }))
    }
    bodies = Messages.map((m) => m.Body!)
  }
  chainMemory = memory(chain)
} finally {
  await chain.stop()
}
const dead = (await sqs.send(new ReceiveMessageCommand({ QueueUrl: dlqUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ["All"] }))).Messages ?? []
// bare sharp as JavaScript: running the .ts itself would count Node's type stripper (about 16 MB)
const sharpScript = join(root, "node_modules", ".cache", "sqs-state-pipeline", "sharpRss.mjs")
await esbuild({ entryPoints: [join(import.meta.dirname, "sharpRss.ts")], outfile: sharpScript, platform: "node", format: "esm", logLevel: "warning" })
const sharpPeak = JSON.parse(
  execFileSync(process.execPath, [sharpScript, bigFile, "200,100"], {
    encoding: "utf8",
    // the function's own process settings
    env: { ...process.env, NODE_OPTIONS: environment.NODE_OPTIONS, MALLOC_ARENA_MAX: environment.MALLOC_ARENA_MAX, MALLOC_MMAP_THRESHOLD_: environment.MALLOC_MMAP_THRESHOLD_ }
  }).trim().split("\n").at(-1)!
) as { maxRssMB: number }

sqs.destroy()
s3.destroy()
await moto.stop()
rmSync(work, { recursive: true, force: true })

console.log(`under aws-lambda-rie + aws-lambda-ric (Node ${process.versions.node}), medians of ${runs} fresh containers`)
const row = (name: string) => results.get(name)!
for (const name of ["ours", "bare SDK"]) {
  console.log(
    `${name.padEnd(9)} cold start, one record's download step: ${ms(median(row(name).cold))} (runtime CPU ${ms(median(row(name).cpu))}); ` +
      `init alone ${ms(median(row(name).init))}; RSS after the first record ${median(row(name).rssAfter).toFixed(1)} MB`
  )
}
console.log(`empty     init alone ${ms(median(row("empty").init))}`)
console.log(
  `cold start ours / bare SDK: ${(median(row("ours").cold) / median(row("bare SDK").cold)).toFixed(2)}x ` +
    `(runtime CPU ${(median(row("ours").cpu) / median(row("bare SDK").cpu)).toFixed(2)}x)`
)
console.log(
  `24 MP baseline JPEG, ${bigMB.toFixed(1)} MB, to done in ${steps} invocations` +
    `${dead.length > 0 ? ` (dead-lettered: ${dead.map((m) => m.MessageAttributes?.["error.tag"]?.StringValue).join(", ")})` : ""}: ` +
    `peak RSS ${chainMemory.peak.toFixed(1)} MB through the handler (after each invocation: ${peaks.join(", ")} MB); bare sharp ${sharpPeak.maxRssMB} MB`
)
