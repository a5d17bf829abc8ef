/**
 * Peak RSS of images through the Lambda handler in a fresh process, for `bench/thumbnails.ts`,
 * which bundles this file with esbuild the way the Lambda bundle is made and starts it:
 *
 *   IMAGE_SOURCE=... node <bundle>.mjs <stock_no> [<stock_no> ...]
 *
 * `makeHandler` from src/lambda/handler.ts (so everything the Lambda loads is loaded, the AWS SDK
 * included) runs the built-in thumbnail pipeline on the memory queue and the local (folder) bucket,
 * which like S3 keeps the objects out of the process. Records go from
 * `{stock_no}` to done in SQS events of up to 10 messages, as an event source mapping delivers them;
 * what the handler does not report as failed is deleted, as Lambda does.
 *
 * Prints one JSON line: { maxRssMB, afterImportMB, invocations }.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Layer } from "effect"
import { makeHandler } from "../src/lambda/handler.ts"
import { toSqsEvent } from "../src/domain/sqsEvent.ts"
import { makeThumbnailPipeline } from "../src/pipelines/thumbnails/index.ts"
import { CurrentPipeline } from "../src/services/CurrentPipeline.ts"
import { EngineSettings } from "../src/services/EngineSettings.ts"
import { MessageQueue } from "../src/services/MessageQueue.ts"
import { ObjectStore } from "../src/services/ObjectStore.ts"

const mb = (kilobytes: number) => Math.round((kilobytes / 1024) * 10) / 10
/**
 * Peak RSS of this process in KB: VmHWM, not getrusage's maxRSS, which on Linux carries over the
 * parent's RSS at fork time into a child that is started from a large process.
 */
const peakKB = () => {
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync("/proc/self/status", "utf8"))
  return hwm === null ? process.resourceUsage().maxRSS : Number(hwm[1])
}
const afterImport = peakKB()
const stockNumbers = process.argv.slice(2)
const queueUrl = "https://sqs.bench/000000000000/thumbnails"
const bucket = mkdtempSync(join(tmpdir(), "thumbnails-rss-"))

const handler = makeHandler(
  CurrentPipeline.layerOf(makeThumbnailPipeline([100, 200])),
  Layer.mergeAll(MessageQueue.layerMemory({ [queueUrl]: {} }), ObjectStore.layerLocal(bucket), EngineSettings.layerWith({ queueUrl }))
)
const run = <A, E>(effect: Effect.Effect<A, E, MessageQueue>) => handler.runtime.runPromise(effect)

await run(MessageQueue.use((queue) =>
  queue.send(queueUrl, stockNumbers.map((stockNo, i) => ({ id: `s${i}`, body: JSON.stringify({ stock_no: stockNo }) })))))

let invocations = 0
while (invocations < 100) {
  const messages = await run(MessageQueue.use((queue) => queue.receive(queueUrl, { maxMessages: 10 })))
  if (messages.length === 0) break
  invocations++
  const response = await handler(toSqsEvent(messages))
  const failed = new Set(response.batchItemFailures.map((failure) => failure.itemIdentifier))
  if (failed.size > 0) throw new Error(`invocation ${invocations} reported failures: ${[...failed].join(", ")}`)
  await run(MessageQueue.use((queue) =>
    queue.delete(queueUrl, messages.map((message, i) => ({ id: `d${i}`, receiptHandle: message.receiptHandle })))))
}

await handler.runtime.dispose()
rmSync(bucket, { recursive: true, force: true })
process.stdout.write(JSON.stringify({ maxRssMB: mb(peakKB()), afterImportMB: mb(afterImport), invocations }) + "\n")
