/**
 * An author's pipeline as the tests know it: three mutations failing differently (a permanent error
 * of its own, a retryable one from its own service), one storing an object, no explicit generics.
 * examples/orders/order.ts is the same shape, written against the package as an author writes it.
 */
import { Context, Effect, Layer, Schema } from "effect"
import type { RetryableError } from "../../../src/domain/errors.ts"
import { definePipeline, done, mutation } from "../../../src/domain/Pipeline.ts"
import { ObjectStore } from "../../../src/services/ObjectStore.ts"

export const Order = Schema.Struct({
  id: Schema.String,
  sku: Schema.optionalKey(Schema.String),
  charged: Schema.optionalKey(Schema.Boolean),
  receipt: Schema.optionalKey(Schema.String)
})
export type Order = typeof Order.Type

export class SkuMissing extends Schema.TaggedError<SkuMissing>()("SkuMissing", { message: Schema.String }) {}

export class Payments extends Context.Service<Payments, { charge(id: string): Effect.Effect<void, RetryableError> }>()("test/Payments") {}

/** An order whose id starts with "missing" has no SKU: dead-lettered at `enrich`. */
export const enrich = mutation("enrich", (order: Order) =>
  order.id.startsWith("missing")
    ? Effect.fail(new SkuMissing({ message: `no sku for ${order.id}` }))
    : Effect.succeed({ ...order, sku: `sku-${order.id}` }))

export const charge = mutation("charge", (order: Order) =>
  Effect.as(Payments.use((payments) => payments.charge(order.id)), { ...order, charged: true }))

export const storeReceipt = mutation("storeReceipt", (order: Order) =>
  Effect.gen(function*() {
    const key = `receipts/${order.id}.txt`
    yield* (yield* ObjectStore).put(key, new TextEncoder().encode(`paid ${order.sku}`), "text/plain")
    return { ...order, receipt: key }
  }))

/** The ids the pipeline's own Payments charged, in order. */
export const charged: Array<string> = []

export const orders = definePipeline({
  name: "orders",
  schema: Order,
  recordId: (order) => order.id,
  router: (order) =>
    order.sku === undefined ? enrich : order.charged !== true ? charge : order.receipt === undefined ? storeReceipt : done,
  initialRecord: (id) => ({ id }),
  layer: Layer.succeed(Payments, Payments.of({ charge: (id) => Effect.sync(() => void charged.push(id)) }))
})
