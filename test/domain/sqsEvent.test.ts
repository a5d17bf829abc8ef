/** The Lambda side of SQS as data: events in, messages out, and the partial batch response. */
import { assert, describe, it } from "@effect/vitest"
import { Schema } from "effect"
import { batchResponse, HandlerEvent, messagesOf, toSqsEvent } from "../../src/domain/sqsEvent.ts"

const decode = Schema.decodeUnknownSync(HandlerEvent)

describe("sqsEvent", () => {
  it("an event source mapping's records become messages: string attributes kept, typed and binary ones kept as sent too, the receive count read", () => {
    const messages = messagesOf(decode({
      Records: [
        {
          messageId: "m1",
          receiptHandle: "r1",
          body: "{}",
          attributes: { ApproximateReceiveCount: "3" },
          messageAttributes: { "pipeline.step": { stringValue: "2", dataType: "Number" }, blob: { binaryValue: "AAH/", dataType: "Binary" } }
        },
        { messageId: "m2", receiptHandle: "r2", body: "x" }
      ]
    }))
    assert.deepStrictEqual(messages, [
      {
        messageId: "m1",
        receiptHandle: "r1",
        body: "{}",
        attributes: { "pipeline.step": "2" },
        typedAttributes: {
          "pipeline.step": { dataType: "Number", stringValue: "2" },
          blob: { dataType: "Binary", binaryValue: Uint8Array.from([0, 1, 255]) }
        },
        receiveCount: 3
      },
      { messageId: "m2", receiptHandle: "r2", body: "x", attributes: {}, receiveCount: 1 }
    ])
  })

  it("the original design's raw message becomes one message", () => {
    assert.deepStrictEqual(
      messagesOf(decode({
        MessageId: "m",
        ReceiptHandle: "r",
        Body: "b",
        Attributes: { ApproximateReceiveCount: "2" },
        MessageAttributes: { a: { StringValue: "v", DataType: "String" }, b: { DataType: "Binary" } }
      })),
      [{ messageId: "m", receiptHandle: "r", body: "b", attributes: { a: "v" }, receiveCount: 2 }]
    )
  })

  it("a receive count that is missing, zero or not a number reads as 1 (a message in hand was received once)", () => {
    for (const count of ["0", "-2", "abc", ""]) {
      const [message] = messagesOf(decode({ Records: [{ messageId: "m", receiptHandle: "r", body: "", attributes: { ApproximateReceiveCount: count } }] }))
      assert.strictEqual(message!.receiveCount, 1, JSON.stringify(count))
    }
  })

  it("toSqsEvent is the inverse of messagesOf, and batchResponse lists the failed ids", () => {
    const message = { messageId: "m", receiptHandle: "r", body: "b", attributes: { k: "v" }, receiveCount: 4 }
    const event = toSqsEvent([message])
    assert.strictEqual(event.Records[0]!.eventSourceARN, "arn:aws:sqs:local:000000000000:pipeline")
    assert.deepStrictEqual(messagesOf(decode(event)), [message])
    assert.deepStrictEqual(batchResponse(["a", "b"]), { batchItemFailures: [{ itemIdentifier: "a" }, { itemIdentifier: "b" }] })
    assert.deepStrictEqual(batchResponse([]), { batchItemFailures: [] })
  })
})
