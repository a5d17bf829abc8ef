/**
 * The bundled handler (`dist/lambda/handler.js`, as Lambda loads it) on moto's SQS and S3, driven
 * the way an event source mapping drives it: receive, invoke, delete what it did not report.
 */
import "../support/awsEnv.ts"
import { GetQueueAttributesCommand, SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { pathToFileURL } from "node:url"
import { afterAll, beforeAll } from "vitest"
import { bundle, bundlePath } from "../../src/deploy/build.ts"
import { createBucket, createQueue, type TestQueue } from "../support/aws.ts"
import { drainThrough, finishedGreetings, receiveBatch } from "../support/eventSourceMapping.ts"

let sqs: SQSClient
let queue: TestQueue
let handler: (event: unknown) => Promise<{ batchItemFailures: ReadonlyArray<{ itemIdentifier: string }> }>

beforeAll(async () => {
  await bundle()
  queue = await createQueue({ maxReceiveCount: 3 })
  process.env["PIPELINE_NAME"] = "greeting"
  process.env["PIPELINE_QUEUE_URL"] = queue.queueUrl
  process.env["PIPELINE_BUCKET"] = await createBucket()
  const module = await import(pathToFileURL(bundlePath).href) as { handler: typeof handler }
  handler = module.handler
  sqs = new SQSClient({ useQueueUrlAsEndpoint: false })
}, 120_000)

afterAll(() => sqs?.destroy())

const receive = (queueUrl: string) => receiveBatch(sqs, queueUrl)

describe("the built handler on moto", () => {
  it("moves good records to done and dead-letters bad ones with their reason", async () => {
    const bodies = [`{"id":"g1"}`, "not json", `{"id":"g2"}`, `{"id":5}`, `{"id":"g3","greeting":"hi"}`]
    await sqs.send(new SendMessageBatchCommand({
      QueueUrl: queue.queueUrl,
      Entries: bodies.map((body, i) => ({ Id: `b${i}`, MessageBody: body }))
    }))
    const received = await drainThrough(sqs, queue.queueUrl, async (event) => {
      const response = await handler(event)
      assert.deepStrictEqual(response.batchItemFailures, [])
      return []
    })
    const finished = finishedGreetings(received)
    assert.sameDeepMembers(finished, [
      { id: "g1", greeting: "hello", name: "world" },
      { id: "g2", greeting: "hello", name: "world" },
      { id: "g3", greeting: "hi", name: "world" }
    ])
    const dead = await receive(queue.dlqUrl!)
    assert.sameDeepMembers(
      dead.map((m) => [m.Body, m.MessageAttributes?.["error.tag"]?.StringValue]),
      [["not json", "MalformedBody"], [`{"id":5}`, "SchemaViolation"]]
    )
    assert.include(dead.find((m) => m.Body === `{"id":5}`)!.MessageAttributes!["error.message"]!.StringValue, `["id"]`)
    const left = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.queueUrl, AttributeNames: ["All"] }))
    assert.strictEqual(left.Attributes?.["ApproximateNumberOfMessages"], "0")
    assert.strictEqual(left.Attributes?.["ApproximateNumberOfMessagesNotVisible"], "0")
  })
})
