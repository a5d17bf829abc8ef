/**
 * Driving a handler the way Lambda's event source mapping does, against a real (moto) SQS queue:
 * receive a batch, hand it over as an SQS event, delete what the handler did not report failed.
 */
import { DeleteMessageBatchCommand, type Message, ReceiveMessageCommand, type SQSClient } from "@aws-sdk/client-sqs"

export const receiveBatch = async (sqs: SQSClient, queueUrl: string): Promise<Array<Message>> =>
  (await sqs.send(new ReceiveMessageCommand({
    QueueUrl: queueUrl,
    MaxNumberOfMessages: 10,
    MessageAttributeNames: ["All"],
    MessageSystemAttributeNames: ["All"]
  }))).Messages ?? []

/** The event an event source mapping makes of received messages, every field AWS documents. */
export const sqsEventOf = (messages: ReadonlyArray<Message>) => ({
  Records: messages.map((m) => ({
    messageId: m.MessageId,
    receiptHandle: m.ReceiptHandle,
    body: m.Body,
    attributes: m.Attributes,
    messageAttributes: Object.fromEntries(Object.entries(m.MessageAttributes ?? {}).map(([name, value]) => [name, {
      ...(value.StringValue !== undefined ? { stringValue: value.StringValue } : {}),
      // as Lambda hands a binary attribute: base64
      ...(value.BinaryValue !== undefined ? { binaryValue: Buffer.from(value.BinaryValue).toString("base64") } : {}),
      stringListValues: [],
      binaryListValues: [],
      dataType: value.DataType
    }])),
    md5OfBody: m.MD5OfBody,
    eventSource: "aws:sqs",
    eventSourceARN: "arn:aws:sqs:us-east-1:123456789012:queue",
    awsRegion: "us-east-1"
  }))
})

/**
 * Until the queue is empty (10 batches at most): each batch to `invoke` as an event, then deleted
 * but for the ids `invoke` says failed. Every message received, in order.
 */
export const drainThrough = async (
  sqs: SQSClient,
  queueUrl: string,
  invoke: (event: ReturnType<typeof sqsEventOf>) => Promise<ReadonlyArray<string>>
): Promise<Array<Message>> => {
  const received: Array<Message> = []
  for (let pass = 0; pass < 10; pass++) {
    const messages = await receiveBatch(sqs, queueUrl)
    if (messages.length === 0) break
    received.push(...messages)
    const failed = new Set(await invoke(sqsEventOf(messages)))
    const handled = messages.filter((m) => !failed.has(m.MessageId!))
    if (handled.length === 0) continue
    await sqs.send(new DeleteMessageBatchCommand({
      QueueUrl: queueUrl,
      Entries: handled.map((m, i) => ({ Id: `d${i}`, ReceiptHandle: m.ReceiptHandle! }))
    }))
  }
  return received
}

/** The records among `messages` that reached the greeting pipeline's end (a name). */
export const finishedGreetings = (messages: ReadonlyArray<Message>) =>
  messages.flatMap((m) => {
    const record = JSON.parse(m.Body!.startsWith("{") ? m.Body! : "null") as { name?: string } | null
    return record?.name === "world" ? [record as unknown] : []
  })
