import "../support/awsEnv.ts"
import { SendMessageCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import { freePort } from "../support/moto.ts"
import { createQueue, withEnv } from "../support/aws.ts"
import type { OutgoingMessage, QueueMessage } from "../../src/domain/messages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const newQueue = (options?: Parameters<typeof createQueue>[0]) => Effect.promise(() => createQueue(options))

/** Receives until `expected` messages are in hand or 10 receives came back empty-handed. */
const receiveAtLeast = (queueUrl: string, expected: number) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const received: Array<QueueMessage> = []
    for (let misses = 0; received.length < expected && misses < 10;) {
      const batch = yield* queue.receive(queueUrl, { waitSeconds: 1 })
      if (batch.length === 0) misses++
      received.push(...batch)
    }
    return received
  })

describe("SqsQueue", () => {
  layer(MessageQueue.layerSqs)("on moto", (it) => {
    it.effect("sends 25 messages in batches of 10 and receives them with attributes and receiveCount", () =>
      Effect.gen(function*() {
        const queue = yield* MessageQueue
        const { queueUrl } = yield* newQueue()
        const messages: Array<OutgoingMessage> = Array.from({ length: 25 }, (_, i) => ({
          // ids SQS itself would refuse as batch entry ids
          id: `job:${i}/step.one`,
          body: JSON.stringify({ n: i }),
          attributes: { kind: "test", index: String(i) }
        }))
        const result = yield* queue.send(queueUrl, messages)
        assert.deepStrictEqual([...result.successful].sort(), messages.map((m) => m.id).sort())
        assert.deepStrictEqual(result.failed, [])

        const received = yield* receiveAtLeast(queueUrl, 25)
        assert.strictEqual(received.length, 25)
        const byIndex = new Map(received.map((m) => [Number(m.attributes["index"]), m]))
        for (let i = 0; i < 25; i++) {
          const message = byIndex.get(i)
          assert.isDefined(message, `message ${i}`)
          assert.strictEqual(message!.body, JSON.stringify({ n: i }))
          assert.deepStrictEqual(message!.attributes, { kind: "test", index: String(i) })
          assert.strictEqual(message!.receiveCount, 1)
          assert.isNotEmpty(message!.receiptHandle)
        }
      }))

    it.effect("a message from another sender keeps its String and Number attributes as text, and its Number and Binary ones as sent", () =>
      Effect.gen(function*() {
        const { queueUrl } = yield* newQueue()
        yield* Effect.promise(async () => {
          const client = new SQSClient({ useQueueUrlAsEndpoint: false })
          try {
            await client.send(new SendMessageCommand({
              QueueUrl: queueUrl,
              MessageBody: "{}",
              MessageAttributes: {
                kind: { DataType: "String", StringValue: "other" },
                count: { DataType: "Number", StringValue: "3" },
                blob: { DataType: "Binary", BinaryValue: new Uint8Array([1, 2]) }
              }
            }))
          } finally {
            client.destroy()
          }
        })
        const [message] = yield* receiveAtLeast(queueUrl, 1)
        assert.deepStrictEqual(message!.attributes, { kind: "other", count: "3" })
        assert.deepStrictEqual(message!.typedAttributes, {
          count: { dataType: "Number", stringValue: "3", binaryValue: undefined },
          blob: { dataType: "Binary", stringValue: undefined, binaryValue: new Uint8Array([1, 2]) }
        })
      }))

    it.effect("sends nothing for an empty list", () =>
      Effect.gen(function*() {
        const queue = yield* MessageQueue
        const { queueUrl } = yield* newQueue()
        const result = yield* queue.send(queueUrl, [])
        assert.deepStrictEqual(result, { successful: [], failed: [] })
      }))

    it.effect("reports a per-entry failure with senderFault while the rest of the batch succeeds", () =>
      Effect.gen(function*() {
        const queue = yield* MessageQueue
        const { queueUrl } = yield* newQueue()
        const result = yield* queue.send(queueUrl, [
          { id: "a", body: "first" },
          // SQS allows 0 to 900 seconds of delay; moto fails this entry alone
          { id: "too-late", body: "delayed", delaySeconds: 901 },
          { id: "c", body: "third", delaySeconds: 0 }
        ])
        assert.deepStrictEqual([...result.successful].sort(), ["a", "c"])
        assert.strictEqual(result.failed.length, 1)
        const failure = result.failed[0]!
        assert.strictEqual(failure.id, "too-late")
        assert.strictEqual(failure.code, "InvalidParameterValue")
        assert.isTrue(failure.senderFault)
        assert.include(failure.message, "DelaySeconds")
        const received = yield* receiveAtLeast(queueUrl, 2)
        assert.deepStrictEqual(received.map((m) => m.body).sort(), ["first", "third"])
      }))

    it.effect("a request SQS rejects as a whole fails each of its entries, not retryable (FIFO entry without group id)", () =>
      Effect.gen(function*() {
        const queue = yield* MessageQueue
        const { queueUrl } = yield* newQueue({ fifo: true })
        const result = yield* queue.send(queueUrl, [{ id: "a", body: "no group", deduplicationId: "d1" }])
        assert.deepStrictEqual(result.successful, [])
        assert.strictEqual(result.failed.length, 1)
        const [failure] = result.failed
        assert.strictEqual(failure!.id, "a")
        assert.strictEqual(failure!.code, "RequestFailed")
        assert.isTrue(failure!.senderFault)
        assert.include(failure!.message, "MessageGroupId")
      }))

    it.effect("one rejected chunk of a 25-message send fails only its own entries; the other chunks went through once", () =>
      Effect.gen(function*() {
        const queue = yield* MessageQueue
        const { queueUrl } = yield* newQueue({ fifo: true })
        const entries = Array.from({ length: 25 }, (_, i) => ({
          id: `e${i}`,
          body: `message ${i}`,
          deduplicationId: `d${i}`,
          ...(i === 13 ? {} : { groupId: "g" })
        }))
        const result = yield* queue.send(queueUrl, entries)
        assert.deepStrictEqual(result.failed.map((failure) => failure.id), entries.slice(10, 20).map((entry) => entry.id))
        assert.sameMembers([...result.successful], [...entries.slice(0, 10), ...entries.slice(20)].map((entry) => entry.id))
        const received: Array<string> = []
        while (true) {
          const batch = yield* queue.receive(queueUrl, { maxMessages: 10 })
          if (batch.length === 0) break
          received.push(...batch.map((message) => message.body))
          yield* queue.delete(queueUrl, batch.map((message, i) => ({ id: String(i), receiptHandle: message.receiptHandle })))
        }
        assert.sameMembers(received, [...entries.slice(0, 10), ...entries.slice(20)].map((entry) => entry.body))
      }))

    it.effect("changeVisibility 0 makes a message receivable again with a higher receiveCount; delete removes it", () =>
      Effect.gen(function*() {
        const queue = yield* MessageQueue
        const { queueUrl } = yield* newQueue({ visibilityTimeout: 60 })
        yield* queue.send(queueUrl, [{ id: "1", body: "one" }, { id: "2", body: "two" }])
        const first = yield* receiveAtLeast(queueUrl, 2)
        assert.strictEqual(first.length, 2)
        // both are in flight for 60 s now
        assert.deepStrictEqual(yield* queue.receive(queueUrl), [])

        const one = first.find((m) => m.body === "one")!
        const two = first.find((m) => m.body === "two")!
        const changed = yield* queue.changeVisibility(queueUrl, [
          { id: "one", receiptHandle: one.receiptHandle },
          { id: "bogus", receiptHandle: "not-a-receipt-handle" }
        ], 0)
        assert.deepStrictEqual(changed.successful, ["one"])
        assert.strictEqual(changed.failed.length, 1)
        assert.strictEqual(changed.failed[0]!.id, "bogus")
        assert.isTrue(changed.failed[0]!.senderFault)

        const again = yield* queue.receive(queueUrl)
        assert.strictEqual(again.length, 1)
        assert.strictEqual(again[0]!.body, "one")
        assert.strictEqual(again[0]!.messageId, one.messageId)
        assert.strictEqual(again[0]!.receiveCount, 2)

        const deleted = yield* queue.delete(queueUrl, [
          { id: "one", receiptHandle: again[0]!.receiptHandle },
          { id: "two", receiptHandle: two.receiptHandle },
          { id: "bogus", receiptHandle: "not-a-receipt-handle" }
        ])
        assert.deepStrictEqual([...deleted.successful].sort(), ["one", "two"])
        assert.deepStrictEqual(deleted.failed.map((f) => [f.id, f.code, f.senderFault]), [
          ["bogus", "ReceiptHandleIsInvalid", true]
        ])

        // deleted messages do not come back, even when made visible
        yield* queue.changeVisibility(queueUrl, [{ id: "x", receiptHandle: two.receiptHandle }], 0)
        const attributes = yield* queue.attributes(queueUrl)
        assert.strictEqual(attributes.approximateVisible, 0)
        assert.strictEqual(attributes.approximateInFlight, 0)
        assert.deepStrictEqual(yield* queue.receive(queueUrl), [])
      }))

    it.effect("deletes and changes visibility of more than 10 entries in chunks", () =>
      Effect.gen(function*() {
        const queue = yield* MessageQueue
        const { queueUrl } = yield* newQueue()
        yield* queue.send(queueUrl, Array.from({ length: 15 }, (_, i) => ({ id: `m${i}`, body: `b${i}` })))
        const received = yield* receiveAtLeast(queueUrl, 15)
        assert.strictEqual(received.length, 15)
        const entries = received.map((m) => ({ id: m.body, receiptHandle: m.receiptHandle }))
        const changed = yield* queue.changeVisibility(queueUrl, entries, 0)
        assert.strictEqual(changed.successful.length, 15)
        const again = yield* receiveAtLeast(queueUrl, 15)
        assert.strictEqual(again.length, 15)
        assert.isTrue(again.every((m) => m.receiveCount === 2))
        const deleted = yield* queue.delete(queueUrl, again.map((m) => ({ id: m.body, receiptHandle: m.receiptHandle })))
        assert.deepStrictEqual([...deleted.successful].sort(), received.map((m) => m.body).sort())
        assert.deepStrictEqual(deleted.failed, [])
        const attributes = yield* queue.attributes(queueUrl)
        assert.strictEqual(attributes.approximateVisible + attributes.approximateInFlight, 0)
      }))

    it.effect("attributes resolve the dead-letter queue URL and maxReceiveCount from the redrive policy", () =>
      Effect.gen(function*() {
        const queue = yield* MessageQueue
        const { queueUrl, dlqUrl } = yield* newQueue({ maxReceiveCount: 3, visibilityTimeout: 45 })
        yield* queue.send(queueUrl, [{ id: "1", body: "x" }, { id: "2", body: "y", delaySeconds: 60 }])
        const attributes = yield* queue.attributes(queueUrl)
        assert.deepStrictEqual(attributes.deadLetterQueueUrl, Option.some(dlqUrl!))
        assert.deepStrictEqual(attributes.maxReceiveCount, Option.some(3))
        assert.strictEqual(attributes.visibilityTimeout, 45)
        assert.strictEqual(attributes.approximateVisible, 1)
        assert.strictEqual(attributes.approximateDelayed, 1)
        assert.isFalse(attributes.fifo)
      }))

    it.effect("attributes without a redrive policy have no dead-letter queue; FIFO is reported", () =>
      Effect.gen(function*() {
        const queue = yield* MessageQueue
        const plain = yield* newQueue()
        const fifo = yield* newQueue({ fifo: true, maxReceiveCount: 2 })
        const plainAttributes = yield* queue.attributes(plain.queueUrl)
        assert.isTrue(Option.isNone(plainAttributes.deadLetterQueueUrl))
        assert.isTrue(Option.isNone(plainAttributes.maxReceiveCount))
        assert.isFalse(plainAttributes.fifo)
        const fifoAttributes = yield* queue.attributes(fifo.queueUrl)
        assert.isTrue(fifoAttributes.fifo)
        assert.deepStrictEqual(fifoAttributes.deadLetterQueueUrl, Option.some(fifo.dlqUrl!))
      }))

    it.effect("FIFO: the same deduplication id sent twice yields one message", () =>
      Effect.gen(function*() {
        const queue = yield* MessageQueue
        const { queueUrl } = yield* newQueue({ fifo: true })
        const message = { id: "a", body: "once", groupId: "g1", deduplicationId: "dedup-1", attributes: { k: "v" } }
        const first = yield* queue.send(queueUrl, [message])
        const second = yield* queue.send(queueUrl, [{ ...message, body: "twice" }])
        // SQS accepts the duplicate and drops it
        assert.deepStrictEqual(first.successful, ["a"])
        assert.deepStrictEqual(second.successful, ["a"])
        yield* queue.send(queueUrl, [{ id: "b", body: "other", groupId: "g1", deduplicationId: "dedup-2" }])
        const received = yield* receiveAtLeast(queueUrl, 2)
        assert.deepStrictEqual(received.map((m) => m.body), ["once", "other"])
        assert.deepStrictEqual(received[0]!.attributes, { k: "v" })
        // and the duplicate does not turn up later either
        yield* queue.delete(queueUrl, received.map((m) => ({ id: m.messageId, receiptHandle: m.receiptHandle })))
        assert.deepStrictEqual(yield* queue.receive(queueUrl, { waitSeconds: 1 }), [])
      }))

    it.effect("a closed port fails a receive with a retryable QueueError and each entry of a send as retryable, even though the queue URL's host is fine", () =>
      Effect.gen(function*() {
        const { queueUrl } = yield* newQueue()
        const port = yield* Effect.promise(freePort)
        yield* withEnv({ AWS_ENDPOINT_URL_SQS: `http://127.0.0.1:${port}` })
        const queued = yield* Effect.gen(function*() {
          const queue = yield* MessageQueue
          const sent = yield* queue.send(queueUrl, [{ id: "a", body: "x" }])
          const received = yield* Effect.flip(queue.receive(queueUrl))
          return { sent, received }
        }).pipe(
          // a client of its own, built with the environment above
          Effect.provide(MessageQueue.layerSqs, { local: true })
        )
        assert.deepStrictEqual(queued.sent.successful, [])
        assert.strictEqual(queued.sent.failed[0]!.id, "a")
        assert.isFalse(queued.sent.failed[0]!.senderFault, "worth sending again")
        assert.match(queued.sent.failed[0]!.message, /ECONNREFUSED/)
        const error = queued.received
        assert.strictEqual(error._tag, "QueueError")
        assert.strictEqual(error.operation, "ReceiveMessage")
        assert.strictEqual(error.queueUrl, queueUrl)
        assert.isTrue(error.retryable)
        assert.match(error.message, /ECONNREFUSED/)
      }))

    it.effect("requests go to AWS_ENDPOINT_URL, not to the queue URL's host", () =>
      Effect.gen(function*() {
        const queue = yield* MessageQueue
        const { queueUrl } = yield* newQueue()
        const port = yield* Effect.promise(freePort)
        const url = new URL(queueUrl)
        url.host = `127.0.0.1:${port}`
        const elsewhere = url.toString()
        const result = yield* queue.send(elsewhere, [{ id: "a", body: "via endpoint" }])
        assert.deepStrictEqual(result.successful, ["a"])
        const received = yield* receiveAtLeast(queueUrl, 1)
        assert.deepStrictEqual(received.map((m) => m.body), ["via endpoint"])
      }))
  })
})
