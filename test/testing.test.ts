/**
 * The test kit an author uses (`sqs-state-pipeline/testing`): whole chains on memory layers, with
 * the pipeline's own layer (or a fake in its stead), injected failures, dead letters with reasons.
 */
import { Effect, Layer } from "effect"
import { assert, describe, it } from "vitest"
import { PermanentError, RetryableError } from "../src/domain/errors.ts"
import { runPipeline } from "../src/testing.ts"
import { charged, orders, Payments } from "./support/pipelines/orders.ts"

describe("runPipeline", () => {
  it("runs every record to done on the pipeline's own layer, and shows what was stored and dead-lettered", async () => {
    charged.length = 0
    const run = await Effect.runPromise(runPipeline(orders, ["A-1", { id: "A-2", sku: "given" }, "missing-3"]))
    assert.deepStrictEqual(
      [...run.done].sort((a, b) => a.id.localeCompare(b.id)),
      [
        { id: "A-1", sku: "sku-A-1", charged: true, receipt: "receipts/A-1.txt" },
        { id: "A-2", sku: "given", charged: true, receipt: "receipts/A-2.txt" }
      ]
    )
    assert.deepStrictEqual([...charged].sort(), ["A-1", "A-2"])
    assert.deepStrictEqual(new TextDecoder().decode(run.objects.get("receipts/A-2.txt")), "paid given")
    assert.deepStrictEqual(run.deadLetters.map(({ reason, step, message }) => ({ reason, step, message })), [
      { reason: "SkuMissing", step: "enrich", message: "no sku for missing-3" }
    ])
    assert.deepStrictEqual(JSON.parse(run.deadLetters[0]!.body), { id: "missing-3" })
    assert.strictEqual(run.transitions, 5)
  })

  it("a retryable failure injected twice is retried to done; a permanent one dead-letters only its record", async () => {
    const run = await Effect.runPromise(runPipeline(orders, ["B-1", "B-2"], {
      failures: [
        { mutation: "charge", error: new RetryableError({ message: "payment API busy" }), times: 2 },
        { mutation: "storeReceipt", recordId: "B-2", error: new PermanentError({ message: "receipt refused" }) }
      ]
    }))
    assert.deepStrictEqual(run.done.map((order) => order.id), ["B-1"])
    assert.deepStrictEqual(run.deadLetters.map(({ reason, step }) => ({ reason, step })), [{ reason: "PermanentError", step: "storeReceipt" }])
    assert.deepStrictEqual([...run.objects.keys()], ["receipts/B-1.txt"])
  })

  it("a failure that never stops is dead-lettered on the last receive with the last error as reason", async () => {
    const run = await Effect.runPromise(runPipeline(orders, ["C-1"], {
      failures: [{ mutation: "charge", error: new RetryableError({ message: "payment API down" }) }],
      maxReceives: 2
    }))
    assert.deepStrictEqual(run.done, [])
    assert.deepStrictEqual(run.deadLetters.map(({ reason, message }) => ({ reason, message })), [
      { reason: "RetryableError", message: "payment API down" }
    ])
  })

  it("a fake layer replaces the pipeline's own, and seeded objects are there to read", async () => {
    const failing = Layer.succeed(Payments, Payments.of({ charge: () => Effect.fail(new RetryableError({ message: "card declined" })) }))
    const run = await Effect.runPromise(runPipeline(orders, ["D-1"], { layer: failing, maxReceives: 1, objects: { "seed.txt": "hello" } }))
    assert.deepStrictEqual(run.deadLetters.map(({ reason, message }) => ({ reason, message })), [{ reason: "RetryableError", message: "card declined" }])
    assert.strictEqual(new TextDecoder().decode(run.objects.get("seed.txt")), "hello")
  })

  it("an input that is not a record for the pipeline fails the run before anything is sent", async () => {
    const error = await Effect.runPromise(Effect.flip(runPipeline(orders, [{ id: 7 } as never])))
    assert.match(error.message, /^record 1: /)
  })
})
