/**
 * The transition engine: moves each message of a batch one state forward.
 *
 * For each message: decode the body, check the step limit, ask the router, run the mutation.
 * Successors of the whole batch go out together (10 per request); a message counts as handled
 * only once its own successor is confirmed sent. Permanent failures go to the dead-letter queue
 * with their reason; retryable ones are retried in process, then left to SQS redelivery.
 * Acknowledging (deleting) is the caller's job: Lambda deletes what the handler does not report.
 */
import { Cause, Clock, Context, Data, Duration, Effect, Exit, LogLevel, Metric, Option, References, Result, Schedule, Schema, SchemaAST, Tracer } from "effect"
import * as SchemaJITCompiler from "effect/schema/SchemaJITCompiler"
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
import { EngineSettings, type Settings } from "../services/EngineSettings.ts"
import { MessageQueue, type QueueError } from "../services/MessageQueue.ts"
import { InvocationDeadline } from "../services/InvocationDeadline.ts"
import { type Claim, type Ending, type Finish, TransitionLedger } from "../services/TransitionLedger.ts"
import { briefRetry, retryOnFailure, retryPolicy } from "./retry.ts"
import { deleteAll, sendAll } from "./sendAll.ts"

/** What happened to one message. Every outcome but `Failed` is acknowledged. */
export type Outcome = Data.TaggedEnum<{
  /** `transitions`: the steps run, more than one when the message ran ahead; `step` is the sent state's. */
  Advanced: { readonly message: QueueMessage; readonly mutation: string; readonly step: number; readonly transitions: number }
  /** `transitions`: steps run before the router said done (run ahead); `step`: the place it ended at. */
  Done: { readonly message: QueueMessage; readonly transitions: number; readonly step: number }
  /** A copy of a message whose place in its chain another message holds: nothing was run. */
  Duplicate: { readonly message: QueueMessage }
  DeadLettered: { readonly message: QueueMessage; readonly error: StepFailure }
  Failed: { readonly message: QueueMessage; readonly error: StepFailure }
}>
export const Outcome = Data.taggedEnum<Outcome>()

/**
 * An enum's constructors (as `Data.taggedEnum`'s, whose proxy makes a new function each use) that tag
 * the object they are given, `_tag` last as there, rather than copy it: every call here passes a
 * literal made for it, and a copy cost two objects a message.
 */
const constructorsOf = <T extends object, K extends keyof T & string>(_taggedEnum: T, ...tags: Array<K>): Pick<T, K> =>
  Object.fromEntries(tags.map((tag) => [tag, (props: Record<string, unknown>) => {
    props["_tag"] = tag
    return props
  }])) as unknown as Pick<T, K>

const outcome = constructorsOf(Outcome, "Advanced", "Done", "Duplicate", "DeadLettered", "Failed")

/** What the engine decided for one message before anything is sent. */
type Decision = Data.TaggedEnum<{
  Next: {
    readonly message: QueueMessage
    readonly mutation: string
    readonly entry: OutgoingMessage
    readonly step: number
    /** The places this message ran through ahead of the one it sends (claimed for it in the ledger). */
    readonly passed: ReadonlyArray<PassedPlace>
  }
  Done: { readonly message: QueueMessage; readonly passed: ReadonlyArray<PassedPlace> }
  DeadLetter: { readonly message: QueueMessage; readonly error: StepFailure; readonly stage: string }
  Retry: { readonly message: QueueMessage; readonly error: StepFailure; readonly stage: string }
}>
const Decision = constructorsOf(Data.taggedEnum<Decision>(), "Next", "Done", "DeadLetter", "Retry")

/** A place of a chain a message ran through in the same pass (run-ahead), and the mutation that made its state. */
interface PassedPlace {
  readonly step: number
  readonly mutation: string
  readonly recordId: string
  /** When the pass reached it (ran on from it), for the ledger's history: the claim comes at the pass's end. */
  readonly reachedAt: number
}

/** No places passed (a message that did not run ahead): one shared, frozen array rather than one a message. */
const noPlaces: ReadonlyArray<PassedPlace> = Object.freeze([])

/** A batch's entry ids (`m0`, `m1`, ...), made once rather than once a message. */
const entryIds: Array<string> = []
const entryId = (index: number): string => (entryIds[index] ??= `m${index}`)

/** What deciding a message needs to know of its batch (asked once a batch). */
interface Batch {
  readonly settings: Settings
  /** A debug line per step, retry and done: below Debug they cost nothing a message. */
  readonly debug: boolean
  readonly retry: Schedule.Schedule<Duration.Duration, StepFailure>
  readonly runAheadMillis: number
  /** When run-ahead must stop for the invocation's deadline. */
  readonly lastMoment: number
  readonly fifo: boolean
}

/** Run-ahead stops this long before an invocation's deadline: time to send the state and answer. */
const DEADLINE_MARGIN_MS = 3_000

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

/** An effect that is an Exit already (`Effect.succeed(...)`, `Effect.fail(...)` are): its outcome is known without running it. */
const settled = <A, E, R>(effect: Effect.Effect<A, E, R>): effect is Exit.Exit<A, E> => Exit.isExit(effect)

/** An effect that is a successful Exit already: its value is known without running it. */
const succeeded = <A, E, R>(effect: Effect.Effect<A, E, R>): effect is Exit.Success<A, E> =>
  settled(effect) && effect._tag === "Success"

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

const compiledSchemas = new WeakSet<SchemaAST.AST>()

/**
 * Has Effect compile the record schema's decoder and encoder (this schema's only) on first use,
 * where its interpreter walks the schema for every message: both run twice a transition, and
 * compiled they cost a plain record a tenth (0.2 and 0.47 µs → 0.05 µs each; the thumbnail record
 * 1.5 → 0.7 µs). Where the runtime forbids `new Function`, Effect keeps the interpreter. The
 * compiled parsers give the same records and errors (test/programs/schemaCompiled.test.ts).
 * Called before the schema's parsers are made: one made earlier keeps what it was made with.
 */
export const compileRecordSchema = (schema: Schema.Top): void => {
  if (compiledSchemas.has(schema.ast)) return
  compiledSchemas.add(schema.ast)
  SchemaJITCompiler.enable(schema.ast)
  SchemaJITCompiler.enable(SchemaAST.flip(schema.ast))
}

/** Asked of the record's schema for a reason: every problem in it, not the first. */
const allErrors = { errors: "all" } as const

/**
 * Message bodies as the pipeline's records: not JSON is `MalformedBody`, not the record's shape `SchemaViolation`.
 * JSON.parse itself, not a Schema transformation around it (measured ~10% of a transition); an Exit
 * when the schema decodes synchronously (Schema's parsers answer so), so that `decide` needs no fiber.
 */
export const bodyDecoder = <Rec>(schema: Schema.Codec<Rec, unknown>) => {
  const decodeRecord = Schema.decodeUnknownEffect(schema)
  const violation = (error: Schema.SchemaError) => new SchemaViolation({ message: error.message })
  return (body: string): Effect.Effect<Rec, MalformedBody | SchemaViolation> => {
    let json: unknown
    try {
      json = JSON.parse(body)
    } catch (error) {
      return Exit.fail(new MalformedBody({ message: `body is not JSON: ${(error as Error).message}` }))
    }
    // the default options first: Schema's fast path (errors: "all" takes a generator a property),
    // and a valid record decodes the same under both. A record that fails, or a schema that does
    // not answer at once, is decoded (run) with all errors as before
    const quick = decodeRecord(json)
    const decoded = succeeded(quick) ? quick : decodeRecord(json, allErrors)
    return Effect.mapErrorEager(decoded, violation)
  }
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
  compileRecordSchema(pipeline.schema)
  const encode = Schema.encodeEffect(pipeline.schema)
  const decodeBody = bodyDecoder(pipeline.schema)

  /** The router's answer for a state reached while running ahead; a router that throws ends the run-ahead. */
  const routeOf = (state: Rec) => {
    try {
      return pipeline.router(state)
    } catch {
      return undefined
    }
  }
  const idOf = (record: Rec) => {
    try {
      return pipeline.recordId(record)
    } catch {
      return "(no id)"
    }
  }
  const retryLogged = (retry: Batch["retry"], recordId: string, mutation: string) =>
    retry.pipe(Schedule.modifyDelay(({ attempt, duration, input }) =>
      Effect.logDebug(`record ${recordId}: ${mutation} failed with ${input._tag}, retry ${attempt} in ${Duration.format(duration)}`).pipe(
        Effect.annotateLogs({ recordId, mutation, error: input._tag, attempt }),
        Effect.as(duration)
      )
    ))

  // untraced: a span per message costs more than the step of a quick mutation. Eager: run at once
  // while everything it yields is already done (decode, route, a mutation answering with an Exit,
  // encode), so that such a message is decided without a fiber of its own (Effect.forEach forks one
  // only for an item that is not an Exit); the first effect that is not done continues as usual
  const decide = Effect.fnUntracedEager(function*(batch: Batch, message: QueueMessage, index: number) {
    const { settings, debug, retry, runAheadMillis, lastMoment, fifo } = batch
    const runAhead = runAheadMillis > 0
    const current: Transition = fromAttributes(message.attributes, message.messageId)
    // an effect already succeeded is read, not yielded: no iterator, no error mapping to set up
    const decoded = decodeBody(message.body)
    const record = succeeded(decoded)
      ? decoded.value
      : yield* Effect.mapError(decoded, (error) => new StageFailure({ stage: "decode", error }))
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
    let route: ReturnType<typeof pipeline.router>
    try {
      route = pipeline.router(record)
    } catch (cause) {
      return yield* Exit.fail(new StageFailure({ stage: "route", error: Defect.fromCause(Cause.die(cause)) }))
    }
    if (route._tag === "Done") {
      if (debug) {
        const recordId = idOf(record)
        yield* Effect.logDebug(`record ${recordId}: done after ${current.step} steps`).pipe(
          Effect.annotateLogs({ recordId, steps: current.step, messageId: message.messageId })
        )
      }
      return Decision.Done({ message, passed: noPlaces })
    }
    if (route._tag === "UnknownState") return yield* new StageFailure({ stage: "route", error: route })
    const startedAt = runAhead ? yield* Clock.currentTimeMillis : 0
    const run = route.run(record)
    // a mutation that already succeeded has nothing to retry: no schedule to set up
    const next = succeeded(run)
      ? run.value
      : yield* run.pipe(retryOnFailure(debug ? retryLogged(retry, idOf(record), route.name) : retry), atStage(route.name))
    const encodedNext = encode(next)
    const encoded = succeeded(encodedNext) ? encodedNext.value : yield* Effect.mapError(encodedNext, (error) =>
      new StageFailure({
        stage: route.name,
        error: new SchemaViolation({ message: `${route.name} returned an invalid record: ${error.message}` })
      }))
    let recordId = pipeline.recordId(next)
    let transition = nextTransition(current, recordId, encoded)
    if (debug) {
      yield* Effect.logDebug(`record ${recordId}: step ${transition.step} ${route.name}`).pipe(
        Effect.annotateLogs({ recordId, step: transition.step, mutation: route.name, messageId: message.messageId })
      )
    }

    // run-ahead: the steps after this one, in this pass, while the budget lasts. Each is tried
    // once: a failure, a router that cannot place the state, or the step limit ends it, and the
    // last state is sent for the next pass to deal with (mutations are idempotent, so a crash here
    // only redoes work from this message's state)
    let state = next
    let body = encoded
    let made: { readonly name: string; readonly checkpoint?: boolean | undefined } = route
    // only a message running ahead passes places: the others share the empty list
    const passed: Array<PassedPlace> = runAhead ? [] : noPlaces as Array<PassedPlace>
    const until = runAhead ? Math.min(startedAt + runAheadMillis, lastMoment) : 0
    while (runAhead && made.checkpoint !== true && transition.step < settings.maxSteps && (yield* Clock.currentTimeMillis) < until) {
      const reachedAt = yield* Clock.currentTimeMillis
      const answer = routeOf(state)
      if (answer === undefined || answer._tag === "UnknownState") break
      if (answer._tag === "Done") {
        passed.push({ step: transition.step, mutation: made.name, recordId, reachedAt })
        if (debug) {
          yield* Effect.logDebug(`record ${recordId}: done after ${transition.step} steps`).pipe(
            Effect.annotateLogs({ recordId, steps: transition.step, messageId: message.messageId })
          )
        }
        return Decision.Done({ message, passed })
      }
      const ran = yield* Effect.exit(answer.run(state))
      if (Exit.isFailure(ran)) break
      const encodedRan = yield* Effect.exit(encode(ran.value))
      if (Exit.isFailure(encodedRan)) break
      passed.push({ step: transition.step, mutation: made.name, recordId, reachedAt })
      state = ran.value
      body = encodedRan.value
      recordId = pipeline.recordId(state)
      transition = nextTransition(transition, recordId, body)
      made = answer
      if (debug) {
        yield* Effect.logDebug(`record ${recordId}: step ${transition.step} ${answer.name} (run ahead)`).pipe(
          Effect.annotateLogs({ recordId, step: transition.step, mutation: answer.name, messageId: message.messageId })
        )
      }
    }

    // built in place, not spread together: this runs once a message
    const attributes = toAttributes(transition)
    // for the ledger's history: the mutation always; the record id once a chain, on its first
    // successor when its first message did not name it (the producer's do) and it ran no place ahead
    attributes[Attribute.mutation] = made.name
    if (current.step === 0 && passed.length === 0 && message.attributes[Attribute.recordId] === undefined && recordId !== "") {
      attributes[Attribute.recordId] = recordId
    }
    const id = entryId(index)
    const text = JSON.stringify(body)
    const entry: OutgoingMessage = fifo ? { id, body: text, attributes, ...fifoFields(recordId, transition) } : { id, body: text, attributes }
    return Decision.Next({ message, mutation: made.name, entry, step: transition.step, passed })
  })
  /** A message whose deciding failed: retried later or dead-lettered, by its error. */
  const failed = (message: QueueMessage, cause: Cause.Cause<StageFailure>): Decision => {
    const failure = Cause.findErrorOption(cause)
    const { error, stage } = Option.isSome(failure) ? failure.value : { error: Defect.fromCause(cause), stage: "decode" }
    return isRetryable(error) ? Decision.Retry({ message, error, stage }) : Decision.DeadLetter({ message, error, stage })
  }
  // an Exit read at once (not through a pipeable, which spreads its arguments a call)
  const decideOrFail = (batch: Batch, message: QueueMessage, index: number): Effect.Effect<Decision, never, R> => {
    const decision = decide(batch, message, index)
    if (settled(decision)) return Exit.succeed(Exit.isSuccess(decision) ? decision.value : failed(message, decision.cause))
    return Effect.matchCause(decision, { onSuccess: (value) => value, onFailure: (cause) => failed(message, cause) })
  }

  const processMessages = Effect.fnUntraced(function*(messages: ReadonlyArray<QueueMessage>) {
    // the services and references a batch needs, read from its context in one step (a yield each
    // cost a quick batch about a tenth of its time)
    const context = yield* Effect.context<EngineSettings | MessageQueue>()
    const settings = Context.get(context, EngineSettings)
    const queue = Context.get(context, MessageQueue)
    const redrivePolicies = redrivePoliciesOf.get(queue) ?? new Map<string, RedrivePolicy>()
    redrivePoliciesOf.set(queue, redrivePolicies)
    const retry = retryPolicy(settings.retryFor)
    const deadline = Context.getUnsafe(context, InvocationDeadline)
    const batch: Batch = {
      settings,
      // as LogLevel.isEnabled("Debug") answers
      debug: !LogLevel.isGreaterThan(Context.getUnsafe(context, References.MinimumLogLevel), "Debug"),
      retry,
      runAheadMillis: Duration.toMillis(settings.runAhead),
      lastMoment: Option.getOrElse(deadline, () => Infinity) - DEADLINE_MARGIN_MS,
      fifo: isFifo(settings.queueUrl)
    }
    const cachedPolicy = redrivePolicies.get(settings.queueUrl)
    // made when needed (few batches do), from the cache as it was when the batch began
    const redrivePolicy = (): Effect.Effect<RedrivePolicy, QueueError> =>
      cachedPolicy !== undefined
        ? Effect.succeed(cachedPolicy)
        : queue.attributes(settings.queueUrl).pipe(
          retryOnFailure(retry),
          Effect.map(({ deadLetterQueueUrl, maxReceiveCount }) => ({ deadLetterQueueUrl, maxReceiveCount })),
          Effect.tap((policy) => Effect.sync(() => redrivePolicies.set(settings.queueUrl, policy)))
        )
    const deadLetterQueue = () =>
      Option.isSome(settings.deadLetterQueueUrl)
        ? Effect.succeed(settings.deadLetterQueueUrl)
        : Effect.map(redrivePolicy(), (policy) => policy.deadLetterQueueUrl)

    const outcomes: Array<Outcome> = []
    // each place in a chain is advanced by one message only: claim them all before running anything
    const ledger = Context.getOption(context, TransitionLedger)
    // the queue too: one ledger (the local queue's file) may serve several pipelines' queues
    const claims = Option.isNone(ledger) ? [] : messages.map((message) => ({ ...claimOf(message), queue: settings.queueUrl }))
    // without a ledger every message holds its place
    const claiming = Option.isNone(ledger) ? undefined : yield* Effect.exit(ledger.value.claim(claims).pipe(retryOnFailure(retry)))
    if (claiming !== undefined && Exit.isFailure(claiming)) {
      const error = Cause.squash(claiming.cause) as StepFailure
      yield* Effect.logWarning(`transition ledger unavailable (${error.message}); the batch is left for redelivery`)
      return messages.map((message) => outcome.Failed({ message, error }))
    }
    const claimed = claiming?.value
    const toRun: Array<QueueMessage> = []
    for (let index = 0; index < messages.length; index++) {
      const message = messages[index]!
      if (claimed === undefined || claimed[index] !== "Duplicate") {
        toRun.push(message)
        continue
      }
      const claim = claims[index]!
      yield* Effect.logInfo(`skipped message ${message.messageId}: a copy of step ${claim.step} of chain ${claim.traceId}, which another message holds`).pipe(
        Effect.annotateLogs({ messageId: message.messageId, traceId: claim.traceId, step: claim.step })
      )
      outcomes.push(outcome.Duplicate({ message }))
    }
    if (outcomes.length > 0) yield* Metric.update(duplicatesSkipped, outcomes.length)

    // decided in order as Effect.forEach would; the messages decided at once (most) go without it,
    // the first that is not and those after it through it, as before
    const decided: Array<Decision> = []
    let index = 0
    let first: Effect.Effect<Decision, never, R> | undefined
    for (; index < toRun.length; index++) {
      const decision = decideOrFail(batch, toRun[index]!, index)
      if (!settled(decision)) {
        first = decision
        break
      }
      // decideOrFail's answer never fails: a failure is a decision
      if (Exit.isSuccess(decision)) decided.push(decision.value)
    }
    if (first !== undefined) {
      const start = index
      const started = first
      const rest = yield* Effect.forEach(
        toRun.slice(start),
        (message, offset) => offset === 0 ? started : decideOrFail(batch, message, start + offset),
        { concurrency: settings.concurrency }
      )
      for (const decision of rest) decided.push(decision)
    }
    // on its last allowed receive a failing message is dead-lettered here, with its reason, rather
    // than moved by the queue's redrive with none
    const maxReceiveCount = decided.some((d) => d._tag === "Retry")
      ? yield* redrivePolicy().pipe(Effect.map((policy) => policy.maxReceiveCount), Effect.orElseSucceed(() => Option.none<number>()))
      : Option.none<number>()
    const decisions = Option.isNone(maxReceiveCount) ? decided : decided.map((decision): Decision =>
      decision._tag === "Retry" && decision.message.receiveCount >= maxReceiveCount.value
        ? Decision.DeadLetter({ message: decision.message, error: decision.error, stage: decision.stage })
        : decision
    )

    // the places a message ran through ahead are claimed for it too, before its state is sent: if
    // another message holds one (an earlier attempt's successor), this pass is a copy and sends nothing
    const passing = Option.isNone(ledger) ? [] : decisions.filter((d) => (d._tag === "Next" || d._tag === "Done") && d.passed.length > 0)
    const stopped = new Set<QueueMessage>()
    if (Option.isSome(ledger) && passing.length > 0) {
      const passedClaims = passing.flatMap((decision) => {
        const own = claimOf(decision.message)
        const passed = decision._tag === "Next" || decision._tag === "Done" ? decision.passed : []
        return passed.map((place, index): Claim & { readonly message: QueueMessage } => ({
          ...own,
          step: place.step,
          mutation: place.mutation,
          reachedAt: place.reachedAt,
          // the record id once a chain, as on a first successor, when its first message did not name it
          recordId: own.recordId ?? (own.step === 0 && index === 0 && place.recordId !== "" ? place.recordId : undefined),
          queue: settings.queueUrl,
          message: decision.message
        }))
      })
      const results = yield* Effect.exit(ledger.value.claim(passedClaims.map(({ message: _, ...claim }) => claim)).pipe(retryOnFailure(retry)))
      if (Exit.isFailure(results)) {
        // not known to be the only lineage past its place: left for redelivery, like an unclaimable batch
        const error = Cause.squash(results.cause) as StepFailure
        for (const decision of passing) {
          stopped.add(decision.message)
          outcomes.push(outcome.Failed({ message: decision.message, error }))
        }
      } else {
        for (const [index, claim] of passedClaims.entries()) {
          if (results.value[index] !== "Duplicate" || stopped.has(claim.message)) continue
          stopped.add(claim.message)
          yield* Effect.logInfo(
            `skipped message ${claim.message.messageId}: step ${claim.step} of chain ${claim.traceId}, which it ran ahead to, is held by another message`
          )
          outcomes.push(outcome.Duplicate({ message: claim.message }))
        }
      }
    }
    const acting = stopped.size === 0 ? decisions : decisions.filter((decision) => !stopped.has(decision.message))

    // successors first: a message is handled only once its successor is confirmed sent
    const next = acting.filter((d) => d._tag === "Next")
    const sendFailures = yield* sendAll(settings.queueUrl, next.map((d) => d.entry), retry)
    for (const decision of next) {
      const error = sendFailures.get(decision.entry.id)
      outcomes.push(
        error === undefined
          ? outcome.Advanced({ message: decision.message, mutation: decision.mutation, step: decision.step, transitions: decision.passed.length + 1 })
          : outcome.Failed({ message: decision.message, error })
      )
    }

    for (const decision of acting) {
      if (decision._tag === "Done") {
        const at = decision.passed.at(-1)?.step ?? claimOf(decision.message).step
        outcomes.push(outcome.Done({ message: decision.message, transitions: decision.passed.length, step: at }))
      }
      if (decision._tag === "Retry") outcomes.push(outcome.Failed({ message: decision.message, error: decision.error }))
    }

    const deadLetters = acting.filter((d) => d._tag === "DeadLetter")
    if (deadLetters.length > 0) {
      const lookup = yield* Effect.result(deadLetterQueue())
      const target = Result.isSuccess(lookup) ? lookup.success : Option.none<string>()
      if (Option.isNone(target)) {
        const why = Result.isSuccess(lookup) ? "the queue has no dead-letter queue" : `its queue's attributes: ${lookup.failure.message}`
        for (const decision of deadLetters) {
          yield* Effect.logError(`cannot dead-letter message ${decision.message.messageId} (${why}); left on the queue`).pipe(
            Effect.annotateLogs({ messageId: decision.message.messageId, error: decision.error._tag, reason: decision.error.message })
          )
          outcomes.push(outcome.Failed({ message: decision.message, error: decision.error }))
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
            outcomes.push(outcome.DeadLettered({ message: decision.message, error: decision.error }))
          } else {
            outcomes.push(outcome.Failed({ message: decision.message, error: failure }))
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
      // a record done after running ahead ends at the place it reached
      const place = outcome._tag === "Done" ? { step: outcome.step } : {}
      return ending === undefined ? [] : [{ ...claimOf(outcome.message), ...place, ending }]
    })
    if (Option.isSome(ledger) && endings.length > 0) {
      yield* ledger.value.finish(endings).pipe(
        retryOnFailure(briefRetry),
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
  // a span a batch for a tracing backend; without one (Effect's native tracer keeps spans to itself)
  // none: a span and its call-site frame cost about a third of a quick batch's time
  return (messages: ReadonlyArray<QueueMessage>) =>
    Effect.withFiber((fiber) =>
      fiber.getRef(Tracer.Tracer) === Tracer.nativeTracer
        ? processMessages(messages)
        // Stryker disable next-line StringLiteral: a span name; nothing a user sees without a tracer
        : Effect.withSpan(processMessages(messages), "processBatch"))
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
