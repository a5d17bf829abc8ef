/**
 * The producer in process: inputs (bare ids, JSON records, JSON Lines) become validated initial
 * records with step-0 metadata, sent 10 a request; on FIFO queues with a group and a dedup id.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { definePipeline, done } from "../../src/domain/Pipeline.ts"
import { Attribute, transitionId } from "../../src/domain/transition.ts"
import { greetingPipeline } from "../../src/pipelines/greeting.ts"
import { linesOf, parseInputs, produce } from "../../src/programs/producer.ts"
import { MemoryQueueControl } from "../../src/services/queue/memory.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

const QUEUE = "https://sqs.test/000000000000/work"
const FIFO = "https://sqs.test/000000000000/work.fifo"

const input = (text: string, source = `argument ${text}`) => ({ source, text })

/** A pipeline whose records have a count, and whose initial record for an id has count 0. */
const Counter = Schema.Struct({ key: Schema.String, count: Schema.Number })
const counters = definePipeline({
  name: "counters",
  schema: Counter,
  recordId: (record) => record.key,
  router: () => done,
  initialRecord: (id) => ({ key: id, count: 0 }),
  layer: Layer.empty
})

describe("linesOf", () => {
  it("numbers lines from 1, skips blank ones, takes \\n and \\r\\n", () => {
    assert.deepStrictEqual(linesOf(`{"id":"a"}\r\n\n   \nb\n`, "records.jsonl"), [
      { source: "records.jsonl line 1", text: `{"id":"a"}`, jsonLine: true },
      { source: "records.jsonl line 4", text: "b", jsonLine: true }
    ])
    assert.deepStrictEqual(linesOf("", "stdin"), [])
  })
})

describe("parseInputs", () => {
  it("a bare id becomes the pipeline's initial record; a JSON object is taken as it is", () => {
    const { messages, invalid } = parseInputs(counters, QUEUE, [input("k1"), input(`  {"key":"k2","count":5}  `)])
    assert.deepStrictEqual(invalid, [])
    assert.deepStrictEqual(messages.map((m) => JSON.parse(m.body)), [{ key: "k1", count: 0 }, { key: "k2", count: 5 }])
    assert.deepStrictEqual(messages.map((m) => m.id), ["i0", "i1"])
  })

  it("each message starts a chain: step 0, its own trace, the hash of the record as transition id", () => {
    const { messages } = parseInputs(counters, QUEUE, [input("k1"), input("k2")])
    const [first, second] = messages.map((m) => m.attributes!)
    assert.strictEqual(first![Attribute.step], "0")
    assert.strictEqual(first![Attribute.transitionId], transitionId("k1", { key: "k1", count: 0 }))
    assert.notStrictEqual(first![Attribute.traceId], second![Attribute.traceId])
    assert.isUndefined(messages[0]!.groupId, "a standard queue takes no group")
    assert.isUndefined(messages[0]!.deduplicationId)
  })

  it("a line of JSON Lines must be JSON: a record or a quoted id; a bare word there is refused, not taken for an id", () => {
    const { messages, invalid } = parseInputs(counters, QUEUE, linesOf(`{"key":"k1","count":2}\n"k2"\nk3\n""\n`, "records.jsonl"))
    assert.deepStrictEqual(messages.map((m) => JSON.parse(m.body)), [{ key: "k1", count: 2 }, { key: "k2", count: 0 }])
    assert.deepStrictEqual(invalid.map((bad) => bad.source), ["records.jsonl line 3", "records.jsonl line 4"])
    assert.match(invalid[0]!.reason, /^not JSON: \S/)
    assert.strictEqual(invalid[1]!.reason, "an empty id")
  })

  it("an empty id is refused, whitespace included", () => {
    const { messages, invalid } = parseInputs(counters, QUEUE, [input("", "argument 1"), input("   ", "argument 2"), input("k")])
    assert.deepStrictEqual(invalid, [{ source: "argument 1", reason: "an empty id" }, { source: "argument 2", reason: "an empty id" }])
    assert.strictEqual(messages.length, 1)
  })

  it("bad inputs are reported by source with the reason, and numbering stays dense", () => {
    const { messages, invalid } = parseInputs(counters, QUEUE, [
      input("k1"),
      input(`{"key":`, "records.jsonl line 2"),
      input(`{"key":3,"count":"many"}`, "records.jsonl line 3"),
      input("k4")
    ])
    assert.deepStrictEqual(messages.map((m) => [m.id, JSON.parse(m.body).key]), [["i0", "k1"], ["i1", "k4"]])
    assert.strictEqual(invalid.length, 2)
    assert.strictEqual(invalid[0]!.source, "records.jsonl line 2")
    assert.match(invalid[0]!.reason, /^not JSON: \S/)
    assert.strictEqual(invalid[1]!.source, "records.jsonl line 3")
    assert.include(invalid[1]!.reason, `["key"]`)
    assert.include(invalid[1]!.reason, `["count"]`, "every failing field, not just the first")
  })

  it("on a FIFO queue each record gets its id as group and its transition id as dedup id", () => {
    const { messages } = parseInputs(counters, FIFO, [input("k1")])
    assert.strictEqual(messages[0]!.groupId, "k1")
    assert.strictEqual(messages[0]!.deduplicationId, transitionId("k1", { key: "k1", count: 0 }))
    assert.strictEqual(messages[0]!.deduplicationId, messages[0]!.attributes![Attribute.transitionId])
  })

  it("on a FIFO queue a record without an id goes to its own trace's group", () => {
    const { messages } = parseInputs(greetingPipeline, FIFO, [input("{}"), input("{}")])
    const [a, b] = messages
    assert.strictEqual(a!.groupId, a!.attributes![Attribute.traceId])
    assert.strictEqual(b!.groupId, b!.attributes![Attribute.traceId])
    assert.notStrictEqual(a!.groupId, b!.groupId)
  })
})

describe("produce", () => {
  it.effect("sends everything, 10 a request, and counts what went", () =>
    Effect.gen(function*() {
      const { messages } = parseInputs(greetingPipeline, QUEUE, Array.from({ length: 12 }, (_, i) => input(`g${i}`)))
      const result = yield* produce(QUEUE, messages)
      assert.deepStrictEqual(result, { sent: 12, failed: [] })
      const control = yield* MemoryQueueControl
      assert.strictEqual(control.requests.send, 2)
      assert.deepStrictEqual(control.messages(QUEUE).map((m) => JSON.parse(m.body).id), Array.from({ length: 12 }, (_, i) => `g${i}`))
    }).pipe(Effect.provide(MessageQueue.layerMemory())))

  it.effect("a record the queue refuses is reported with its body and reason; the others go", () =>
    Effect.gen(function*() {
      const control = yield* MemoryQueueControl
      control.faults.entry = (_operation, _queueUrl, message) =>
        message.body.includes(`"b"`) ? { id: message.id, code: "InvalidMessageContents", message: "no", senderFault: true } : undefined
      const { messages } = parseInputs(greetingPipeline, QUEUE, [input("a"), input("b"), input("c")])
      const result = yield* produce(QUEUE, messages)
      assert.deepStrictEqual(result, { sent: 2, failed: [{ body: `{"id":"b"}`, reason: "SendRejected: InvalidMessageContents: no" }] })
    }).pipe(Effect.provide(MessageQueue.layerMemory())))

  it.effect("on a FIFO queue producing the same record twice sends it once", () =>
    Effect.gen(function*() {
      const { messages } = parseInputs(greetingPipeline, FIFO, [input("same"), input("same")])
      yield* produce(FIFO, messages)
      assert.strictEqual((yield* MemoryQueueControl).messages(FIFO).length, 1)
    }).pipe(Effect.provide(MessageQueue.layerMemory())))
})
