/**
 * The fault proxy itself, with the real SQS client against moto: what the client sees of each
 * fault, what reached moto, and what the log says.
 */
import "../support/awsEnv.ts"
import { GetQueueAttributesCommand, SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { createQueue } from "../support/aws.ts"
import { type Fault, randomFaults, startFaultProxy } from "../support/faultProxy.ts"

const direct = new SQSClient({ useQueueUrlAsEndpoint: false })
const visible = async (queueUrl: string) => {
  const { Attributes = {} } = await direct.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["ApproximateNumberOfMessages"] }))
  return Number(Attributes["ApproximateNumberOfMessages"])
}

describe("fault proxy", () => {
  it("answers, cuts before and after moto, delays, and logs each request with moto's answer", async () => {
    const queue = await createQueue()
    const script: Array<Fault> = [
      { _tag: "Error500" },
      { _tag: "DropBefore" },
      { _tag: "DropAfter" },
      { _tag: "Latency", millis: 300 },
      { _tag: "None" }
    ]
    const proxy = await startFaultProxy({ target: process.env["AWS_ENDPOINT_URL"]!, decide: () => script.shift() ?? { _tag: "None" } })
    // one attempt per call: the SDK's own retries would hide the faults
    const client = new SQSClient({ endpoint: proxy.endpoint, useQueueUrlAsEndpoint: false, maxAttempts: 1 })
    const send = (body: string) =>
      client.send(new SendMessageCommand({ QueueUrl: queue.queueUrl, MessageBody: body })).then(
        (output) => ({ ok: true as const, output }),
        (error: { name: string; $metadata?: { httpStatusCode?: number } }) => ({ ok: false as const, error })
      )
    try {
      const error500 = await send("a")
      assert.isFalse(error500.ok)
      if (!error500.ok) {
        assert.strictEqual(error500.error.name, "InternalFailure")
        assert.strictEqual(error500.error.$metadata?.httpStatusCode, 500)
      }
      assert.isFalse((await send("b")).ok, "cut before")
      assert.strictEqual(await visible(queue.queueUrl), 0, "nothing reached moto")
      assert.isFalse((await send("c")).ok, "cut after")
      assert.strictEqual(await visible(queue.queueUrl), 1, "moto took it")
      const started = Date.now()
      const delayed = await send("d")
      assert.isTrue(delayed.ok)
      assert.isAtLeast(Date.now() - started, 300)
      assert.isTrue((await send("e")).ok)

      assert.deepStrictEqual(
        proxy.log.map((entry) => [entry.action, entry.fault, entry.forwarded, entry.delivered, entry.status]),
        [
          ["SendMessage", "Error500", false, true, 500],
          ["SendMessage", "DropBefore", false, false, undefined],
          ["SendMessage", "DropAfter", true, false, 200],
          ["SendMessage", "Latency", true, true, 200],
          ["SendMessage", "None", true, true, 200]
        ]
      )
      assert.strictEqual(proxy.log[0]!.service, "AmazonSQS")
      assert.deepInclude(proxy.log[2]!.body as object, { QueueUrl: queue.queueUrl, MessageBody: "c" })
      assert.isString((proxy.log[2]!.response as { MessageId?: unknown }).MessageId, "moto's answer is logged though the client never got it")
    } finally {
      client.destroy()
      await proxy.close()
    }
  })

  it("random faults: the same seed gives the same faults, another seed others; each kind near its rate", () => {
    const request = { seq: 0, service: "AmazonSQS", action: "ReceiveMessage", body: {} }
    const rates = { error500: 0.1, dropBefore: 0.1, dropAfter: 0.1, latency: 0.1 }
    const draw = (seed: number) => {
      const decide = randomFaults(seed, rates)
      return Array.from({ length: 2000 }, (_, seq) => decide({ ...request, seq }))
    }
    const sequence = draw(7)
    assert.deepStrictEqual(draw(7), sequence)
    assert.notDeepEqual(draw(8), sequence)
    for (const kind of ["Error500", "DropBefore", "DropAfter", "Latency"]) {
      const count = sequence.filter((fault) => fault._tag === kind).length
      assert.isTrue(count > 120 && count < 280, `${kind}: ${count} of 2000`)
    }
    const only = randomFaults(7, { ...rates, applies: (r) => r.action === "SendMessageBatch" })
    assert.isTrue(Array.from({ length: 100 }, () => only(request)._tag).every((tag) => tag === "None"))
  })
})
