/**
 * The built x86_64 zip run the way Lambda runs it: unpacked as the task root, AWS's Runtime
 * Interface Emulator in front, AWS's Node runtime client loading `dist/lambda/handler.handler`,
 * moto behind it. Lambda's JSON log format at application log level WARN, as the stack deploys it
 * with `ApplicationLogLevel: WARN`. Both tools are built on first use (test/support/lambdaRuntime.ts).
 */
import "../support/awsEnv.ts"
import { DeleteMessageBatchCommand, SendMessageBatchCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll } from "vitest"
import { build } from "../../src/deploy/build.ts"
import { createBucket, createLedgerTable, createQueue, type TestQueue } from "../support/aws.ts"
import { drainThrough, finishedGreetings, receiveBatch, sqsEventOf } from "../support/eventSourceMapping.ts"
import { ensureRic, ensureRie, type LambdaContainer, startContainer, unpackZip } from "../support/lambdaRuntime.ts"

const HANDLER = "dist/lambda/handler.handler"
let sqs: SQSClient
let queue: TestQueue
let taskRoot: string
let environment: Record<string, string>
let container: LambdaContainer

beforeAll(async () => {
  // minutes on the first run (Go and C++ builds), nothing after
  ensureRie()
  ensureRic()
  const built = await build("x86_64")
  taskRoot = unpackZip(built.zip, mkdtempSync(join(tmpdir(), "task-")))
  queue = await createQueue({ maxReceiveCount: 3 })
  environment = {
    AWS_ENDPOINT_URL: process.env["AWS_ENDPOINT_URL"]!,
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "testing",
    AWS_SECRET_ACCESS_KEY: "testing",
    PIPELINE_NAME: "greeting",
    PIPELINE_QUEUE_URL: queue.queueUrl,
    PIPELINE_BUCKET: await createBucket(),
    PIPELINE_LEDGER_TABLE: await createLedgerTable(),
    AWS_LAMBDA_LOG_FORMAT: "JSON",
    AWS_LAMBDA_LOG_LEVEL: "WARN"
  }
  container = await startContainer({ taskRoot, handler: HANDLER, environment })
  sqs = new SQSClient({ useQueueUrlAsEndpoint: false })
}, 20 * 60_000)

afterAll(async () => {
  sqs?.destroy()
  await container?.stop()
  if (taskRoot !== undefined) rmSync(taskRoot, { recursive: true, force: true })
})

const receive = (queueUrl: string) => receiveBatch(sqs, queueUrl)

/** The function's own lines under Lambda's JSON format (the runtime client's, with a level and a request id). */
const jsonLines = (logs: ReadonlyArray<string>) =>
  logs.flatMap((line) => {
    if (!line.startsWith("{")) return []
    const parsed = JSON.parse(line) as Record<string, unknown>
    return "level" in parsed && "requestId" in parsed ? [parsed as { level: string; message: unknown }] : []
  })

// AWS's sample event for SQS (the Lambda developer guide's "Example Amazon SQS message event")
const awsSampleEvent = {
  Records: [
    {
      messageId: "059f36b4-87a3-44ab-83d2-661975830a7d",
      receiptHandle: "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
      body: "Test message.",
      attributes: {
        ApproximateReceiveCount: "1",
        SentTimestamp: "1545082649183",
        SenderId: "AIDAIENQZJOLO23YVJ4VO",
        ApproximateFirstReceiveTimestamp: "1545082649185"
      },
      messageAttributes: {},
      md5OfBody: "e4e68fb7bd0e697a0ae8f1bb342846b3",
      eventSource: "aws:sqs",
      eventSourceARN: "arn:aws:sqs:us-east-2:123456789012:my-queue",
      awsRegion: "us-east-2"
    },
    {
      messageId: "2e1424d4-f796-459a-8184-9c92662be6da",
      receiptHandle: "AQEBzWwaftRI0KuVm4tP+/7q1rGgNqicHq...",
      body: "Test message.",
      attributes: {
        ApproximateReceiveCount: "1",
        SentTimestamp: "1545082650636",
        SenderId: "AIDAIENQZJOLO23YVJ4VO",
        ApproximateFirstReceiveTimestamp: "1545082650649"
      },
      messageAttributes: {},
      md5OfBody: "e4e68fb7bd0e697a0ae8f1bb342846b3",
      eventSource: "aws:sqs",
      eventSourceARN: "arn:aws:sqs:us-east-2:123456789012:my-queue",
      awsRegion: "us-east-2"
    }
  ]
}

describe("the built zip under the Lambda runtime interface emulator and aws-lambda-ric", () => {
  it("answers an empty Records with no failures", async () => {
    const { status, body } = await container.invoke({ Records: [] })
    assert.strictEqual(status, 200)
    assert.deepStrictEqual(body, {
      batchItemFailures: [],
      outcomes: { advanced: 0, done: 0, deadLettered: 0, retried: 0, duplicates: 0 },
      figures: { steps: {}, deadLetteredBy: {} }
    })
  })

  it("moves a chain to done through moto's SQS; the dead-letter warning is a WARN line, info lines are filtered, nothing encoded twice", async () => {
    await sqs.send(new SendMessageBatchCommand({
      QueueUrl: queue.queueUrl,
      Entries: [{ Id: "a", MessageBody: `{"id":"ric-1"}` }, { Id: "b", MessageBody: "not json at all" }]
    }))
    const logs: Array<string> = []
    const received = await drainThrough(sqs, queue.queueUrl, async (event) => {
      const { status, body, logs: lines } = await container.invoke(event)
      logs.push(...lines)
      assert.strictEqual(status, 200, JSON.stringify(body))
      assert.deepStrictEqual((body as { batchItemFailures: Array<unknown> }).batchItemFailures, [])
      return []
    })
    const finished = finishedGreetings(received)
    assert.deepStrictEqual(finished, [{ id: "ric-1", greeting: "hello", name: "world" }])
    const dead = await receive(queue.dlqUrl!)
    assert.deepStrictEqual(dead.map((m) => [m.Body, m.MessageAttributes?.["error.tag"]?.StringValue]), [["not json at all", "MalformedBody"]])

    const lines = jsonLines(logs)
    const warning = lines.find((line) => line.level === "WARN")
    assert.isDefined(warning, logs.join("\n"))
    // one JSON object per line: the line's message is an object, not JSON text inside JSON
    assert.typeOf(warning!.message, "object")
    assert.include((warning!.message as { message: string }).message, "dead-lettered message")
    assert.strictEqual((warning!.message as { error: string }).error, "MalformedBody")
    assert.deepStrictEqual(lines.filter((line) => line.level === "INFO" || line.level === "DEBUG"), [])

    // EMF: lines of their own (not wrapped by the log format, not dropped by the log level), per batch
    const emf = logs.filter((line) => line.startsWith(`{"_aws":`)).map((line) => JSON.parse(line) as Record<string, number | string>)
    const batches = emf.filter((doc) => "Records" in doc)
    assert.strictEqual(batches.reduce((sum, doc) => sum + (doc["Records"] as number), 0), 4) // 2 sent, 1 successor, 1 done
    assert.deepInclude(emf.find((doc) => doc["Reason"] === "MalformedBody"), { Pipeline: "greeting", DeadLettered: 1 })
    assert.sameMembers(emf.filter((doc) => "Step" in doc).map((doc) => doc["Step"]), ["createGreeting", "createName"])
  })

  it("takes AWS's sample SQS event: bodies that are not records are dead-lettered with their reason, no receipt handle logged", async () => {
    const { status, body, logs } = await container.invoke(awsSampleEvent)
    assert.strictEqual(status, 200, JSON.stringify(body))
    assert.deepStrictEqual(body, {
      batchItemFailures: [],
      outcomes: { advanced: 0, done: 0, deadLettered: 2, retried: 0, duplicates: 0 },
      figures: { steps: {}, deadLetteredBy: { MalformedBody: 2 } }
    })
    const dead = await receive(queue.dlqUrl!)
    assert.sameMembers(dead.map((m) => m.MessageAttributes?.["error.tag"]?.StringValue), ["MalformedBody", "MalformedBody"])
    assert.lengthOf(jsonLines(logs).filter((line) => line.level === "WARN"), 2)
    assert.notInclude(logs.join("\n"), "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a")
    await sqs.send(new DeleteMessageBatchCommand({
      QueueUrl: queue.dlqUrl!,
      Entries: dead.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle! }))
    }))
  })

  it("never logs a receipt handle that SQS quotes in its error", async () => {
    // the raw-message shape deletes its message itself: SQS refuses this handle and quotes it
    const { status, body, logs } = await container.invoke({
      MessageId: "raw-1",
      ReceiptHandle: "not-a-receipt-handle-SECRET42",
      Body: `{"id":"raw-1"}`
    })
    assert.strictEqual(status, 200, JSON.stringify(body))
    const text = logs.join("\n")
    assert.include(text, "could not delete a handled message")
    assert.notInclude(text, "SECRET42")
  })

  it("dead-letters a message with all its attributes that fit, binary and typed ones as sent", async () => {
    const signature = Uint8Array.from([0, 1, 2, 254, 255])
    await sqs.send(new SendMessageBatchCommand({
      QueueUrl: queue.queueUrl,
      Entries: [{
        Id: "a",
        MessageBody: "not a record",
        MessageAttributes: {
          "sender.signature": { DataType: "Binary", BinaryValue: signature },
          "sender.priority": { DataType: "Number", StringValue: "7" },
          "sender.origin": { DataType: "String", StringValue: "upload" }
        }
      }]
    }))
    const messages = await receive(queue.queueUrl)
    const { body } = await container.invoke(sqsEventOf(messages))
    assert.deepStrictEqual((body as { outcomes: { deadLettered: number } }).outcomes.deadLettered, 1)
    const [dead] = await receive(queue.dlqUrl!)
    const attributes = dead!.MessageAttributes!
    assert.deepStrictEqual(attributes["sender.signature"], { DataType: "Binary", BinaryValue: signature })
    assert.deepStrictEqual(attributes["sender.priority"], { DataType: "Number", StringValue: "7" })
    assert.deepStrictEqual(attributes["sender.origin"], { DataType: "String", StringValue: "upload" })
    assert.strictEqual(attributes["error.tag"]?.StringValue, "MalformedBody")
    await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queue.dlqUrl!, Entries: [{ Id: "d", ReceiptHandle: dead!.ReceiptHandle! }] }))
    await sqs.send(new DeleteMessageBatchCommand({ QueueUrl: queue.queueUrl, Entries: messages.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle! })) }))
  })

  it("fails the INIT phase, not each invocation, when a setting is missing, with an Error naming it", async () => {
    const { PIPELINE_BUCKET: _, ...withoutBucket } = environment
    const broken = await startContainer({ taskRoot, handler: HANDLER, environment: withoutBucket })
    try {
      const { status, body, logs } = await broken.invoke({ Records: [] })
      const error = body as { errorType: string; errorMessage: string }
      assert.strictEqual(error.errorType, "ConfigError", JSON.stringify(body))
      assert.include(error.errorMessage, "the setting PIPELINE_BUCKET is missing")
      // the runtime client reports an init error and the emulator an init that failed, not an invocation's error
      assert.strictEqual(status, 502)
      const reported = jsonLines(logs).find((line) => line.level === "ERROR")
      assert.include((reported?.message as { errorMessage?: string } | undefined)?.errorMessage, "the setting PIPELINE_BUCKET is missing", logs.join("\n"))
      assert.include(logs.join("\n"), "Init failed")
    } finally {
      await broken.stop()
    }
  })
})
