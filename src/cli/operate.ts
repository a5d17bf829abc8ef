/**
 * Operating a pipeline: `status`, `dlq list`, `dlq redrive`, `trace` and `diagram`, on the backends
 * the environment selects (SQS with PIPELINE_QUEUE_URL, else the local queue; the transition
 * ledger beside it). The programs do the work (`src/programs/status.ts`, `deadLetters.ts`,
 * `trace.ts`, `diagram.ts`); this file parses, picks layers, prints.
 */
import { Console, Deferred, Effect, Layer, Option, Schema, Stdio } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import {
  type DeadLetter,
  moveTasks,
  peekDeadLetters,
  RedriveFailed,
  redriveDeadLetters,
  type RedriveResult
} from "../programs/deadLetters.ts"
import { ledgerLastHour, pipelineStatus, STATUS_PEEK_LIMIT, type Status } from "../programs/status.ts"
import { type Trace, type TracedStep, traceRecord } from "../programs/trace.ts"
import { pipelineDiagram } from "../programs/diagram.ts"
import { TransitionLedger } from "../services/TransitionLedger.ts"
import { EngineSettings, localQueueFor } from "../services/EngineSettings.ts"
import { loadPipeline } from "./loadPipeline.ts"
import type { MoveTask } from "../services/MessageMoveTasks.ts"
import { queueBackendsFor } from "./layers.ts"
import { RedriveJournal } from "../services/RedriveJournal.ts"
import { root, UsageError } from "./commands.ts"
import { graceful } from "./graceful.ts"

const PositiveInt = Schema.Int.pipe(Schema.check(Schema.isGreaterThan(0)))

/** The queue of the pipeline `--pipeline` (or PIPELINE_NAME) names: locally, each pipeline has its own. */
const queueBackends = Layer.unwrap(Effect.map(Effect.flatMap(root, ({ pipeline }) => loadPipeline(pipeline)), ({ name }) => queueBackendsFor(name)))

const json = Flag.Boolean("json").pipe(Flag.withDescription("Print one JSON object (for scripts)"), Flag.withDefault(false))

const printJson = (value: unknown) => Console.log(JSON.stringify(value, null, 2))

const EXCERPT = 120
export const excerpt = (body: string, length = EXCERPT) => {
  const flat = body.replace(/\s+/g, " ")
  return flat.length > length ? `${flat.slice(0, length - 1)}…` : flat
}

// ---- status

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`

const age = (seconds: number | null, note: string | null) =>
  seconds === null ? `oldest: ${note ?? "not known"}`
    : seconds < 120 ? `oldest ${seconds} s`
    : seconds < 7200 ? `oldest ${Math.round(seconds / 60)} min`
    : `oldest ${(seconds / 3600).toFixed(1)} h`

const tally = (counts: Record<string, number>) => Object.entries(counts).map(([key, n]) => `${key} ${n}`).join(", ")

export const statusText = (status: Status): string => {
  const { queue, deadLetters } = status
  const lines = [
    `queue ${queue.url}`,
    `  ${queue.visible} visible · ${queue.inFlight} in flight · ${queue.delayed} delayed · ${age(queue.oldestAgeSeconds, queue.oldestAgeNote)}`,
    `dead letters ${deadLetters.url}`,
    `  ${plural(deadLetters.count, "message")}`
  ]
  if (deadLetters.count > 0) {
    const sampled = deadLetters.peeked < deadLetters.count ? ` (of the ${deadLetters.peeked} looked at)` : ""
    lines.push(`  reasons: ${tally(deadLetters.reasons)}${sampled}`, `  steps: ${tally(deadLetters.steps)}`)
  }
  const hour = status.lastHour
  if (hour !== null) {
    const steps = Object.keys(hour.steps).length === 0 ? "" : ` · steps run: ${tally(hour.steps)}`
    lines.push(`last hour (transition ledger)`, `  ${hour.started} started${steps} · ${hour.done} done · ${hour.deadLettered} dead-lettered`)
  }
  return lines.join("\n")
}

const WATCH_EVERY = "2 seconds"
const LEDGER_EVERY = "30 seconds"

export const status = Command.make(
  "status",
  {
    json,
    watch: Flag.Boolean("watch").pipe(
      Flag.withDescription(
        `Refresh every ${WATCH_EVERY} (the ledger's last hour every ${LEDGER_EVERY}) until Ctrl-C (in place on a terminal; a new snapshot per refresh otherwise)`
      ),
      Flag.withDefault(false)
    )
  },
  Effect.fn("cli.status")(function*(flags) {
    const render = (snapshot: Status) => (flags.json ? JSON.stringify(snapshot, null, flags.watch ? undefined : 2) : statusText(snapshot))
    if (!flags.watch) return yield* Console.log(render(yield* pipelineStatus()))
    const inPlace = (yield* (yield* Stdio.Stdio).stdoutIsTerminal) && !flags.json
    let drawn = 0
    // the ledger's last hour is a table scan on DynamoDB: read less often than the queue
    const lastHour = yield* Effect.cachedWithTTL(ledgerLastHour, LEDGER_EVERY)
    const refresh = Effect.gen(function*() {
      const text = `${render(yield* pipelineStatus(STATUS_PEEK_LIMIT, lastHour))}` + (inPlace ? `\n(${new Date().toLocaleTimeString()}, every ${WATCH_EVERY}; Ctrl-C stops)` : "")
      // on a terminal: back to the first line of the last snapshot, clear to the end, draw again
      const prefix = inPlace && drawn > 0 ? `\x1b[${drawn}F\x1b[J` : ""
      yield* Console.log(`${prefix}${text}`)
      drawn = text.split("\n").length
    })
    yield* graceful((stop) =>
      Effect.race(
        Effect.forever(refresh.pipe(Effect.andThen(Effect.sleep(WATCH_EVERY)))),
        Deferred.await(stop)
      )
    )
  }, Effect.provide(Layer.merge(queueBackends, TransitionLedger.layerReader)))
).pipe(Command.withDescription(
  "The queue's messages (visible, in flight, delayed, oldest), the dead letters by reason and step, and the last hour from the transition ledger"
))

// ---- dlq list

const letterJson = (letter: DeadLetter) => ({
  messageId: letter.messageId,
  reason: letter.reason,
  message: letter.errorMessage ?? null,
  step: letter.step ?? null,
  receiveCount: letter.receiveCount ?? null,
  sourceQueue: letter.sourceQueue ?? null,
  traceId: letter.attributes["pipeline.trace_id"] ?? null,
  body: excerpt(letter.body)
})

export const letterText = (letter: DeadLetter): string =>
  [
    `${letter.messageId}  ${letter.reason}` +
    (letter.step === undefined ? "" : ` at ${letter.step}`) +
    (letter.receiveCount === undefined ? "" : `, receive ${letter.receiveCount}`) +
    (letter.sourceQueue === undefined ? "" : `, from ${letter.sourceQueue}`),
    ...(letter.errorMessage === undefined ? [] : [`  ${excerpt(letter.errorMessage, 200)}`]),
    `  body: ${excerpt(letter.body)}`
  ].join("\n")

export const dlqList = Command.make(
  "list",
  {
    json,
    max: Flag.Int("max").pipe(
      Flag.withDescription("Show at most this many"),
      Flag.withSchema(PositiveInt),
      Flag.withDefault(100)
    )
  },
  Effect.fn("cli.dlq.list")(function*(flags) {
    const peek = yield* peekDeadLetters(flags.max)
    if (flags.json) {
      return yield* printJson({
        deadLetterQueueUrl: peek.deadLetterQueueUrl,
        count: peek.count,
        truncated: peek.truncated,
        letters: peek.letters.map(letterJson)
      })
    }
    const shown = peek.truncated ? ` (the first ${peek.letters.length}; --max shows more)` : ""
    yield* Console.log(`${plural(peek.count, "dead letter")} in ${peek.deadLetterQueueUrl}${shown}`)
    for (const letter of peek.letters) yield* Console.log(`\n${letterText(letter)}`)
  }, Effect.provide(queueBackends))
).pipe(Command.withDescription("The dead letters with reason, step, receive count, source queue and body; they stay in the DLQ"))

// ---- dlq redrive

const taskText = (task: MoveTask) =>
  `${task.status}: ${task.moved}${task.toMove === undefined ? "" : ` of ${task.toMove}`} moved` +
  (task.startedAt === undefined ? "" : `, started ${task.startedAt.toISOString()}`) +
  (task.failureReason === undefined ? "" : `, failed: ${task.failureReason}`) +
  (task.taskHandle === undefined ? "" : ` (task ${task.taskHandle})`)

export const redriveText = (result: RedriveResult): string => {
  if (result._tag === "MoveTask") {
    return `started an SQS move task for about ${plural(result.approximateCount, "message")}: ${result.deadLetterQueueUrl} → ${result.destination}\n` +
      `\`dlq redrive --status\` shows its progress`
  }
  const lines = [`redrove ${plural(result.redriven, "message")} from ${result.deadLetterQueueUrl}`]
  if (result.finished > 0) lines.push(`finished ${plural(result.finished, "message")} an earlier redrive had sent back (deleted from the DLQ, not sent again)`)
  if (result.notDeleted > 0) lines.push(`${result.notDeleted} sent back but still in the DLQ (its delete failed): the next redrive deletes them without sending them again`)
  for (const failure of result.failed) lines.push(`not redriven: ${failure.messageId}: ${failure.reason}`)
  return lines.join("\n")
}

const redriveJson = (result: RedriveResult) =>
  result._tag === "MoveTask"
    ? { method: "move-task", deadLetterQueueUrl: result.deadLetterQueueUrl, destination: result.destination, taskHandle: result.taskHandle, approximateCount: result.approximateCount }
    : { method: "copy", deadLetterQueueUrl: result.deadLetterQueueUrl, redriven: result.redriven, finished: result.finished, notDeleted: result.notDeleted, failed: result.failed }

export const dlqRedrive = Command.make(
  "redrive",
  {
    json,
    max: Flag.Int("max").pipe(Flag.withDescription("Redrive at most this many"), Flag.withSchema(PositiveInt), Flag.optional),
    step: Flag.String("step").pipe(Flag.withDescription("Only dead letters of this step (error.step)"), Flag.optional),
    reason: Flag.String("reason").pipe(Flag.withDescription("Only dead letters with this reason (error.tag)"), Flag.optional),
    rate: Flag.Int("rate").pipe(
      Flag.withDescription("At most this many messages a second (SQS move tasks: 1 to 500)"),
      Flag.withSchema(PositiveInt),
      Flag.optional
    ),
    copy: Flag.Boolean("copy").pipe(
      Flag.withDescription("Receive, send and delete here even where an SQS move task could do it"),
      Flag.withDefault(false)
    ),
    status: Flag.Boolean("status").pipe(Flag.withDescription("Show the progress of SQS move tasks instead"), Flag.withDefault(false))
  },
  Effect.fn("cli.dlq.redrive")(function*(flags) {
    if (flags.status) {
      if (Option.isSome(flags.max) || Option.isSome(flags.step) || Option.isSome(flags.reason) || Option.isSome(flags.rate) || flags.copy) {
        return yield* new UsageError({ message: "--status takes no other flag but --json" })
      }
      const tasks = yield* moveTasks()
      if (flags.json) return yield* printJson({ deadLetterQueueUrl: tasks.deadLetterQueueUrl, supported: tasks.supported, tasks: tasks.tasks })
      if (!tasks.supported) return yield* Console.log("no move tasks: on the local queue a redrive runs in the foreground, nothing runs in the background")
      if (tasks.tasks.length === 0) return yield* Console.log(`no move tasks for ${tasks.deadLetterQueueUrl}`)
      for (const task of tasks.tasks) yield* Console.log(taskText(task))
      return
    }
    const result = yield* redriveDeadLetters({
      max: Option.getOrUndefined(flags.max),
      step: Option.getOrUndefined(flags.step),
      reason: Option.getOrUndefined(flags.reason),
      copy: flags.copy,
      perSecond: Option.getOrUndefined(flags.rate)
    }).pipe(Effect.provide(RedriveJournal.layer))
    yield* flags.json ? printJson(redriveJson(result)) : Console.log(redriveText(result))
    if (result._tag === "Copied" && (result.failed.length > 0 || result.notDeleted > 0)) {
      return yield* new RedriveFailed({ message: `${result.failed.length + result.notDeleted} dead letters were not fully redriven` })
    }
  }, Effect.provide(queueBackends))
).pipe(Command.withDescription(
  "Send dead letters back to their source queue without their error.* attributes (SQS: a move task unless filtered or FIFO)"
))

export const dlq = Command.make("dlq").pipe(
  Command.withDescription("The dead-letter queue: list its messages, redrive them"),
  Command.withSubcommands([dlqList, dlqRedrive])
)

// ---- trace

const outcomeText = (step: TracedStep) => {
  const copies = step.duplicatesSkipped === 0 ? "" : `, ${plural(step.duplicatesSkipped, "copy", "copies")} skipped`
  switch (step.outcome) {
    case "advanced":
      return `${step.mutation ?? "?"} → advanced${copies}`
    case "done":
      return `done${copies}`
    case "dead-lettered":
      return `${step.reason?.stage ?? "?"} → dead-lettered: ${step.reason?.tag ?? "unknown"}${copies}` +
        (step.reason?.message === null || step.reason?.message === undefined ? "" : `\n      ${excerpt(step.reason.message, 200)}`)
    case "in-flight":
      return `in flight (nothing after it yet)${copies}`
  }
}

export const traceText = (trace: Trace): string =>
  trace.chains.map((chain) => {
    const head = `${chain.recordId === null ? "record (id not in the ledger)" : `record ${chain.recordId}`} · trace ${chain.traceId}`
    const rows = chain.steps.map((step) =>
      `  step ${step.step}  ${step.at}  message ${step.messageId}  ${outcomeText(step)}` +
      (step.redriven === null
        ? ""
        : `\n      redriven: before it, message ${step.redriven.messageId} was dead-lettered ${step.redriven.deadLetteredAt}: ` +
          `${step.redriven.reason.tag} at ${step.redriven.reason.stage ?? "?"}`)
    )
    return [head, ...rows].join("\n")
  }).join("\n\n")

export const trace = Command.make(
  "trace",
  {
    json,
    id: Argument.String("id").pipe(Argument.withDescription("A record id (e.g. a stock number) or a trace id (pipeline.trace_id)"))
  },
  Effect.fn("cli.trace")(function*(flags) {
    if (flags.id.trim() === "") return yield* new UsageError({ message: "give a record id or a trace id" })
    const found = yield* traceRecord(flags.id)
    yield* flags.json ? printJson(found) : Console.log(traceText(found))
  }, Effect.provide(TransitionLedger.layerReader))
).pipe(Command.withDescription(
  "A record's history step by step (mutation, message, when, outcome) from the transition ledger; by record id or trace id"
))

// ---- diagram

export const diagram = Command.make(
  "diagram",
  { json },
  Effect.fn("cli.diagram")(function*(flags) {
    const pipeline = yield* loadPipeline((yield* root).pipeline)
    // its queue's settings: the ledger's entries of that queue only
    const drawn = yield* pipelineDiagram(pipeline).pipe(Effect.provide(EngineSettings.layerFor(localQueueFor(pipeline.name))))
    yield* flags.json ? printJson(drawn) : Console.log(drawn.mermaid)
  }, Effect.provide(TransitionLedger.layerReader))
).pipe(Command.withDescription(
  "The pipeline's states and transitions as a Mermaid state diagram: declared, and observed in the transition ledger with counts"
))
