/**
 * Shared parts of the fault suite: the CLI in child processes, agents killed at random and
 * restarted, and the analysis of what was sent (from an independent record) and of what the
 * pipeline's code worked on (test/support/pipelines/lineage.ts).
 */
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { startCli as startCliProcess, type StartedCli } from "../support/cli.ts"
import type { LogEntry } from "../support/faultProxy.ts"
import { DONE_STEP, type LineageLine } from "../support/pipelines/lineage.ts"

export const PIPELINE = ["--pipeline", "test/support/pipelines/lineage.ts"]

/** `PIPELINE_LEDGER=off npx vitest run test/faults` measures without the ledger (fork assertions are then skipped). */
export const ledgerOn = process.env["PIPELINE_LEDGER"] !== "off"

export interface Started extends StartedCli {
  readonly startedAt: number
  /** Output so far. */
  readonly stderr: () => string
}

/** The CLI in a child process (test/support/cli.ts: compile cache, no PIPELINE_* from this shell). */
export const startCli = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>>): Started => {
  const started = startCliProcess(args, env)
  let stderr = ""
  started.child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
  return { ...started, startedAt: Date.now(), stderr: () => stderr }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export const recordIds = (count: number) => Array.from({ length: count }, (_, i) => `rec-${i}`)

/** The agent has logged its start line: its signal handlers are in place. */
const isReady = (agent: Started) => agent.stderr().includes(`"agent: lineage on `)

export interface ChaosResult {
  readonly kills: number
  /** Agents that exited without being told to (restarted too), with the end of their stderr. */
  readonly crashes: ReadonlyArray<string>
  readonly starts: number
  readonly millis: number
}

/** The process that wrote the lineage log last: the agent that ran a mutation most recently. */
export const lastWriter = (dir: string): number | undefined => {
  let newest: { pid: number; mtime: number } | undefined
  for (const file of readdirSync(dir)) {
    const mtime = statSync(join(dir, file)).mtimeMs
    if (newest === undefined || mtime > newest.mtime) newest = { pid: Number.parseInt(file, 10), mtime }
  }
  return newest?.pid
}

/**
 * Keeps `agents` agents running and kills them with SIGKILL as the work goes on: after every
 * `killEvery` sends (a random number in that range, counted by `sends` from an independent
 * record), one agent that is up gets SIGKILL and a new one is started. Half the kills come at once,
 * half (and the first) wait for the next send and hit the agent that ran a mutation last: the window between a
 * successor's send and its parent's delete, in which a death leaves two messages. Counting in sends
 * rather than seconds keeps the number of kills the same on a slow or busy machine. Once
 * `finished` says so, every agent gets SIGTERM and must exit 0.
 */
export const runAgentsWithKills = async (options: {
  readonly start: () => Started
  readonly agents: number
  readonly random: () => number
  readonly sends: () => number
  readonly killEvery: readonly [number, number]
  /** The lineage log's folder, to find the agent that worked last. */
  readonly lineageDir: string
  readonly finished: () => Promise<boolean>
  readonly timeoutMs: number
  /** Where things stand, for the message when time runs out. */
  readonly status?: () => Promise<string>
}): Promise<ChaosResult> => {
  const began = Date.now()
  const live = Array.from({ length: options.agents }, () => options.start())
  let starts = live.length
  let kills = 0
  const crashes: Array<string> = []
  const span = () => Math.round(options.killEvery[0] + options.random() * (options.killEvery[1] - options.killEvery[0]))
  let nextKill = options.sends() + span()
  // `finished` reads logs and queues: asked twice a second, not on every turn of the loop
  let checkedAt = 0
  const finished = async () => {
    if (Date.now() - checkedAt < 500) return false
    checkedAt = Date.now()
    return options.finished()
  }
  try {
    while (!(await finished())) {
      if (Date.now() - began > options.timeoutMs) {
        const status = options.status === undefined ? "" : `: ${await options.status()}`
        const agents = live.map((agent) => agent.stderr().slice(-1500)).join("\n---\n")
        throw new Error(`not finished after ${options.timeoutMs} ms (${kills} kills)${status}\nagents:\n${agents}`)
      }
      for (const [index, agent] of live.entries()) {
        if (agent.child.exitCode === null && agent.child.signalCode === null) continue
        crashes.push(`exit ${agent.child.exitCode ?? agent.child.signalCode}: ${agent.stderr().slice(-2000)}`)
        live[index] = options.start()
        starts++
      }
      // only agents that are up and working are killed, so a slow start cannot stall the run
      const ready = live.flatMap((agent, index) => (isReady(agent) ? [index] : []))
      if (options.sends() >= nextKill && ready.length > 0) {
        let index = ready[Math.floor(options.random() * ready.length)]!
        if (kills === 0 || options.random() < 0.5) {
          const before = options.sends()
          const until = Date.now() + 1000
          while (options.sends() === before && Date.now() < until) await sleep(2)
          const sender = live.findIndex((agent) => agent.child.pid === lastWriter(options.lineageDir))
          if (ready.includes(sender)) index = sender
        }
        const victim = live[index]!
        victim.child.kill("SIGKILL")
        await victim.exit
        live[index] = options.start()
        starts++
        kills++
        nextKill = options.sends() + span()
      }
      await sleep(20)
    }
    // agents that have not logged their start yet could die of SIGTERM before handling it
    const exited = (agent: Started) => agent.child.exitCode !== null || agent.child.signalCode !== null
    while (!live.every((agent) => isReady(agent) || exited(agent))) await sleep(100)
    for (const agent of live) agent.child.kill("SIGTERM")
    const exits = await Promise.all(live.map((agent) => agent.exit))
    for (const exit of exits) {
      if (exit.code !== 0) throw new Error(`an agent stopped with SIGTERM exited ${exit.code ?? exit.signal}:\n${exit.stderr.slice(-3000)}`)
    }
  } finally {
    for (const agent of live) if (agent.child.exitCode === null && agent.child.signalCode === null) agent.child.kill("SIGKILL")
  }
  return { kills, crashes, starts, millis: Date.now() - began }
}

export const readLineage = (dir: string): ReadonlyArray<LineageLine> => {
  let files: Array<string>
  try {
    files = readdirSync(dir)
  } catch {
    return []
  }
  return files.flatMap((file) =>
    readFileSync(join(dir, file), "utf8").split("\n").filter((line) => line !== "").flatMap((line) => {
      try {
        return [JSON.parse(line) as LineageLine]
      } catch {
        return [] // a line cut by SIGKILL mid-write
      }
    })
  )
}

/** Records whose done state the router has seen. */
export const doneIds = (lines: ReadonlyArray<LineageLine>): ReadonlySet<string> =>
  new Set(lines.filter((line) => line.k === "see" && line.step === DONE_STEP).map((line) => line.id))

export interface LineageReport {
  /** Records the router never saw done. */
  readonly notDone: ReadonlyArray<string>
  /**
   * Forked chains. A place is a record's chain and a step. The pipeline's code (router, and the
   * mutation it picks) works on a place through the messages delivered for it; each message body
   * names its lineage (the mutation run that made it). A place is FORKED when the code worked on
   * two or more lineages there, i.e. two different successors of the previous place were both
   * advanced (or both reached done). A chain is forked when any of its places is. Copies of one
   * body (one send delivered twice) are one lineage: if such copies both run, their successors
   * differ and the fork shows at the next place, the done step included.
   */
  readonly forkedChains: number
  readonly forkedPlaces: number
  readonly mutationRuns: number
  /** Mutation runs beyond one per place. */
  readonly duplicateRuns: number
}

export const analyseLineage = (lines: ReadonlyArray<LineageLine>, ids: ReadonlyArray<string>): LineageReport => {
  const seen = new Map<string, Set<string>>()
  const runsAt = new Set<string>()
  let mutationRuns = 0
  for (const line of lines) {
    const place = `${line.id}#${line.step}`
    if (line.k === "see") {
      const lineages = seen.get(place) ?? new Set<string>()
      lineages.add(line.from)
      seen.set(place, lineages)
    } else {
      mutationRuns++
      runsAt.add(place)
    }
  }
  const forkedPlaces = [...seen.entries()].filter(([, lineages]) => lineages.size > 1).map(([place]) => place)
  const done = doneIds(lines)
  return {
    notDone: ids.filter((id) => !done.has(id)),
    forkedChains: new Set(forkedPlaces.map((place) => place.slice(0, place.lastIndexOf("#")))).size,
    forkedPlaces: forkedPlaces.length,
    mutationRuns,
    duplicateRuns: mutationRuns - runsAt.size
  }
}

/** One message the queue accepted, as the independent record shows it. */
export interface SentMessage {
  readonly queue: string
  readonly messageId: string
  /** The body as sent: each mutation run makes a unique one, so equal bodies are one send delivered twice. */
  readonly body: string
  readonly recordId: string
  readonly traceId: string
  readonly step: number
}

export interface SendReport {
  readonly accepted: number
  /** Accepted messages beyond one per place (record, step): copies of every kind. */
  readonly copies: number
  /** Bodies accepted more than once. */
  readonly resentBodies: number
  /** Records with more than one trace id (a record produced twice gets a second chain). */
  readonly recordsWithSeveralTraces: number
  /** Records whose initial message was never accepted. */
  readonly neverProduced: ReadonlyArray<string>
}

export const analyseSends = (sent: ReadonlyArray<SentMessage>, ids: ReadonlyArray<string>): SendReport => {
  const places = new Set<string>()
  const bodies = new Map<string, number>()
  const traces = new Map<string, Set<string>>()
  for (const message of sent) {
    places.add(`${message.recordId}#${message.step}`)
    bodies.set(message.body, (bodies.get(message.body) ?? 0) + 1)
    const set = traces.get(message.recordId) ?? new Set<string>()
    set.add(message.traceId)
    traces.set(message.recordId, set)
  }
  const produced = new Set(sent.filter((message) => message.step === 0).map((message) => message.recordId))
  return {
    accepted: sent.length,
    copies: sent.length - places.size,
    resentBodies: [...bodies.values()].filter((count) => count > 1).length,
    recordsWithSeveralTraces: [...traces.values()].filter((set) => set.size > 1).length,
    neverProduced: ids.filter((id) => !produced.has(id))
  }
}

/** A message as the queue took it: body, and the pipeline's attributes (`pipeline.step`, `pipeline.trace_id`). */
export const sentMessage = (queue: string, messageId: string, body: string, attributes: Readonly<Record<string, string>>): SentMessage => {
  const record = JSON.parse(body) as { id: string; path: ReadonlyArray<string> }
  return {
    queue,
    messageId,
    body,
    recordId: record.id,
    traceId: attributes["pipeline.trace_id"] ?? "",
    step: Number(attributes["pipeline.step"])
  }
}

interface SqsEntry {
  readonly Id: string
  readonly MessageBody: string
  readonly MessageAttributes?: Record<string, { readonly StringValue?: string }>
}

const sendEntries = (entry: LogEntry): ReadonlyArray<SqsEntry> => {
  const body = entry.body as { Entries?: ReadonlyArray<SqsEntry>; MessageBody?: string; MessageAttributes?: SqsEntry["MessageAttributes"] }
  if (entry.action === "SendMessageBatch") return body.Entries ?? []
  if (entry.action === "SendMessage") return [{ Id: "single", MessageBody: body.MessageBody ?? "", ...(body.MessageAttributes ? { MessageAttributes: body.MessageAttributes } : {}) }]
  return []
}

/** The message id SQS gave each accepted entry of a forwarded send, by entry Id. */
const acceptedIds = (entry: LogEntry): ReadonlyMap<string, string> => {
  if (!entry.forwarded || entry.status !== 200) return new Map()
  const response = entry.response as { Successful?: ReadonlyArray<{ Id: string; MessageId: string }>; MessageId?: string }
  if (entry.action === "SendMessage") return new Map(response.MessageId !== undefined ? [["single", response.MessageId]] : [])
  return new Map((response.Successful ?? []).map((ok) => [ok.Id, ok.MessageId]))
}

const queueOf = (entry: LogEntry) => String((entry.body as { QueueUrl?: string }).QueueUrl ?? "")

/** Every message SQS accepted, from the proxy's log (whether or not the client heard of it). */
export const sqsSends = (log: ReadonlyArray<LogEntry>): ReadonlyArray<SentMessage> =>
  log.flatMap((entry) => {
    const accepted = acceptedIds(entry)
    return sendEntries(entry).flatMap((sqsEntry) => {
      const messageId = accepted.get(sqsEntry.Id)
      if (messageId === undefined) return []
      const attributes = Object.fromEntries(
        Object.entries(sqsEntry.MessageAttributes ?? {}).map(([name, value]) => [name, value.StringValue ?? ""])
      )
      return [sentMessage(queueOf(entry), messageId, sqsEntry.MessageBody, attributes)]
    })
  })

export interface ResendReport {
  /**
   * Bodies sent again after SQS had accepted them AND the client had received that answer: a send
   * our own retry made although it knew the message was through. (Sends again after an answer that
   * never reached the client are allowed: no client can tell those from a failure.)
   */
  readonly resentKnowingly: ReadonlyArray<{ readonly queue: string; readonly body: string }>
  /** Accepted sends whose answer the client never got, later sent again: the copies no client can avoid. */
  readonly resentAfterLostAnswer: number
}

export const sqsResends = (log: ReadonlyArray<LogEntry>): ResendReport => {
  interface Attempt {
    readonly receivedAt: number
    readonly answeredAt: number
    readonly accepted: boolean
    readonly delivered: boolean
  }
  const attempts = new Map<string, Array<Attempt>>()
  for (const entry of log) {
    const accepted = acceptedIds(entry)
    for (const sqsEntry of sendEntries(entry)) {
      const key = `${queueOf(entry)}\n${sqsEntry.MessageBody}`
      const list = attempts.get(key) ?? []
      list.push({
        receivedAt: entry.receivedAt,
        answeredAt: entry.answeredAt ?? Number.POSITIVE_INFINITY,
        accepted: accepted.has(sqsEntry.Id),
        delivered: entry.delivered
      })
      attempts.set(key, list)
    }
  }
  const resentKnowingly: Array<{ queue: string; body: string }> = []
  let resentAfterLostAnswer = 0
  for (const [key, list] of attempts) {
    const later = (first: Attempt) => list.some((other) => other !== first && other.receivedAt >= first.answeredAt)
    if (list.some((attempt) => attempt.accepted && attempt.delivered && later(attempt))) {
      const [queue, body] = key.split("\n") as [string, string]
      resentKnowingly.push({ queue, body })
    }
    if (list.some((attempt) => attempt.accepted && !attempt.delivered && later(attempt))) resentAfterLostAnswer++
  }
  return { resentKnowingly, resentAfterLostAnswer }
}
