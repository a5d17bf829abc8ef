/**
 * Type inference an author relies on: mutations failing differently and needing different
 * services combine in `definePipeline` with no explicit generics. `tsc --noEmit` (part of
 * `npm test`) checks this file; the runtime assertions only keep vitest honest.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { assert, describe, expectTypeOf, it } from "vitest"
import { RetryableError } from "../../src/domain/errors.ts"
import { definePipeline, done, mutation, type Pipeline } from "../../src/domain/Pipeline.ts"
import { ObjectStore, ObjectStoreError } from "../../src/services/ObjectStore.ts"

const Order = Schema.Struct({
  id: Schema.String,
  sku: Schema.optionalKey(Schema.String),
  charged: Schema.optionalKey(Schema.Boolean),
  receipt: Schema.optionalKey(Schema.String)
})
type Order = typeof Order.Type

class SkuMissing extends Schema.TaggedError<SkuMissing>()("SkuMissing", { message: Schema.String, sku: Schema.String }) {}

class Payments extends Context.Service<Payments, { charge(id: string): Effect.Effect<void, RetryableError> }>()("test/Payments") {}

const enrich = mutation("enrich", (order: Order) =>
  order.id === "missing"
    ? Effect.fail(new SkuMissing({ message: "no such sku", sku: order.id }))
    : Effect.succeed({ ...order, sku: `sku-${order.id}` }))

const charge = mutation("charge", (order: Order) =>
  Effect.gen(function*() {
    yield* (yield* Payments).charge(order.id)
    return { ...order, charged: true }
  }))

const storeReceipt = mutation("storeReceipt", (order: Order) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    const key = `receipts/${order.id}.txt`
    yield* store.put(key, new TextEncoder().encode("paid"), "text/plain")
    return { ...order, receipt: key }
  }))

const orders = definePipeline({
  name: "orders",
  schema: Order,
  recordId: (order) => order.id,
  router: (order) =>
    order.sku === undefined ? enrich : order.charged !== true ? charge : order.receipt === undefined ? storeReceipt : done,
  initialRecord: (id) => ({ id }),
  layer: Layer.succeed(Payments, Payments.of({ charge: () => Effect.void }))
})

// A mutation needing a service that neither a runtime nor the pipeline's layer provides is refused
const missingPayments = definePipeline({
  name: "orders-without-payments",
  schema: Order,
  recordId: (order) => order.id,
  // @ts-expect-error Payments is not provided: Layer.empty builds nothing
  router: (order) => (order.charged !== true ? charge : done),
  initialRecord: (id) => ({ id }),
  layer: Layer.empty
})

describe("definePipeline infers", () => {
  it("the record, the union of the mutations' errors and their services", () => {
    expectTypeOf(orders).toEqualTypeOf<Pipeline<Order, SkuMissing | RetryableError | ObjectStoreError, Payments | ObjectStore>>()
    assert.strictEqual(orders.name, "orders")
  })

  it("a pipeline whose mutations need only what runtimes provide, with Layer.empty", () => {
    const receipts = definePipeline({
      name: "receipts",
      schema: Order,
      recordId: (order) => order.id,
      router: (order) => (order.receipt === undefined ? storeReceipt : done),
      initialRecord: (id) => ({ id }),
      layer: Layer.empty
    })
    expectTypeOf(receipts).toEqualTypeOf<Pipeline<Order, ObjectStoreError, ObjectStore>>()
    assert.strictEqual(missingPayments.name, "orders-without-payments")
  })
})
