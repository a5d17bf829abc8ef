/**
 * The `TransitionLedger` on Amazon DynamoDB, through @aws-sdk/client-dynamodb.
 *
 * One item per claimed place: partition key `traceId` (S), sort key `step` (N), the claimant
 * `messageId` (S), `claimedAt` (N, ms of the latest claim), `expiresAt` (N, epoch seconds; the
 * table's TTL attribute), the message's `queue` (S), and where the message names them `mutation`
 * (S) and `recordId` (S). `recordId` is the key of the sparse index `byRecordId`: only a chain's
 * first message that knows its record id carries it, so the index costs a write per chain, not
 * per step. An ending adds `ending` (S, `Done` or `DeadLettered`), `endedAt` (N, ms) and for a dead
 * letter `reason`, `reasonMessage`, `stage` (S); skipped copies add to `duplicatesSkipped` (N); a
 * redrive's message taking a dead letter's place keeps that attempt as `earlierMessageId`,
 * `earlierAt`, `earlierReason`, `earlierReasonMessage`, `earlierStage`. A claim is one PutItem (one
 * write unit for these small items), an ending or a kept attempt one UpdateItem. Region, endpoint
 * and credentials come from the SDK's own conventions (AWS_REGION, AWS_ENDPOINT_URL /
 * AWS_ENDPOINT_URL_DYNAMODB, the default credential chain).
 */
import {
  type AttributeValue,
  DynamoDBClient,
  PutItemCommand,
  QueryCommand,
  ScanCommand,
  UpdateItemCommand
} from "@aws-sdk/client-dynamodb"
import { Clock, Duration, Effect } from "effect"
import {
  type Claim,
  CLAIM_TTL,
  type ClaimResult,
  type Entry,
  type Finish,
  LedgerError,
  sortEntries,
  TransitionLedger
} from "../TransitionLedger.ts"
import { awsErrorMessage, isRetryableAwsError } from "../awsSdk.ts"

/** Conditional writes of one call that may be in flight at once. */
const CLAIM_CONCURRENCY = 10

const isConditionFailure = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && (cause as { name?: unknown }).name === "ConditionalCheckFailedException"

/** A dead-lettered item's attempt, and an item's kept one: message id, when, reason, its message, stage. */
const earlierOf = (old: Record<string, AttributeValue>) => [old["messageId"], old["endedAt"], old["reason"], old["reasonMessage"], old["stage"]]
const keptEarlier = (old: Record<string, AttributeValue>) =>
  [old["earlierMessageId"], old["earlierAt"], old["earlierReason"], old["earlierReasonMessage"], old["earlierStage"]]

/** The index of chains by record id (see infra/template.yaml). */
export const RECORD_ID_INDEX = "byRecordId"

/** An error's message is kept up to this length (an item's size is its cost). */
const MAX_TEXT = 1000

const key = (claim: Pick<Claim, "traceId" | "step">): Record<string, AttributeValue> => ({
  traceId: { S: claim.traceId },
  step: { N: String(claim.step) }
})

/** The ledger in `tableName`: one client, destroyed with the layer's scope. */
export const make = (tableName: string) => Effect.gen(function*() {
  const client = yield* Effect.acquireRelease(
    Effect.sync(() => new DynamoDBClient({})),
    (client) => Effect.sync(() => client.destroy())
  )

  /** A request; a failed condition is an answer (`false`), anything else a LedgerError. */
  const call = <A>(
    operation: string,
    request: (signal: AbortSignal) => Promise<A>
  ): Effect.Effect<A | false, LedgerError> =>
    Effect.tryPromise({
      try: request,
      catch: (cause) => cause
    }).pipe(
      Effect.catch((cause) =>
        isConditionFailure(cause)
          ? Effect.succeed(false as const)
          : Effect.fail(
            new LedgerError({
              operation,
              message: `${tableName}: ${awsErrorMessage(cause)}`,
              retryable: isRetryableAwsError(cause),
              cause
            })
          )
      )
    )

  /**
   * One conditional PutItem: the place is free (no item, or an expired one that DynamoDB's TTL,
   * which deletes lazily, up to days late, has not removed yet) or held by this same message.
   * A lost answer retried by the SDK finds its own item and reads as a redelivery: still ours.
   */
  const claimOne = (claim: Claim, now: number): Effect.Effect<ClaimResult, LedgerError> => {
    const nowSeconds = Math.floor(now / 1000)
    return call("PutItem", (abortSignal) =>
      client.send(
        new PutItemCommand({
          TableName: tableName,
          Item: {
            ...key(claim),
            messageId: { S: claim.messageId },
            claimedAt: { N: String(claim.reachedAt ?? now) },
            expiresAt: { N: String(Math.floor((now + Duration.toMillis(CLAIM_TTL)) / 1000)) },
            ...(claim.mutation === undefined ? {} : { mutation: { S: claim.mutation } }),
            ...(claim.queue === undefined ? {} : { queue: { S: claim.queue } }),
            ...(claim.recordId === undefined || claim.recordId === "" ? {} : { recordId: { S: claim.recordId } })
          },
          // free, ours, expired, or given back by a dead letter
          ConditionExpression: "attribute_not_exists(traceId) OR messageId = :m OR expiresAt < :now OR ending = :dead",
          ExpressionAttributeValues: { ":m": { S: claim.messageId }, ":now": { N: String(nowSeconds) }, ":dead": { S: "DeadLettered" } },
          ReturnValues: "ALL_OLD"
        }),
        { abortSignal }
      )).pipe(
        Effect.flatMap((output): Effect.Effect<ClaimResult, LedgerError> => {
          if (output === false) return Effect.succeed("Duplicate")
          const old = output.Attributes
          // an expired claim taken over counts as won, whoever held it (as in layerMemory)
          const live = old !== undefined && Number(old["expiresAt"]?.N) >= nowSeconds && old["ending"]?.S !== "DeadLettered"
          const result: ClaimResult = live && old["messageId"]?.S === claim.messageId ? "Redelivery" : "Won"
          if (old?.["ending"]?.S === "DeadLettered" && old["messageId"]?.S !== claim.messageId) {
            return Effect.as(keepEarlier(claim, earlierOf(old)), result)
          }
          // the put replaced the item: a redelivery keeps the attempt its place already kept
          const kept = old?.["earlierMessageId"] === undefined || result !== "Redelivery" ? undefined : old
          return kept === undefined ? Effect.succeed(result) : Effect.as(keepEarlier(claim, keptEarlier(kept)), result)
        })
      )
  }

  /** A redrive's message took a dead letter's place: the place keeps that attempt (one more write, for a redriven step only). */
  const keepEarlier = (claim: Claim, earlier: ReadonlyArray<AttributeValue | undefined>) => {
    const [messageId, at, reason, reasonMessage, stage] = earlier
    const values: Record<string, AttributeValue> = {
      ":em": messageId ?? { S: "" },
      ":ea": at ?? { N: "0" },
      ...(reason === undefined ? {} : { ":er": reason }),
      ...(reasonMessage === undefined ? {} : { ":erm": reasonMessage }),
      ...(stage === undefined ? {} : { ":es": stage })
    }
    const set = [
      "earlierMessageId = :em",
      "earlierAt = :ea",
      ...(":er" in values ? ["earlierReason = :er"] : []),
      ...(":erm" in values ? ["earlierReasonMessage = :erm"] : []),
      ...(":es" in values ? ["earlierStage = :es"] : [])
    ]
    return call("UpdateItem", (abortSignal) =>
      client.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key: key(claim),
          UpdateExpression: `SET ${set.join(", ")}`,
          ConditionExpression: "messageId = :m",
          ExpressionAttributeValues: { ...values, ":m": { S: claim.messageId } }
        }),
        { abortSignal }
      ))
  }

  const claim = Effect.fn("DynamoLedger.claim")(function*(claims: ReadonlyArray<Claim>) {
    const now = yield* Clock.currentTimeMillis
    // One request per claim: DynamoDB has no batch of independent conditional writes.
    // TransactWriteItems fails all of its items when one condition fails, and BatchWriteItem
    // takes no conditions at all.
    return yield* Effect.forEach(claims, (one) => claimOne(one, now), { concurrency: CLAIM_CONCURRENCY })
  })

  const finishOne = (finish: Finish, now: number) => {
    const { ending } = finish
    if (ending._tag === "DuplicateSkipped") {
      return call("UpdateItem", (abortSignal) =>
        client.send(
          new UpdateItemCommand({
            TableName: tableName,
            Key: key(finish),
            UpdateExpression: "ADD duplicatesSkipped :one",
            ConditionExpression: "attribute_exists(traceId)",
            ExpressionAttributeValues: { ":one": { N: "1" } }
          }),
          { abortSignal }
        ))
    }
    const reason: Record<string, AttributeValue> = ending._tag === "DeadLettered"
      ? { ":r": { S: ending.reason }, ":rm": { S: ending.message.slice(0, MAX_TEXT) || "(empty)" }, ":s": { S: ending.stage } }
      : {}
    // a failed condition: the place is not this message's any more, nothing to record
    return call("UpdateItem", (abortSignal) =>
      client.send(
        new UpdateItemCommand({
          TableName: tableName,
          Key: key(finish),
          UpdateExpression: "SET ending = :e, endedAt = :now" +
            (ending._tag === "DeadLettered" ? ", reason = :r, reasonMessage = :rm, stage = :s" : ""),
          ConditionExpression: "messageId = :m",
          ExpressionAttributeValues: { ":e": { S: ending._tag }, ":now": { N: String(now) }, ":m": { S: finish.messageId }, ...reason }
        }),
        { abortSignal }
      ))
  }

  const finish = Effect.fn("DynamoLedger.finish")(function*(finishes: ReadonlyArray<Finish>) {
    const now = yield* Clock.currentTimeMillis
    yield* Effect.forEach(finishes, (one) => finishOne(one, now), { concurrency: CLAIM_CONCURRENCY, discard: true })
  })

  /** Every page of a query or scan. */
  const pages = (
    operation: string,
    page: (start: Record<string, AttributeValue> | undefined, abortSignal: AbortSignal) => Promise<{
      Items?: Array<Record<string, AttributeValue>> | undefined
      LastEvaluatedKey?: Record<string, AttributeValue> | undefined
    }>
  ) =>
    Effect.gen(function*() {
      const items: Array<Record<string, AttributeValue>> = []
      let start: Record<string, AttributeValue> | undefined
      do {
        const output = yield* call(operation, (abortSignal) => page(start, abortSignal))
        if (output === false) break
        items.push(...(output.Items ?? []))
        start = output.LastEvaluatedKey
      } while (start !== undefined)
      return items
    })

  const ofTrace = (traceId: string) =>
    pages("Query", (start, abortSignal) =>
      client.send(
        new QueryCommand({
          TableName: tableName,
          KeyConditionExpression: "traceId = :t",
          ExpressionAttributeValues: { ":t": { S: traceId } },
          ExclusiveStartKey: start,
          ConsistentRead: true
        }),
        { abortSignal }
      ))

  const history = Effect.fn("DynamoLedger.history")(function*(id: string) {
    const own = yield* ofTrace(id)
    if (own.length > 0) return sortEntries(own.map(entryOf))
    const keys = yield* pages("Query", (start, abortSignal) =>
      client.send(
        new QueryCommand({
          TableName: tableName,
          IndexName: RECORD_ID_INDEX,
          KeyConditionExpression: "recordId = :r",
          ExpressionAttributeValues: { ":r": { S: id } },
          ExclusiveStartKey: start
        }),
        { abortSignal }
      ))
    const traces = [...new Set(keys.flatMap((item) => item["traceId"]?.S ?? []))]
    const chains = yield* Effect.forEach(traces, ofTrace, { concurrency: CLAIM_CONCURRENCY })
    return sortEntries(chains.flat().map(entryOf))
  })

  const entries = Effect.fn("DynamoLedger.entries")(function*(since: number) {
    const items = yield* pages("Scan", (start, abortSignal) =>
      client.send(
        new ScanCommand({
          TableName: tableName,
          FilterExpression: "claimedAt >= :since",
          ExpressionAttributeValues: { ":since": { N: String(since) } },
          ExclusiveStartKey: start
        }),
        { abortSignal }
      ))
    return items.map(entryOf)
  })

  return TransitionLedger.of({ enabled: true, claim, finish, history, entries })
})

const entryOf = (item: Record<string, AttributeValue>): Entry => {
  const text = (name: string) => item[name]?.S
  const ending = text("ending")
  return {
    traceId: text("traceId") ?? "",
    step: Number(item["step"]?.N),
    messageId: text("messageId") ?? "",
    recordId: text("recordId"),
    mutation: text("mutation"),
    queue: text("queue"),
    claimedAt: Number(item["claimedAt"]?.N),
    ending: ending === "Done" || ending === "DeadLettered"
      ? { tag: ending, at: Number(item["endedAt"]?.N), reason: text("reason"), message: text("reasonMessage"), stage: text("stage") }
      : undefined,
    duplicatesSkipped: Number(item["duplicatesSkipped"]?.N ?? 0),
    earlier: text("earlierMessageId") === undefined ? undefined : {
      messageId: text("earlierMessageId")!,
      at: Number(item["earlierAt"]?.N),
      reason: text("earlierReason"),
      message: text("earlierReasonMessage"),
      stage: text("earlierStage")
    }
  }
}
