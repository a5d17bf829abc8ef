import "../support/awsEnv.ts"
import { DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb"
import { assert, describe, it, layer } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { TestClock } from "effect/testing"
import { TransitionLedger } from "../../src/services/TransitionLedger.ts"
import { createLedgerTable, uniqueName, withEnv } from "../support/aws.ts"
import { ledgerCases } from "../support/ledgerCases.ts"
import { freePort } from "../support/moto.ts"

const withDynamo = <A>(f: (client: DynamoDBClient) => Promise<A>) =>
  Effect.promise(async () => {
    const client = new DynamoDBClient({})
    try {
      return await f(client)
    } finally {
      client.destroy()
    }
  })

const tableName = await createLedgerTable()

describe("DynamoLedger", () => {
  layer(TransitionLedger.layerDynamo(tableName))("on moto", (it) => {
    ledgerCases(it)

    it.effect("stores the claimant, the claim time in ms, an expiry in epoch seconds 14 days on (the TTL attribute), the mutation and the record id", () =>
      Effect.gen(function*() {
        const now = Date.UTC(2026, 2, 1, 12, 0, 0, 250)
        yield* TestClock.setTime(now)
        const traceId = uniqueName("trace")
        yield* TransitionLedger.use((ledger) => ledger.claim([{ traceId, step: 7, messageId: "m1", mutation: "thumbnail", recordId: "STK1", queue: "q" }]))
        const { Item } = yield* withDynamo((client) =>
          client.send(new GetItemCommand({ TableName: tableName, Key: { traceId: { S: traceId }, step: { N: "7" } } }))
        )
        assert.deepStrictEqual(Item, {
          traceId: { S: traceId },
          step: { N: "7" },
          messageId: { S: "m1" },
          claimedAt: { N: String(now) },
          expiresAt: { N: String(Math.floor(now / 1000) + 14 * 24 * 3600) },
          mutation: { S: "thumbnail" },
          queue: { S: "q" },
          recordId: { S: "STK1" }
        })
      }))
  })

  const failure = (ledgerLayer: Layer.Layer<TransitionLedger>) =>
    TransitionLedger.use((ledger) => ledger.claim([{ traceId: "t", step: 1, messageId: "m" }])).pipe(
      Effect.provide(ledgerLayer, { local: true }),
      Effect.flip
    )

  it.effect("an unreachable endpoint fails with a retryable LedgerError", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePort)
      yield* withEnv({ AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${port}` })
      const error = yield* failure(TransitionLedger.layerDynamo(tableName))
      assert.strictEqual(error._tag, "LedgerError")
      assert.strictEqual(error.operation, "PutItem")
      assert.isTrue(error.retryable)
      assert.match(error.message, /ECONNREFUSED/)
    }))

  it.effect("a table that does not exist fails with a permanent LedgerError naming it", () =>
    Effect.gen(function*() {
      const error = yield* failure(TransitionLedger.layerDynamo("no-such-table"))
      assert.isFalse(error.retryable)
      assert.match(error.message, /^no-such-table: ResourceNotFoundException/)
    }))

  it.effect("layerSqs reads the table from PIPELINE_LEDGER_TABLE", () =>
    Effect.gen(function*() {
      yield* withEnv({ PIPELINE_LEDGER_TABLE: "table-from-config" })
      const error = yield* failure(TransitionLedger.layerSqs.pipe(Layer.orDie))
      assert.match(error.message, /^table-from-config: ResourceNotFoundException/)
    }))
})
