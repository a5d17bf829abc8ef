/**
 * The transition ledger: who advanced each place of each chain, and so each record's history.
 *
 * A place is a chain's trace id and a step number. Before a message's mutation runs, the engine
 * claims the message's place with the message id as claimant. The claim is won when the place is
 * free (or its earlier claim has expired, or its message was dead-lettered), and re-won by the same
 * message on a redelivery; a different message holding the place means this one is a copy (a
 * successor sent twice by a worker that died before deleting its message), which is acknowledged
 * without running anything. So each place is advanced by one message lineage only, and a chain
 * never forks.
 *
 * The history costs the common step nothing: a claim also keeps when it was made, the mutation that
 * made the message's state and, once a chain, the record's id; a place was advanced when the next
 * place is claimed. Only the endings are written apart (`finish`): done, dead-lettered with its
 * reason (which also gives the place back, as a redrive sends a new message for it), and a copy
 * skipped; and a redrive's message, taking a dead letter's place, keeps that attempt (`earlier`).
 *
 * Layers: DynamoDB (`ledger/dynamo.ts`), the local queue's SQLite file (`ledger/local.ts`), memory
 * (here, for tests), and none: without a ledger every claim is won, forks stay possible and there
 * is no history.
 */
import { Clock, Config, Context, Duration, Effect, Layer, Option, Schema } from "effect"
import { DataDirConfig } from "./DataDir.ts"
import { QueueUrlConfig } from "./MessageQueue.ts"
import { literalSetting } from "./settings.ts"

export interface Place {
  readonly traceId: string
  readonly step: number
}

export interface Claim extends Place {
  /** The message that wants to advance this place. */
  readonly messageId: string
  /** The record's id where the message names it (`pipeline.record_id`): the chain is then found by it. */
  readonly recordId?: string | undefined
  /** The mutation that made the message's state (`pipeline.mutation`); none for a chain's first message. */
  readonly mutation?: string | undefined
  /** The queue the message came from: a ledger may serve several (locally, a queue per pipeline). */
  readonly queue?: string | undefined
  /**
   * When the place was reached, for a place passed while running ahead (claimed when the pass
   * ends); the claim's own time otherwise. The history's time; the claim's expiry runs from now.
   */
  readonly reachedAt?: number | undefined
}

/** `Won`: the place was free. `Redelivery`: this same message already held it. `Duplicate`: another message holds it. */
export type ClaimResult = "Won" | "Redelivery" | "Duplicate"

/** How a place ended when not simply advanced (the next place's claim says that). */
export type Ending =
  | { readonly _tag: "Done" }
  /** `reason` is the error's tag, `stage` the mutation (or `decode` / `route`) it failed in. */
  | { readonly _tag: "DeadLettered"; readonly reason: string; readonly message: string; readonly stage: string }
  /** A copy of the place's message was skipped; `messageId` of `Finish` is the copy's. */
  | { readonly _tag: "DuplicateSkipped" }

export interface Finish extends Place {
  readonly messageId: string
  readonly ending: Ending
}

/** A claimed place as the ledger keeps it: one step of a record's history. */
export interface Entry extends Place {
  readonly messageId: string
  readonly recordId?: string | undefined
  readonly mutation?: string | undefined
  readonly queue?: string | undefined
  /** Epoch ms of the latest claim. */
  readonly claimedAt: number
  readonly ending?: {
    readonly tag: "Done" | "DeadLettered"
    /** Epoch ms. */
    readonly at: number
    readonly reason?: string | undefined
    readonly message?: string | undefined
    readonly stage?: string | undefined
  } | undefined
  /** Copies of this place's message skipped. */
  readonly duplicatesSkipped: number
  /**
   * The dead-lettered attempt this claim took the place of (a redrive's message), the latest one
   * only; written by the claim that takes the place, one more write for a redriven step.
   */
  readonly earlier?: {
    readonly messageId: string
    /** Epoch ms it was dead-lettered. */
    readonly at: number
    readonly reason?: string | undefined
    readonly message?: string | undefined
    readonly stage?: string | undefined
  } | undefined
}

export class LedgerError extends Schema.TaggedError<LedgerError>()("LedgerError", {
  operation: Schema.String,
  message: Schema.String,
  retryable: Schema.Boolean,
  cause: Schema.Defect()
}) {}

/** Claims outlive any copy of a message: SQS keeps a message at most 14 days. */
export const CLAIM_TTL = Duration.days(14)

/** `PIPELINE_LEDGER=off` runs without the transition ledger anywhere (to measure what it saves). */
const LedgerSwitch = literalSetting("PIPELINE_LEDGER", ["on", "off"]).pipe(Config.withDefault("on"))
const LedgerTableConfig = Config.option(Config.NonEmptyString("PIPELINE_LEDGER_TABLE"))

export class TransitionLedger extends Context.Service<TransitionLedger, {
  /** False for the no-ledger layer, so a runtime can say once that forks are possible. */
  readonly enabled: boolean
  /** Claims each place for its message, in one round trip where the store allows; results in order. */
  claim(claims: ReadonlyArray<Claim>): Effect.Effect<ReadonlyArray<ClaimResult>, LedgerError>
  /**
   * Records how places ended. `Done` and `DeadLettered` only where the place is still held by that
   * message; `DeadLettered` also gives the place back, to be claimable by the message a redrive
   * sends in its stead (a new message id). `DuplicateSkipped` counts on the place, whoever holds it.
   */
  finish(finishes: ReadonlyArray<Finish>): Effect.Effect<void, LedgerError>
  /**
   * The places of chain `id` (a trace id) or, if there is none, of every chain whose record id is
   * `id`: ordered by chain (earliest first) and step.
   */
  history(id: string): Effect.Effect<ReadonlyArray<Entry>, LedgerError>
  /** Every place claimed at or after `since` (epoch ms), in no order. On DynamoDB a scan of the table. */
  entries(since: number): Effect.Effect<ReadonlyArray<Entry>, LedgerError>
}>()("pipeline/services/TransitionLedger") {
  /** No ledger: every claim is won. */
  static readonly layerNone = Layer.succeed(
    TransitionLedger,
    TransitionLedger.of({
      enabled: false,
      claim: (claims) => Effect.succeed(claims.map((): ClaimResult => "Won")),
      finish: () => Effect.void,
      history: () => Effect.succeed([]),
      entries: () => Effect.succeed([])
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

  /**
   * A DynamoDB table (partition key `traceId` S, sort key `step` N, TTL on `expiresAt`) with a
   * global secondary index `byRecordId` (partition key `recordId` S, keys only), sparse: only a
   * chain's first claim that knows its record id carries it.
   */
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

  /**
   * For reading the history (`trace`, `diagram`, `status`): the store `layer` chooses, and where
   * there is none, the no-ledger layer without a warning (the reader says so itself).
   */
  static readonly layerReader: Layer.Layer<TransitionLedger, LedgerError | Config.ConfigError> = Layer.unwrap(
    Effect.gen(function*() {
      if ((yield* LedgerSwitch) === "off") return TransitionLedger.layerNone
      if (Option.isNone(yield* QueueUrlConfig)) return TransitionLedger.layerLocal(yield* DataDirConfig)
      const table = yield* LedgerTableConfig
      return Option.isSome(table) ? TransitionLedger.layerDynamo(table.value) : TransitionLedger.layerNone
    })
  )

  /** In memory, on Effect's Clock (so TestClock can expire claims). */
  static readonly layerMemory = Layer.sync(TransitionLedger, () => {
    const held = new Map<string, Entry & { readonly expiresAt: number }>()
    const sorted = (entries: Iterable<Entry>) => sortEntries([...entries].map(({ expiresAt: _, ...entry }: Entry & { expiresAt?: number }) => entry))
    return TransitionLedger.of({
      enabled: true,
      claim: (claims) =>
        Effect.map(Clock.currentTimeMillis, (now) =>
          claims.map((claim): ClaimResult => {
            const key = placeKey(claim)
            const current = held.get(key)
            const free = current === undefined || current.expiresAt <= now || current.ending?.tag === "DeadLettered"
            if (!free && current.messageId !== claim.messageId) return "Duplicate"
            const deadLetter = current?.ending?.tag === "DeadLettered" && current.messageId !== claim.messageId ? current : undefined
            held.set(key, {
              // a redrive's message keeps the attempt it replaced; a redelivery what its place kept
              earlier: deadLetter !== undefined
                ? {
                  messageId: deadLetter.messageId,
                  at: deadLetter.ending!.at,
                  reason: deadLetter.ending!.reason,
                  message: deadLetter.ending!.message,
                  stage: deadLetter.ending!.stage
                }
                : free
                ? undefined
                : current.earlier,
              traceId: claim.traceId,
              step: claim.step,
              messageId: claim.messageId,
              recordId: claim.recordId,
              mutation: claim.mutation,
              queue: claim.queue,
              claimedAt: claim.reachedAt ?? now,
              duplicatesSkipped: 0,
              expiresAt: now + Duration.toMillis(CLAIM_TTL)
            })
            return free ? "Won" : "Redelivery"
          })),
      finish: (finishes) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          for (const { ending, ...place } of finishes) {
            const key = placeKey(place)
            const current = held.get(key)
            if (current === undefined) continue
            if (ending._tag === "DuplicateSkipped") {
              held.set(key, { ...current, duplicatesSkipped: current.duplicatesSkipped + 1 })
            } else if (current.messageId === place.messageId) {
              const { _tag, ...reason } = ending
              held.set(key, { ...current, ending: { tag: _tag, at: now, ...reason } })
            }
          }
        }),
      history: (id) =>
        Effect.sync(() => {
          const all = [...held.values()]
          const traces = all.some((entry) => entry.traceId === id)
            ? new Set([id])
            : new Set(all.filter((entry) => entry.recordId === id).map((entry) => entry.traceId))
          return sorted(all.filter((entry) => traces.has(entry.traceId)))
        }),
      entries: (since) => Effect.sync(() => sorted([...held.values()].filter((entry) => entry.claimedAt >= since)))
    })
  })
}

/** Whether an entry is of `queue`'s messages (entries claimed before the ledger kept the queue count as any). */
export const ofQueue = (queue: string) => (entry: Entry): boolean => entry.queue === undefined || entry.queue === queue

/** Entries by chain (the chain whose earliest claim is earliest first) and step. */
export const sortEntries = (entries: ReadonlyArray<Entry>): ReadonlyArray<Entry> => {
  const firstClaim = new Map<string, number>()
  for (const entry of entries) firstClaim.set(entry.traceId, Math.min(firstClaim.get(entry.traceId) ?? Infinity, entry.claimedAt))
  return [...entries].sort((a, b) =>
    a.traceId === b.traceId
      ? a.step - b.step
      : firstClaim.get(a.traceId)! - firstClaim.get(b.traceId)! || (a.traceId < b.traceId ? -1 : 1))
}

export const placeKey = (place: Place): string => `${place.traceId}#${place.step}`
