/**
 * The `TransitionLedger` on Amazon DynamoDB, through @aws-sdk/client-dynamodb.
 *
 * One item per claimed place: partition key `traceId` (S), sort key `step` (N), the claimant
 * `messageId` (S), `claimedAt` (N, ms of the latest claim) and `expiresAt` (N, epoch seconds), the
 * table's TTL attribute. Region, endpoint and credentials come from the SDK's own conventions
 * (AWS_REGION, AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_DYNAMODB, the default credential chain).
 */
import {
  type AttributeValue,
  DeleteItemCommand,
  DynamoDBClient,
  PutItemCommand
} from "@aws-sdk/client-dynamodb"
import { Clock, Duration, Effect } from "effect"
import { type Claim, CLAIM_TTL, type ClaimResult, LedgerError, TransitionLedger } from "../TransitionLedger.ts"
import { awsErrorMessage, isRetryableAwsError } from "../awsSdk.ts"

/** Conditional writes of one call that may be in flight at once. */
const CLAIM_CONCURRENCY = 10

const isConditionFailure = (cause: unknown): boolean =>
  typeof cause === "object" && cause !== null && (cause as { name?: unknown }).name === "ConditionalCheckFailedException"

const key = (claim: Claim): Record<string, AttributeValue> => ({
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
            claimedAt: { N: String(now) },
            expiresAt: { N: String(Math.floor((now + Duration.toMillis(CLAIM_TTL)) / 1000)) }
          },
          ConditionExpression: "attribute_not_exists(traceId) OR messageId = :m OR expiresAt < :now",
          ExpressionAttributeValues: { ":m": { S: claim.messageId }, ":now": { N: String(nowSeconds) } },
          ReturnValues: "ALL_OLD"
        }),
        { abortSignal }
      )).pipe(
        Effect.map((output): ClaimResult => {
          if (output === false) return "Duplicate"
          const old = output.Attributes
          // an expired claim taken over counts as won, whoever held it (as in layerMemory)
          const live = old !== undefined && Number(old["expiresAt"]?.N) >= nowSeconds
          return live && old["messageId"]?.S === claim.messageId ? "Redelivery" : "Won"
        })
      )
  }

  const claim = Effect.fn("DynamoLedger.claim")(function*(claims: ReadonlyArray<Claim>) {
    const now = yield* Clock.currentTimeMillis
    // One request per claim: DynamoDB has no batch of independent conditional writes.
    // TransactWriteItems fails all of its items when one condition fails, and BatchWriteItem
    // takes no conditions at all.
    return yield* Effect.forEach(claims, (one) => claimOne(one, now), { concurrency: CLAIM_CONCURRENCY })
  })

  const release = Effect.fn("DynamoLedger.release")(function*(claims: ReadonlyArray<Claim>) {
    yield* Effect.forEach(
      claims,
      (one) =>
        // a failed condition: the place is not this message's any more, nothing to give back
        call("DeleteItem", (abortSignal) =>
          client.send(
            new DeleteItemCommand({
              TableName: tableName,
              Key: key(one),
              ConditionExpression: "messageId = :m",
              ExpressionAttributeValues: { ":m": { S: one.messageId } }
            }),
            { abortSignal }
          )),
      { concurrency: CLAIM_CONCURRENCY, discard: true }
    )
  })

  return TransitionLedger.of({ enabled: true, claim, release })
})
