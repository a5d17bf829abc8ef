/**
 * The transition engine: moves each message of a batch one state forward.
 *
 * For each message: decode the body, check the step limit, ask the router, run the mutation.
 * Successors of the whole batch go out together (10 per request); a message counts as handled
 * only once its own successor is confirmed sent. Permanent failures go to the dead-letter queue
 * with their reason; retryable ones are retried in process, then left to SQS redelivery.
 * Acknowledging (deleting) is the caller's job: Lambda deletes what the handler does not report.
 */
import { Cause, Data, Duration, Effect, Exit, LogLevel, Metric, Option, Result, Schedule, Schema } from "effect"
import {
  Defect,
  isRetryable,
  MalformedBody,
  SchemaViolation,
  StepLimitReached,
  type StepFailure
} from "../domain/errors.ts"
import { fitAttributes, isFifo, type OutgoingMessage, type QueueAttributes, type QueueMessage } from "../domain/messages.ts"
import type { Pipeline } from "../domain/Pipeline.ts"
import { Attribute, fifoFields, fromAttributes, nextTransition, toAttributes, type Transition } from "../domain/transition.ts"
import { EngineSettings } from "../services/EngineSettings.ts"
import { MessageQueue, type QueueError } from "../services/MessageQueue.ts"
import { type Claim, type Ending, type Finish, TransitionLedger } from "../services/TransitionLedger.ts"
import { briefRetry, retryPolicy } from "./retry.ts"
import { deleteAll, sendAll } from "./sendAll.ts"

/** What happened to one message. Every outcome but `Failed` is acknowledged. */
export type Outcome = Data.TaggedEnum<{
  Advanced: { readonly message: QueueMessage; readonly mutation: string; readonly step: number }
  Done: { readonly message: QueueMessage }
  /** A copy of a message whose place in its chain another message holds: nothing was run. */
  Duplicate: { readonly message: QueueMessage }
  DeadLettered: { readonly message: QueueMessage; readonly error: StepFailure }
  Failed: { readonly message: QueueMessage; readonly error: StepFailure }
}>
export const Outcome = Data.taggedEnum<Outcome>()

/** What the engine decided for one message before anything is sent. */
type Decision = Data.TaggedEnum<{
  Next: { readonly message: QueueMessage; readonly mutation: string; readonly entry: OutgoingMessage; readonly step: number }
  Done: { readonly message: QueueMessage }
  DeadLetter: { readonly message: QueueMessage; readonly error: StepFailure; readonly stage: string }
  Retry: { readonly message: QueueMessage; readonly error: StepFailure; readonly stage: string }
}>
const Decision = Data.taggedEnum<Decision>()

/** A failure and the stage it happened in (`decode`, `route`, or the mutation's name). */
class StageFailure extends Data.TaggedError("StageFailure")<{ readonly stage: string; readonly error: StepFailure }> {}

/** Runs `effect` as part of `stage`: its errors, and its defects as `Defect`s, carry the stage. */
const atStage = (stage: string) => <A, E extends StepFailure, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(
    Effect.catchCause((cause) => {
      const error: StepFailure = Option.getOrElse(Cause.findErrorOption(cause), () => Defect.fromCause(cause))
      return Effect.fail(new StageFailure({ stage, error }))
    })
  )

const MAX_ATTRIBUTE_TEXT = 1024
const attributeText = (text: string) =>
  text === "" ? "(empty)" : text.length > MAX_ATTRIBUTE_TEXT ? `${text.slice(0, MAX_ATTRIBUTE_TEXT - 1)}…` : text

/**
 * A dead letter's attributes: ours and the chain's (`pipeline.*`) always, then the sender's,
 * binary and typed ones as they were sent, while they fit SQS's limits (10 a message, 256 KiB with the body).
 */
const deadLetterAttributes = (message: QueueMessage, error: StepFailure, stage: string, sourceQueue: string) => {
  const ours = {
    "error.tag": error._tag,
    "error.message": attributeText(error.message),
    "error.step": stage,
    "error.receive_count": String(message.receiveCount),
    "error.source_queue": sourceQueue
  }
  // a message sent without our attributes is a chain of its own, its message id the trace id: said
  // here, so that `trace` finds it and a redrive continues that chain
  const attributes = { [Attribute.traceId]: fromAttributes(message.attributes, message.messageId).traceId, ...message.attributes }
  const pipelineOnly = Object.fromEntries(Object.entries(attributes).filter(([key]) => key.startsWith("pipeline.")))
  return fitAttributes(message.body, { ...pipelineOnly, ...ours }, attributes, message.typedAttributes)
}

// the hot path: JSON.parse itself, not a Schema transformation around it (measured ~10% of a transition)
const parseJson = (body: string) => Effect.try({ try: (): unknown => JSON.parse(body), catch: (error) => error as Error })

/** Message bodies as the pipeline's records: not JSON is `MalformedBody`, not the record's shape `SchemaViolation`. */
export const bodyDecoder = <Rec>(schema: Schema.Codec<Rec, unknown>) => {
  const decodeRecord = Schema.decodeUnknownEffect(schema)
  return (body: string): Effect.Effect<Rec, MalformedBody | SchemaViolation> =>
    parseJson(body).pipe(
      Effect.mapError((error) => new MalformedBody({ message: `body is not JSON: ${error.message}` })),
      Effect.flatMap((json) =>
        decodeRecord(json, { errors: "all" }).pipe(Effect.mapError((error) => new SchemaViolation({ message: error.message })))
      )
    )
}

type RedrivePolicy = Pick<QueueAttributes, "deadLetterQueueUrl" | "maxReceiveCount">

/** Messages acknowledged without running anything, as copies of a message that holds their place. */
export const duplicatesSkipped = Metric.counter("pipeline_duplicates_skipped", {
  description: "messages skipped as copies of a message that holds their place in the chain"
})

const claimOf = (message: QueueMessage): Claim => {
  const { step, traceId } = fromAttributes(message.attributes, message.messageId)
  return {
    traceId,
    step,
    messageId: message.messageId,
    recordId: message.attributes[Attribute.recordId],
    mutation: message.attributes[Attribute.mutation]
  }
}

/** The stage a dead-lettered message failed in, as its decision says. */
const stageOf = (decisions: ReadonlyArray<Decision>, message: QueueMessage): string => {
  const decision = decisions.find((d) => d.message === message)
  return decision !== undefined && decision._tag === "DeadLetter" ? decision.stage : "decode"
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
  const decodeBody = bodyDecoder(pipeline.schema)

  // Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
  return Effect.fn("processBatch")(function*(messages: ReadonlyArray<QueueMessage>) {
    const settings = yield* EngineSettings
    const queue = yield* MessageQueue
    const redrivePolicies = redrivePoliciesOf.get(queue) ?? new Map<string, RedrivePolicy>()
    redrivePoliciesOf.set(queue, redrivePolicies)
    const retry = retryPolicy(settings.retryFor)
    const fifo = isFifo(settings.queueUrl)
    // a debug line per step, retry and done; asked once a batch, so that below Debug they cost nothing a message
    const debug = yield* LogLevel.isEnabled("Debug")
    const idOf = (record: Rec) => {
      try {
        return pipeline.recordId(record)
      } catch {
        return "(no id)"
      }
    }
    const retryLogged = (recordId: string, mutation: string) =>
      retry.pipe(Schedule.modifyDelay(({ attempt, duration, input }) =>
        Effect.logDebug(`record ${recordId}: ${mutation} failed with ${input._tag}, retry ${attempt} in ${Duration.format(duration)}`).pipe(
          Effect.annotateLogs({ recordId, mutation, error: input._tag, attempt }),
          Effect.as(duration)
        )
      ))

    // untraced: a span per message costs more than the step of a quick mutation
    const decide = Effect.fnUntraced(function*(message: QueueMessage, index: number) {
      const current: Transition = fromAttributes(message.attributes, message.messageId)
      const record = yield* decodeBody(message.body).pipe(Effect.mapError((error) => new StageFailure({ stage: "decode", error })))
      if (current.step >= settings.maxSteps) {
        return yield* new StageFailure({
          stage: "decode",
          error: new StepLimitReached({
            message: `step ${current.step} reached the limit of ${settings.maxSteps} steps`,
            step: current.step,
            maxSteps: settings.maxSteps
          })
        })
      }
      const route = yield* Effect.try({
        try: () => pipeline.router(record),
        catch: (cause) => new StageFailure({ stage: "route", error: Defect.fromCause(Cause.die(cause)) })
      })
      if (route._tag === "Done") {
        if (debug) {
          const recordId = idOf(record)
          yield* Effect.logDebug(`record ${recordId}: done after ${current.step} steps`).pipe(
            Effect.annotateLogs({ recordId, steps: current.step, messageId: message.messageId })
          )
        }
        return Decision.Done({ message })
      }
      if (route._tag === "UnknownState") return yield* new StageFailure({ stage: "route", error: route })
      const next = yield* route.run(record).pipe(Effect.retry(debug ? retryLogged(idOf(record), route.name) : retry), atStage(route.name))
      const encoded = yield* encode(next).pipe(
        Effect.mapError((error) =>
          new StageFailure({
            stage: route.name,
            error: new SchemaViolation({ message: `${route.name} returned an invalid record: ${error.message}` })
          })
        )
      )
      const recordId = pipeline.recordId(next)
      const transition = nextTransition(current, recordId, encoded)
      if (debug) {
        yield* Effect.logDebug(`record ${recordId}: step ${transition.step} ${route.name}`).pipe(
          Effect.annotateLogs({ recordId, step: transition.step, mutation: route.name, messageId: message.messageId })
        )
      }
      const entry: OutgoingMessage = {
        id: `m${index}`,
        body: JSON.stringify(encoded),
        attributes: {
          ...toAttributes(transition),
          // for the ledger's history: the mutation always; the record id once a chain, on its first
          // successor when its first message did not name it (the producer's do)
          [Attribute.mutation]: route.name,
          ...(current.step > 0 || message.attributes[Attribute.recordId] !== undefined || recordId === "" ? {} : { [Attribute.recordId]: recordId })
        },
        ...(fifo ? fifoFields(recordId, transition) : {})
      }
      return Decision.Next({ message, mutation: route.name, entry, step: transition.step })
    }, (effect, message) =>
      Effect.map(Effect.exit(effect), (exit): Decision => {
        if (Exit.isSuccess(exit)) return exit.value
        const failure = Cause.findErrorOption(exit.cause)
        const { error, stage } = Option.isSome(failure) ? failure.value : { error: Defect.fromCause(exit.cause), stage: "decode" }
        return isRetryable(error) ? Decision.Retry({ message, error, stage }) : Decision.DeadLetter({ message, error, stage })
      }))

    const cachedPolicy = redrivePolicies.get(settings.queueUrl)
    const redrivePolicy: Effect.Effect<RedrivePolicy, QueueError> = cachedPolicy !== undefined
      ? Effect.succeed(cachedPolicy)
      : queue.attributes(settings.queueUrl).pipe(
        Effect.retry(retry),
        Effect.map(({ deadLetterQueueUrl, maxReceiveCount }) => ({ deadLetterQueueUrl, maxReceiveCount })),
        Effect.tap((policy) => Effect.sync(() => redrivePolicies.set(settings.queueUrl, policy)))
      )
    const deadLetterQueue = Option.isSome(settings.deadLetterQueueUrl)
      ? Effect.succeed(settings.deadLetterQueueUrl)
      : Effect.map(redrivePolicy, (policy) => policy.deadLetterQueueUrl)

    const outcomes: Array<Outcome> = []
    // each place in a chain is advanced by one message only: claim them all before running anything
    const ledger = yield* Effect.serviceOption(TransitionLedger)
    // the queue too: one ledger (the local queue's file) may serve several pipelines' queues
    const claims = Option.isNone(ledger) ? [] : messages.map((message) => ({ ...claimOf(message), queue: settings.queueUrl }))
    const claiming = Option.isNone(ledger)
      // Stryker disable next-line StringLiteral: only "Duplicate" is ever asked of a claim
      ? Exit.succeed(messages.map(() => "Won" as const))
      : yield* Effect.exit(ledger.value.claim(claims).pipe(Effect.retry(retry)))
    if (Exit.isFailure(claiming)) {
      const error = Cause.squash(claiming.cause) as StepFailure
      yield* Effect.logWarning(`transition ledger unavailable (${error.message}); the batch is left for redelivery`)
      return messages.map((message) => Outcome.Failed({ message, error }))
    }
    const claimed = claiming.value
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
      outcomes.push(Outcome.Duplicate({ message }))
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
        ? Decision.DeadLetter({ message: decision.message, error: decision.error, stage: decision.stage })
        : decision
    )

    // successors first: a message is handled only once its successor is confirmed sent
    const next = decisions.filter((d) => d._tag === "Next")
    const sendFailures = yield* sendAll(settings.queueUrl, next.map((d) => d.entry), retry)
    for (const decision of next) {
      const error = sendFailures.get(decision.entry.id)
      outcomes.push(
        error === undefined
          ? Outcome.Advanced({ message: decision.message, mutation: decision.mutation, step: decision.step })
          : Outcome.Failed({ message: decision.message, error })
      )
    }

    for (const decision of decisions) {
      if (decision._tag === "Done") outcomes.push(Outcome.Done({ message: decision.message }))
      if (decision._tag === "Retry") outcomes.push(Outcome.Failed({ message: decision.message, error: decision.error }))
    }

    const deadLetters = decisions.filter((d) => d._tag === "DeadLetter")
    if (deadLetters.length > 0) {
      const lookup = yield* Effect.result(deadLetterQueue)
      const target = Result.isSuccess(lookup) ? lookup.success : Option.none<string>()
      if (Option.isNone(target)) {
        const why = Result.isSuccess(lookup) ? "the queue has no dead-letter queue" : `its queue's attributes: ${lookup.failure.message}`
        for (const decision of deadLetters) {
          yield* Effect.logError(`cannot dead-letter message ${decision.message.messageId} (${why}); left on the queue`).pipe(
            Effect.annotateLogs({ messageId: decision.message.messageId, error: decision.error._tag, reason: decision.error.message })
          )
          outcomes.push(Outcome.Failed({ message: decision.message, error: decision.error }))
        }
      } else {
        const dlqFifo = isFifo(target.value)
        const entries = deadLetters.map((decision, index): OutgoingMessage => ({
          id: `d${index}`,
          body: decision.message.body,
          ...deadLetterAttributes(decision.message, decision.error, decision.stage, settings.queueUrl),
          ...(dlqFifo ? { groupId: "dead-letters", deduplicationId: decision.message.messageId } : {})
        }))
        const failures = yield* sendAll(target.value, entries, retry)
        for (const [index, decision] of deadLetters.entries()) {
          const failure = failures.get(`d${index}`)
          if (failure === undefined) {
            yield* Effect.logWarning(`dead-lettered message ${decision.message.messageId}: ${decision.error._tag}`).pipe(
              Effect.annotateLogs({ messageId: decision.message.messageId, error: decision.error._tag, reason: decision.error.message, step: decision.stage })
            )
            outcomes.push(Outcome.DeadLettered({ message: decision.message, error: decision.error }))
          } else {
            outcomes.push(Outcome.Failed({ message: decision.message, error: failure }))
          }
        }
      }
    }

    // the ledger's history: endings (a dead letter's also gives its place back, for the message a
    // redrive sends); an advanced place needs no write, the next place's claim says it
    const endings = Option.isNone(ledger) ? [] : outcomes.flatMap((outcome): Array<Finish> => {
      const ending: Ending | undefined = outcome._tag === "Done"
        ? { _tag: "Done" }
        : outcome._tag === "DeadLettered"
        ? { _tag: "DeadLettered", reason: outcome.error._tag, message: outcome.error.message, stage: stageOf(decisions, outcome.message) }
        : outcome._tag === "Duplicate"
        ? { _tag: "DuplicateSkipped" }
        : undefined
      return ending === undefined ? [] : [{ ...claimOf(outcome.message), ending }]
    })
    if (Option.isSome(ledger) && endings.length > 0) {
      yield* ledger.value.finish(endings).pipe(
        Effect.retry(briefRetry),
        Effect.catch((error) => Effect.logWarning(`could not record ${endings.length} endings in the transition ledger: ${error.message}`))
      )
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
