/**
 * The transition engine: moves each message of a batch one state forward.
 *
 * For each message: decode the body, check the step limit, ask the router, run the mutation.
 * Successors of the whole batch go out together (10 per request); a message counts as handled
 * only once its own successor is confirmed sent. Permanent failures go to the dead-letter queue
 * with their reason; retryable ones are retried in process, then left to SQS redelivery.
 * Acknowledging (deleting) is the caller's job: Lambda deletes what the handler does not report.
 */
import { Effect, Metric, Option, Schedule, Schema } from "effect"
import {
  isRetryable,
  MalformedBody,
  SchemaViolation,
  StepLimitReached,
  type StepFailure
} from "../domain/errors.ts"
import type { Pipeline } from "../domain/Pipeline.ts"
import { Attribute, fromAttributes, nextTransition, toAttributes, type Transition } from "../domain/transition.ts"
import { isFifo, type OutgoingMessage, type QueueAttributes, type QueueMessage } from "../domain/messages.ts"
import { MessageQueue, type QueueError } from "../services/MessageQueue.ts"
import { type Claim, TransitionLedger } from "../services/TransitionLedger.ts"
import { EngineSettings } from "../services/EngineSettings.ts"
import { briefRetry, deleteAll, sendAll } from "./sendAll.ts"

/** What happened to one message. Every outcome but `Failed` is acknowledged. */
export type Outcome =
  | { readonly _tag: "Advanced"; readonly message: QueueMessage; readonly mutation: string; readonly step: number }
  | { readonly _tag: "Done"; readonly message: QueueMessage }
  /** A copy of a message whose place in its chain another message holds: nothing was run. */
  | { readonly _tag: "Duplicate"; readonly message: QueueMessage }
  | { readonly _tag: "DeadLettered"; readonly message: QueueMessage; readonly error: StepFailure }
  | { readonly _tag: "Failed"; readonly message: QueueMessage; readonly error: StepFailure }

type Decision =
  | { readonly _tag: "Next"; readonly message: QueueMessage; readonly mutation: string; readonly entry: OutgoingMessage; readonly step: number }
  | { readonly _tag: "Done"; readonly message: QueueMessage }
  | { readonly _tag: "DeadLetter"; readonly message: QueueMessage; readonly error: StepFailure; readonly stage: string }
  | { readonly _tag: "Retry"; readonly message: QueueMessage; readonly error: StepFailure; readonly stage: string }

/** A defect (a thrown exception) in author code: not known to be permanent, so SQS redrive decides. */
const defect = (cause: unknown): StepFailure => ({
  _tag: "Defect",
  message: cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)
})

const MAX_ATTRIBUTE_TEXT = 1024
const attributeText = (text: string) =>
  text === "" ? "(empty)" : text.length > MAX_ATTRIBUTE_TEXT ? `${text.slice(0, MAX_ATTRIBUTE_TEXT - 1)}…` : text

/** SQS allows 10 attributes a message: keep the sender's when they fit, ours always. */
const deadLetterAttributes = (message: QueueMessage, error: StepFailure, stage: string, sourceQueue: string) => {
  const ours = {
    "error.tag": error._tag,
    "error.message": attributeText(error.message),
    "error.step": stage,
    "error.receive_count": String(message.receiveCount),
    "error.source_queue": sourceQueue
  }
  const all = { ...message.attributes, ...ours }
  if (Object.keys(all).length <= 10) return all
  const pipelineOnly = Object.fromEntries(Object.entries(message.attributes).filter(([key]) => key.startsWith("pipeline.")))
  return { ...pipelineOnly, ...ours }
}

export const decodeBody = <Rec>(
  schema: Schema.Codec<Rec, unknown>,
  body: string
): Effect.Effect<Rec, MalformedBody | SchemaViolation> =>
  Effect.suspend((): Effect.Effect<Rec, MalformedBody | SchemaViolation> => {
    let json: unknown
    try {
      json = JSON.parse(body)
    } catch (error) {
      return Effect.fail(new MalformedBody({ message: `body is not JSON: ${(error as Error).message}` }))
    }
    return Schema.decodeUnknownEffect(schema)(json, { errors: "all" }).pipe(
      Effect.mapError((error) => new SchemaViolation({ message: error.message }))
    )
  })

type RedrivePolicy = Pick<QueueAttributes, "deadLetterQueueUrl" | "maxReceiveCount">

/** Messages acknowledged without running anything, as copies of a message that holds their place. */
export const duplicatesSkipped = Metric.counter("pipeline_duplicates_skipped", {
  description: "messages skipped as copies of a message that holds their place in the chain"
})

const claimOf = (message: QueueMessage): Claim => {
  const { step, traceId } = fromAttributes(message.attributes, message.messageId)
  return { traceId, step, messageId: message.messageId }
}

/**
 * Each queue's redrive policy, looked up once per queue service (a handler's runtime, and so its
 * queue service, lives as long as its container).
 */
const redrivePoliciesOf = new WeakMap<MessageQueue["Service"], Map<string, RedrivePolicy>>()

export const processBatch = <Rec, E extends StepFailure, R>(
  pipeline: Pick<Pipeline<Rec, E, R>, "schema" | "recordId" | "router">
) => {
  const encode = Schema.encodeEffect(pipeline.schema)

  // Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
  return Effect.fn("processBatch")(function*(messages: ReadonlyArray<QueueMessage>) {
    const settings = yield* EngineSettings
    const queue = yield* MessageQueue
    const redrivePolicies = redrivePoliciesOf.get(queue) ?? new Map<string, RedrivePolicy>()
    redrivePoliciesOf.set(queue, redrivePolicies)
    const retry = Schedule.exponential("100 millis").pipe(Schedule.upTo({ duration: settings.retryFor }))
    const fifo = isFifo(settings.queueUrl)

    const decide = (message: QueueMessage, index: number): Effect.Effect<Decision, never, R> => {
      let stage = "decode"
      return Effect.gen(function*() {
        const record = yield* decodeBody(pipeline.schema, message.body)
        const current: Transition = fromAttributes(message.attributes, message.messageId)
        if (current.step >= settings.maxSteps) {
          return yield* new StepLimitReached({
            message: `step ${current.step} reached the limit of ${settings.maxSteps} steps`,
            step: current.step,
            maxSteps: settings.maxSteps
          })
        }
        stage = "route"
        const route = pipeline.router(record)
        if (route._tag === "Done") return { _tag: "Done", message } as const
        if (route._tag === "UnknownState") return yield* route
        stage = route.name
        const next = yield* route.run(record).pipe(Effect.retry({ schedule: retry, while: isRetryable }))
        const encoded = yield* encode(next).pipe(
          Effect.mapError((error) =>
            new SchemaViolation({ message: `${route.name} returned an invalid record: ${error.message}` })
          )
        )
        const recordId = pipeline.recordId(next)
        const transition = nextTransition(current, recordId, encoded)
        const entry: OutgoingMessage = {
          id: `m${index}`,
          body: JSON.stringify(encoded),
          attributes: toAttributes(transition),
          ...(fifo ? { groupId: recordId === "" ? transition.traceId : recordId, deduplicationId: transition.transitionId } : {})
        }
        return { _tag: "Next", message, mutation: route.name, entry, step: transition.step } as const
      }).pipe(
        Effect.catch((error: StepFailure): Effect.Effect<Decision> =>
          Effect.succeed(
            isRetryable(error) ? { _tag: "Retry", message, error, stage } : { _tag: "DeadLetter", message, error, stage }
          )
        ),
        Effect.catchDefect((cause) => Effect.succeed<Decision>({ _tag: "Retry", message, error: defect(cause), stage }))
      )
    }

    const cachedPolicy = redrivePolicies.get(settings.queueUrl)
    const redrivePolicy: Effect.Effect<RedrivePolicy, QueueError> = cachedPolicy !== undefined
      ? Effect.succeed(cachedPolicy)
      : queue.attributes(settings.queueUrl).pipe(
        Effect.retry({ schedule: retry, while: isRetryable }),
        Effect.map(({ deadLetterQueueUrl, maxReceiveCount }) => ({ deadLetterQueueUrl, maxReceiveCount })),
        Effect.tap((policy) => Effect.sync(() => redrivePolicies.set(settings.queueUrl, policy)))
      )
    const deadLetterQueue = Option.isSome(settings.deadLetterQueueUrl)
      ? Effect.succeed(settings.deadLetterQueueUrl)
      : Effect.map(redrivePolicy, (policy) => policy.deadLetterQueueUrl)

    const outcomes: Array<Outcome> = []
    // each place in a chain is advanced by one message only: claim them all before running anything
    const ledger = yield* Effect.serviceOption(TransitionLedger)
    const claims = Option.isNone(ledger) ? [] : messages.map(claimOf)
    const claimed = Option.isNone(ledger)
      // Stryker disable next-line StringLiteral: only "Duplicate" is ever asked of a claim
      ? messages.map(() => "Won" as const)
      : yield* ledger.value.claim(claims).pipe(
        Effect.retry({ schedule: retry, while: isRetryable }),
        Effect.catch((error) =>
          Effect.logWarning(`transition ledger unavailable (${error.message}); the batch is left for redelivery`).pipe(
            Effect.as(undefined)
          )
        )
      )
    if (claimed === undefined) {
      return messages.map((message): Outcome => ({ _tag: "Failed", message, error: { _tag: "LedgerUnavailable", message: "transition ledger unavailable" } }))
    }
    const toRun: Array<QueueMessage> = []
    for (const [index, message] of messages.entries()) {
      if (claimed[index] !== "Duplicate") {
        toRun.push(message)
        continue
      }
      const claim = claims[index]!
      yield* Effect.logInfo(`skipped message ${message.messageId}: a copy of step ${claim.step} of chain ${claim.traceId}, which another message holds`).pipe(
        Effect.annotateLogs({ messageId: message.messageId, traceId: claim.traceId, step: claim.step })
      )
      outcomes.push({ _tag: "Duplicate", message })
    }
    if (outcomes.length > 0) yield* Metric.update(duplicatesSkipped, outcomes.length)

    const decided = yield* Effect.forEach(toRun, decide, { concurrency: settings.concurrency })
    // on its last allowed receive a failing message is dead-lettered here, with its reason, rather
    // than moved by the queue's redrive with none
    const maxReceiveCount = decided.some((d) => d._tag === "Retry")
      ? yield* redrivePolicy.pipe(Effect.map((policy) => policy.maxReceiveCount), Effect.orElseSucceed(() => Option.none<number>()))
      : Option.none<number>()
    const decisions = decided.map((decision): Decision =>
      decision._tag === "Retry" && Option.isSome(maxReceiveCount) && decision.message.receiveCount >= maxReceiveCount.value
        ? { ...decision, _tag: "DeadLetter" }
        : decision
    )

    // successors first: a message is handled only once its successor is confirmed sent
    const next = decisions.filter((d) => d._tag === "Next")
    const sendFailures = yield* sendAll(settings.queueUrl, next.map((d) => d.entry), retry)
    for (const decision of next) {
      const error = sendFailures.get(decision.entry.id)
      outcomes.push(
        error === undefined
          ? { _tag: "Advanced", message: decision.message, mutation: decision.mutation, step: decision.step }
          : { _tag: "Failed", message: decision.message, error }
      )
    }

    for (const decision of decisions) {
      if (decision._tag === "Done") outcomes.push(decision)
      if (decision._tag === "Retry") outcomes.push({ _tag: "Failed", message: decision.message, error: decision.error })
    }

    const deadLetters = decisions.filter((d) => d._tag === "DeadLetter")
    if (deadLetters.length > 0) {
      const target = yield* deadLetterQueue.pipe(Effect.catch((error) => Effect.succeed(error)))
      if (!Option.isOption(target) || Option.isNone(target)) {
        const why = Option.isOption(target) ? "the queue has no dead-letter queue" : `its queue's attributes: ${target.message}`
        for (const decision of deadLetters) {
          yield* Effect.logError(`cannot dead-letter message ${decision.message.messageId} (${why}); left on the queue`).pipe(
            Effect.annotateLogs({ messageId: decision.message.messageId, error: decision.error._tag, reason: decision.error.message })
          )
          outcomes.push({ _tag: "Failed", message: decision.message, error: decision.error })
        }
      } else {
        const dlqFifo = isFifo(target.value)
        const entries = deadLetters.map((decision, index): OutgoingMessage => ({
          id: `d${index}`,
          body: decision.message.body,
          attributes: deadLetterAttributes(decision.message, decision.error, decision.stage, settings.queueUrl),
          ...(dlqFifo ? { groupId: "dead-letters", deduplicationId: decision.message.messageId } : {})
        }))
        const failures = yield* sendAll(target.value, entries, retry)
        for (const [index, decision] of deadLetters.entries()) {
          const failure = failures.get(`d${index}`)
          if (failure === undefined) {
            yield* Effect.logWarning(`dead-lettered message ${decision.message.messageId}: ${decision.error._tag}`).pipe(
              Effect.annotateLogs({ messageId: decision.message.messageId, error: decision.error._tag, reason: decision.error.message, step: decision.stage })
            )
            outcomes.push({ _tag: "DeadLettered", message: decision.message, error: decision.error })
          } else {
            outcomes.push({ _tag: "Failed", message: decision.message, error: failure })
          }
        }
        // a redrive sends them back as new messages, which must be able to claim these places
        const released = outcomes.flatMap((outcome) => outcome._tag === "DeadLettered" ? [claimOf(outcome.message)] : [])
        if (Option.isSome(ledger) && released.length > 0) {
          yield* ledger.value.release(released).pipe(
            Effect.catch((error) => Effect.logWarning(`could not release the ledger places of ${released.length} dead letters: ${error.message}`))
          )
        }
      }
    }

    for (const outcome of outcomes) {
      if (outcome._tag === "Failed") {
        yield* Effect.logWarning(`message ${outcome.message.messageId} left for redelivery: ${outcome.error._tag}`).pipe(
          Effect.annotateLogs({ messageId: outcome.message.messageId, error: outcome.error._tag, reason: outcome.error.message })
        )
      }
    }
    return outcomes
  })
}

/** Deletes the handled messages of a batch; a delete that fails means a redelivery, which idempotent steps absorb. */
// Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
export const acknowledge = Effect.fn("acknowledge")(function*(queueUrl: string, outcomes: ReadonlyArray<Outcome>) {
  const handled = outcomes.filter((outcome) => outcome._tag !== "Failed")
  const failures = yield* deleteAll(
    queueUrl,
    handled.map((outcome, index) => ({ id: `a${index}`, receiptHandle: outcome.message.receiptHandle })),
    briefRetry
  )
  for (const failure of failures.values()) {
    yield* Effect.logWarning(`could not delete a handled message (${failure.message}); it will be redelivered`)
  }
})

export const failedMessageIds = (outcomes: ReadonlyArray<Outcome>): ReadonlyArray<string> =>
  outcomes.filter((outcome) => outcome._tag === "Failed").map((outcome) => outcome.message.messageId)

/** The attributes a dead-lettered message carries, for readers and tests. */
export const DeadLetterAttribute = {
  tag: "error.tag",
  message: "error.message",
  step: "error.step",
  receiveCount: "error.receive_count",
  sourceQueue: "error.source_queue",
  pipelineStep: Attribute.step
} as const
