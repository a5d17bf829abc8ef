/**
 * An author's own pipeline: an order gets its SKU, is charged, and gets a receipt in the bucket.
 * Three mutations, each failing its own way; no explicit generics anywhere.
 */
import { Context, Effect, Layer, Schema } from "effect"
import { definePipeline, done, mutation, ObjectStore, PermanentError, RetryableError } from "sqs-state-pipeline"

const Order = Schema.Struct({
  id: Schema.String,
  sku: Schema.optionalKey(Schema.String),
  charged: Schema.optionalKey(Schema.Boolean),
  receipt: Schema.optionalKey(Schema.String)
})
type Order = typeof Order.Type

/** A mutation's own permanent error: this order can never get a SKU. */
export class SkuMissing extends Schema.TaggedError<SkuMissing>()("SkuMissing", { message: Schema.String, orderId: Schema.String }) {}

/** A service of this pipeline's own, built by its layer. */
export class Payments extends Context.Service<Payments, {
  charge(orderId: string): Effect.Effect<void, RetryableError | PermanentError>
}>()("orders/Payments") {}

const findSku = mutation("findSku", (order: Order) =>
  order.id.startsWith("unknown")
    ? Effect.fail(new SkuMissing({ message: `no SKU for order ${order.id}`, orderId: order.id }))
    : Effect.succeed({ ...order, sku: `SKU-${order.id}` }))

const charge = mutation("charge", (order: Order) =>
  Effect.gen(function*() {
    const payments = yield* Payments
    yield* payments.charge(order.id)
    return { ...order, charged: true }
  }))

const writeReceipt = mutation("writeReceipt", (order: Order) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore // the bucket: S3 on AWS, a folder locally, memory in tests
    const key = `receipts/${order.id}.txt`
    yield* store.put(key, new TextEncoder().encode(`order ${order.id}: ${order.sku} paid\n`), "text/plain")
    return { ...order, receipt: key }
  }))

export default definePipeline({
  name: "orders",
  schema: Order,
  recordId: (order) => order.id,
  router: (order) => {
    if (order.sku === undefined) return findSku
    if (order.charged !== true) return charge
    if (order.receipt === undefined) return writeReceipt
    return done
  },
  initialRecord: (id) => ({ id }),
  // a stand-in payment API; a real one would read its URL with Config and call it
  layer: Layer.succeed(Payments, Payments.of({ charge: () => Effect.void }))
})
