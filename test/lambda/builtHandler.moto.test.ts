/**
 * The bundled handler (`dist/lambda/handler.js`, as Lambda loads it) on moto's SQS and S3, driven
 * the way an event source mapping drives it: receive, invoke, delete what it did not report.
 */
import "../support/awsEnv.ts"
import { DeleteMessageBatchCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { pathToFileURL } from "node:url"
import { afterAll, beforeAll } from "vitest"
import { bundle, bundlePath } from "../../src/deploy/build.ts"
import { createBucket, createQueue, type TestQueue } from "../support/aws.ts"

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

const receive = async (queueUrl: string) =>
  (await sqs.send(new ReceiveMessageCommand({
    QueueUrl: queueUrl,
    MaxNumberOfMessages: 10,
    MessageAttributeNames: ["All"],
    MessageSystemAttributeNames: ["ApproximateReceiveCount"]
  }))).Messages ?? []

describe("the built handler on moto", () => {
  it("moves good records to done and dead-letters bad ones with their reason", async () => {
    const bodies = [`{"id":"g1"}`, "not json", `{"id":"g2"}`, `{"id":5}`, `{"id":"g3","greeting":"hi"}`]
    await sqs.send(new SendMessageBatchCommand({
      QueueUrl: queue.queueUrl,
      Entries: bodies.map((body, i) => ({ Id: `b${i}`, MessageBody: body }))
    }))
    const finished: Array<unknown> = []
    for (let pass = 0; pass < 10; pass++) {
      const messages = await receive(queue.queueUrl)
      if (messages.length === 0) break
      const response = await handler({
        Records: messages.map((m) => ({
          messageId: m.MessageId,
          receiptHandle: m.ReceiptHandle,
          body: m.Body,
          attributes: { ApproximateReceiveCount: m.Attributes?.ApproximateReceiveCount ?? "1" },
          messageAttributes: Object.fromEntries(
            Object.entries(m.MessageAttributes ?? {}).map(([k, v]) => [k, { stringValue: v.StringValue, dataType: v.DataType }])
          ),
          eventSource: "aws:sqs"
        }))
      })
      assert.deepStrictEqual(response.batchItemFailures, [])
      for (const m of messages) {
        const record = JSON.parse(m.Body!.startsWith("{") ? m.Body! : "null") as { name?: string } | null
        if (record?.name === "world") finished.push(record)
      }
      await sqs.send(new DeleteMessageBatchCommand({
        QueueUrl: queue.queueUrl,
        Entries: messages.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle! }))
      }))
    }
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
