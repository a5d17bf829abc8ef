/**
 * The transition ledger: who advanced each place of each chain.
 *
 * A place is a chain's trace id and a step number. Before a message's mutation runs, the engine
 * claims the message's place with the message id as claimant. The claim is won when the place is
 * free (or its earlier claim has expired), and re-won by the same message on a redelivery; a
 * different message holding the place means this one is a copy (a successor sent twice by a
 * worker that died before deleting its message), which is acknowledged without running anything.
 * So each place is advanced by one message lineage only, and a chain never forks.
 *
 * Layers: DynamoDB (`ledger/dynamo.ts`), the local queue's SQLite file (`ledger/local.ts`), memory
 * (here, for tests), and none: without a ledger every claim is won and forks stay possible.
 */
import { Clock, Config, Context, Duration, Effect, Layer, Option, Schema } from "effect"
import { DataDirConfig } from "./DataDir.ts"
import { QueueUrlConfig } from "./MessageQueue.ts"

export interface Place {
  readonly traceId: string
  readonly step: number
}

export interface Claim extends Place {
  /** The message that wants to advance this place. */
  readonly messageId: string
}

/** `Won`: the place was free. `Redelivery`: this same message already held it. `Duplicate`: another message holds it. */
export type ClaimResult = "Won" | "Redelivery" | "Duplicate"

export class LedgerError extends Schema.TaggedError<LedgerError>()("LedgerError", {
  operation: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean,
  cause: Schema.Defect()
}) {}

/** Claims outlive any copy of a message: SQS keeps a message at most 14 days. */
export const CLAIM_TTL = Duration.days(14)

/** `PIPELINE_LEDGER=off` runs without the transition ledger anywhere (to measure what it saves). */
const LedgerSwitch = Config.Literals(["on", "off"], "PIPELINE_LEDGER").pipe(Config.withDefault("on"))
const LedgerTableConfig = Config.option(Config.NonEmptyString("PIPELINE_LEDGER_TABLE"))

export class TransitionLedger extends Context.Service<TransitionLedger, {
  /** False for the no-ledger layer, so a runtime can say once that forks are possible. */
  readonly enabled: boolean
  /** Claims each place for its message, in one round trip where the store allows; results in order. */
  claim(claims: ReadonlyArray<Claim>): Effect.Effect<ReadonlyArray<ClaimResult>, LedgerError>
  /**
   * Gives places back, each only if still held by that message: a dead-lettered message's place
   * must be claimable by the message a redrive sends in its stead (a new message id).
   */
  release(claims: ReadonlyArray<Claim>): Effect.Effect<void, LedgerError>
}>()("pipeline/services/TransitionLedger") {
  /** No ledger: every claim is won. */
  static readonly layerNone = Layer.succeed(
    TransitionLedger,
    TransitionLedger.of({
      enabled: false,
      claim: (claims) => Effect.succeed(claims.map((): ClaimResult => "Won")),
      release: () => Effect.void
    })
  )

  /** No ledger, said once when the layer is built: forks stay possible. */
  static readonly layerNoneWarning = (why: string) =>
    Layer.merge(
      TransitionLedger.layerNone,
      Layer.effectDiscard(
        Effect.logWarning(`no transition ledger (${why}): a chain can fork when a worker dies between sending a successor and deleting its message`)
      )
    )

  /** A DynamoDB table (partition key `traceId` S, sort key `step` N, TTL on `expiresAt`). */
  static readonly layerDynamo = (tableName: string): Layer.Layer<TransitionLedger> =>
    Layer.effect(TransitionLedger, Effect.flatMap(Effect.promise(() => import("./ledger/dynamo.ts")), (dynamo) => dynamo.make(tableName)))

  /** A table in the local queue's SQLite file in `directory`. */
  static readonly layerLocal = (directory: string): Layer.Layer<TransitionLedger, LedgerError> =>
    Layer.effect(TransitionLedger, Effect.flatMap(Effect.promise(() => import("./ledger/local.ts")), (local) => local.make(directory)))

  /** Beside SQS: the DynamoDB table `PIPELINE_LEDGER_TABLE` names, or none (said once, at start). */
  static readonly layerSqs: Layer.Layer<TransitionLedger, Config.ConfigError> = Layer.unwrap(
    Effect.gen(function*() {
      if ((yield* LedgerSwitch) === "off") return TransitionLedger.layerNoneWarning("PIPELINE_LEDGER=off")
      const table = yield* LedgerTableConfig
      return Option.isSome(table)
        ? TransitionLedger.layerDynamo(table.value)
        : TransitionLedger.layerNoneWarning("PIPELINE_LEDGER_TABLE is not set")
    })
  )

  /** Beside the embedded queue: a table in its file in `PIPELINE_DATA_DIR`. */
  static readonly layerLocalConfig: Layer.Layer<TransitionLedger, LedgerError | Config.ConfigError> = Layer.unwrap(
    Effect.gen(function*() {
      if ((yield* LedgerSwitch) === "off") return TransitionLedger.layerNoneWarning("PIPELINE_LEDGER=off")
      return TransitionLedger.layerLocal(yield* DataDirConfig)
    })
  )

  /** Beside whichever queue the environment selects (`PIPELINE_QUEUE_URL`). */
  static readonly layer: Layer.Layer<TransitionLedger, LedgerError | Config.ConfigError> = Layer.unwrap(
    Effect.map(QueueUrlConfig, (url) => Option.isSome(url) ? TransitionLedger.layerSqs : TransitionLedger.layerLocalConfig)
  )

  /** In memory, on Effect's Clock (so TestClock can expire claims). */
  static readonly layerMemory = Layer.sync(TransitionLedger, () => {
    const held = new Map<string, { readonly messageId: string; readonly expiresAt: number }>()
    return TransitionLedger.of({
      enabled: true,
      claim: (claims) =>
        Effect.map(Clock.currentTimeMillis, (now) =>
          claims.map((claim): ClaimResult => {
            const key = placeKey(claim)
            const current = held.get(key)
            if (current !== undefined && current.expiresAt > now) {
              return current.messageId === claim.messageId ? "Redelivery" : "Duplicate"
            }
            held.set(key, { messageId: claim.messageId, expiresAt: now + Duration.toMillis(CLAIM_TTL) })
            return "Won"
          })),
      release: (claims) =>
        Effect.sync(() => {
          for (const claim of claims) {
            const key = placeKey(claim)
            if (held.get(key)?.messageId === claim.messageId) held.delete(key)
          }
        })
    })
  })
}

export const placeKey = (place: Place): string => `${place.traceId}#${place.step}`
