/**
 * The thumbnail example end to end on moto: 20 records through the producer, the agent and the
 * handler (child processes, as a user runs them), images downloaded from a local HTTP server.
 */
import "../support/awsEnv.ts"
import { GetObjectCommand, ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3"
import { ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Effect, Exit, Scope } from "effect"
import sharp from "sharp"
import { afterAll, beforeAll } from "vitest"
import { makeSampleImages, type SampleSet, serveImages } from "../../src/pipelines/thumbnails/sampleImages.ts"
import { createBucket, createQueue } from "../support/aws.ts"

const cli = (args: ReadonlyArray<string>, env: Record<string, string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ["src/bin/cli.ts", ...args], { env: { ...process.env, ...env } })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("exit", (code) => resolve({ code, stdout, stderr }))
  })

const scope = Effect.runSync(Scope.make())
let samples: SampleSet
let imageSource: string
const s3 = new S3Client({ forcePathStyle: true })
const sqs = new SQSClient({ useQueueUrlAsEndpoint: false })

beforeAll(async () => {
  samples = await Effect.runPromise(makeSampleImages(join(tmpdir(), "pipeline-e2e-samples-20"), { count: 20 }))
  imageSource = (await Effect.runPromise(serveImages(samples.folder).pipe(Scope.provide(scope)))).imageSource
}, 120_000)

afterAll(async () => {
  await Effect.runPromise(Scope.close(scope, Exit.void))
  s3.destroy()
  sqs.destroy()
})

describe("thumbnails end to end on moto", () => {
  it("20 records: every thumbnail in S3 at the right width, the broken image in the DLQ", async () => {
    const queue = await createQueue({ maxReceiveCount: 3 })
    const bucket = await createBucket()
    const env = { PIPELINE_QUEUE_URL: queue.queueUrl, PIPELINE_BUCKET: bucket, IMAGE_SOURCE: imageSource }

    const produced = await cli(["produce", ...samples.images.map((image) => image.stockNo)], env)
    assert.strictEqual(produced.code, 0, produced.stderr)
    const agent = await cli(["agent", "--until-empty", "--concurrency", "10"], env)
    assert.strictEqual(agent.code, 0, agent.stderr)

    const listed = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: "thumbnails/" }))
    const keys = new Set((listed.Contents ?? []).map((object) => object.Key!))
    for (const image of samples.images) {
      for (const size of [100, 200]) {
        const key = `thumbnails/${size}/${image.stockNo}.jpg`
        if (image.broken) {
          assert.isFalse(keys.has(key), `${key} should not exist`)
          continue
        }
        assert.isTrue(keys.has(key), `${key} is missing`)
        const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
        assert.strictEqual(object.ContentType, "image/jpeg")
        const metadata = await sharp(await object.Body!.transformToByteArray()).metadata()
        assert.strictEqual(metadata.width, Math.min(size, image.width), `${key} width`)
      }
    }

    const dead = await sqs.send(new ReceiveMessageCommand({ QueueUrl: queue.dlqUrl, MaxNumberOfMessages: 10, MessageAttributeNames: ["All"] }))
    const broken = samples.images.filter((image) => image.broken).map((image) => image.stockNo)
    assert.deepStrictEqual(
      (dead.Messages ?? []).map((message) => (JSON.parse(message.Body!) as { stock_no: string }).stock_no),
      broken
    )
    assert.strictEqual(dead.Messages![0]!.MessageAttributes?.["error.tag"]?.StringValue, "CorruptImage")
  }, 120_000)
})
