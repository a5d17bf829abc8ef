/** `node --test order.test.ts`: the whole chain, in memory, with the test kit. */
import assert from "node:assert/strict"
import { test } from "node:test"
import { Effect } from "effect"
import { RetryableError } from "sqs-state-pipeline"
import { runPipeline } from "sqs-state-pipeline/testing"
import orders from "./order.ts"

test("orders reach done with a receipt; an unknown one is dead-lettered with its reason", async () => {
  const run = await Effect.runPromise(runPipeline(orders, ["A-1", "unknown-2"]))
  assert.deepEqual(run.done, [{ id: "A-1", sku: "SKU-A-1", charged: true, receipt: "receipts/A-1.txt" }])
  assert.equal(new TextDecoder().decode(run.objects.get("receipts/A-1.txt")), "order A-1: SKU-A-1 paid\n")
  assert.deepEqual(run.deadLetters.map(({ reason, step }) => ({ reason, step })), [{ reason: "SkuMissing", step: "findSku" }])
})

test("a payment API that is busy twice is retried until the order is charged", async () => {
  const busy = new RetryableError({ message: "payment API busy" })
  const run = await Effect.runPromise(runPipeline(orders, ["B-1"], { failures: [{ mutation: "charge", error: busy, times: 2 }] }))
  assert.deepEqual(run.done.map((order) => order.id), ["B-1"])
  assert.deepEqual(run.deadLetters, [])
})
