/**
 * Type inference an author relies on: mutations failing differently and needing different
 * services combine in `definePipeline` with no explicit generics. `tsc --noEmit` (part of
 * `npm test`) checks this file; the runtime assertions only keep vitest honest.
 */
import { Layer } from "effect"
import { assert, describe, expectTypeOf, it } from "vitest"
import type { RetryableError } from "../../src/domain/errors.ts"
import { definePipeline, done, type Pipeline } from "../../src/domain/Pipeline.ts"
import type { ObjectStore, ObjectStoreError } from "../../src/services/ObjectStore.ts"
import { charge, Order, orders, type Payments, type SkuMissing, storeReceipt } from "../support/pipelines/orders.ts"

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
