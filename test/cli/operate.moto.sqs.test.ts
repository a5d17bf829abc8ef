/**
 * `status`, `dlq list` and `dlq redrive` on moto's SQS (see test/support/operate.ts), and what only
 * SQS has: the move task (which moto 5.2.5 does not implement: the request is checked on the wire
 * through the fault proxy, and the command fails naming `--copy`), and a redrive killed exactly
 * between its send and its delete (the proxy holds the delete back).
 */
import "../support/awsEnv.ts"
import { GetQueueAttributesCommand, SendMessageBatchCommand, SetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { afterAll } from "vitest"
import { createQueue } from "../support/aws.ts"
import { cleanUpBackends, temporaryDir } from "../support/backends.ts"
import { startCli, waitFor } from "../support/cli.ts"
import { type FaultProxy, startFaultProxy } from "../support/faultProxy.ts"
import { drainSource, runExpect, runJson } from "../support/operate.ts"

const sqs = new SQSClient({ useQueueUrlAsEndpoint: false })
const proxies: Array<FaultProxy> = []
afterAll(async () => {
  await Promise.all(proxies.map((proxy) => proxy.close()))
  sqs.destroy()
  cleanUpBackends()
})

const arnOf = async (queueUrl: string) =>
  (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["QueueArn"] }))).Attributes!["QueueArn"]!

/** `count` dead letters as the engine writes them, straight into the DLQ (the redrive is under test here, not how they got there). */
const seedDeadLetters = async (queueUrl: string, dlqUrl: string, count: number) => {
  for (let start = 0; start < count; start += 10) {
    await sqs.send(new SendMessageBatchCommand({
      QueueUrl: dlqUrl,
      Entries: Array.from({ length: Math.min(10, count - start) }, (_, i) => ({
        Id: String(i),
        MessageBody: JSON.stringify({ stock_no: `STK${start + i}` }),
        MessageAttributes: Object.fromEntries(Object.entries({
          "pipeline.step": "0",
          "pipeline.trace_id": `trace-${start + i}`,
          "error.tag": "CorruptImage",
          "error.step": "thumbnail200",
          "error.source_queue": queueUrl
        }).map(([name, value]) => [name, { DataType: "String", StringValue: value }]))
      }))
    }))
  }
}

describe("SQS only", { timeout: 60_000 }, () => {
  it("unfiltered on a standard queue: StartMessageMoveTask from the DLQ to the queue, which moto does not implement; --status likewise", async () => {
    const queue = await createQueue({ maxReceiveCount: 5 })
    await seedDeadLetters(queue.queueUrl, queue.dlqUrl!, 3)
    const proxy = await startFaultProxy({ target: process.env["AWS_ENDPOINT_URL"]!, decide: () => ({ _tag: "None" }) })
    proxies.push(proxy)
    const env = { PIPELINE_QUEUE_URL: queue.queueUrl, AWS_ENDPOINT_URL_SQS: proxy.endpoint }
    const result = await runExpect(["dlq", "redrive"], env, 1)
    assert.include(result.stderr, "StartMessageMoveTask failed")
    assert.include(result.stderr, "dlq redrive --copy")
    const start = proxy.log.find((entry) => entry.action === "StartMessageMoveTask")
    assert.deepStrictEqual(start?.body, { SourceArn: await arnOf(queue.dlqUrl!), DestinationArn: await arnOf(queue.queueUrl) })
    const status = await runExpect(["dlq", "redrive", "--status"], env, 1)
    assert.isDefined(proxy.log.find((entry) => entry.action === "ListMessageMoveTasks"), status.stderr)
    // nothing moved; --copy does it
    assert.strictEqual((await runJson(["status"], env)).deadLetters.count, 3)
    const copied = await runJson(["dlq", "redrive", "--copy"], env)
    assert.deepInclude(copied, { method: "copy", redriven: 3 })
    assert.strictEqual((await drainSource(env)).length, 3)
  })

  it("killed between its send and its delete: the next run deletes those dead letters without sending them again", async () => {
    const queue = await createQueue({ maxReceiveCount: 5 })
    await seedDeadLetters(queue.queueUrl, queue.dlqUrl!, 25)
    // deletes never reach moto (the connection is cut, the client retries): the kill lands after the first batch was sent and journaled
    const proxy = await startFaultProxy({
      target: process.env["AWS_ENDPOINT_URL"]!,
      decide: (request) => request.action === "DeleteMessageBatch" ? { _tag: "DropBefore" } : { _tag: "None" }
    })
    proxies.push(proxy)
    const dataDir = temporaryDir("redrive-journal-")
    const env = { PIPELINE_QUEUE_URL: queue.queueUrl, PIPELINE_DATA_DIR: dataDir }
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: queue.dlqUrl!, Attributes: { VisibilityTimeout: "2" } }))
    const first = startCli(["dlq", "redrive", "--copy"], { ...env, AWS_ENDPOINT_URL_SQS: proxy.endpoint })
    await waitFor(async () => proxy.log.some((entry) => entry.action === "DeleteMessageBatch"), 20_000, "the first delete")
    first.child.kill("SIGKILL")
    await first.exit
    const sentBeforeKill = proxy.log.filter((entry) => entry.action === "SendMessageBatch").length
    assert.strictEqual(sentBeforeKill, 1, "one batch sent, its delete never answered")
    const second = await runJson(["dlq", "redrive", "--copy"], env)
    assert.deepInclude(second, { redriven: 15, finished: 10, notDeleted: 0 })
    const bodies = (await drainSource(env)).map((message) => message.body)
    assert.strictEqual(bodies.length, 25)
    assert.strictEqual(new Set(bodies).size, 25)
  })
})
