/**
 * The fault proxy (test/support/faultProxy.ts) as a latency proxy in a process of its own, so its
 * CPU is not taken from the consumers being measured, and can be measured apart.
 *
 * `startLatencyProxy(target, [low, high])` forks this file; every request is forwarded after a
 * delay drawn uniformly from [low, high) ms (seeded), no faults. The child counts requests by
 * action (`SendMessageBatch`, ...) and times the server's answers (from the request read to the
 * answer handed over, less the delay added: the server's own time, ms resolution); `take()` returns
 * both since the last take.
 */
import { fork } from "node:child_process"
import { randomFaults, startFaultProxy } from "../test/support/faultProxy.ts"

type Counts = Record<string, number>

export interface Taken {
  readonly counts: Counts
  /** The server's time for each answered request except receives (a long poll waits), ms, sorted. */
  readonly serverMillis: ReadonlyArray<number>
}

export interface LatencyProxy {
  readonly endpoint: string
  readonly pid: number
  /** Requests by action and the server's times since the last call. */
  readonly take: () => Promise<Taken>
  readonly stop: () => Promise<void>
}

export const startLatencyProxy = (target: string, millis: readonly [number, number]): Promise<LatencyProxy> =>
  new Promise((resolve, reject) => {
    const child = fork(import.meta.filename, [target, String(millis[0]), String(millis[1])], { stdio: ["ignore", "inherit", "inherit", "ipc"] })
    const waiting: Array<(taken: Taken) => void> = []
    child.once("error", reject)
    child.once("exit", (code) => reject(new Error(`latency proxy exited with ${code}`)))
    child.on("message", (message: { endpoint?: string; taken?: Taken }) => {
      if (message.taken !== undefined) waiting.shift()?.(message.taken)
      if (message.endpoint === undefined) return
      resolve({
        endpoint: message.endpoint,
        pid: child.pid!,
        take: () =>
          new Promise((resolveCounts) => {
            waiting.push(resolveCounts)
            child.send("take")
          }),
        stop: () =>
          new Promise((resolveStop) => {
            if (child.exitCode !== null) return resolveStop()
            child.removeAllListeners("exit")
            child.once("exit", () => resolveStop())
            child.kill("SIGTERM")
          })
      })
    })
  })

// --- the child ------------------------------------------------------------------------------------
if (import.meta.main && process.send !== undefined) {
  const [target, low, high] = process.argv.slice(2) as [string, string, string]
  const latency = randomFaults(14, { error500: 0, dropBefore: 0, dropAfter: 0, latency: 1, latencyMillis: [Number(low), Number(high)] })
  let counts: Counts = {}
  const added = new Map<number, number>()
  const proxy = await startFaultProxy({
    target,
    decide: (request) => {
      counts[request.action] = (counts[request.action] ?? 0) + 1
      const fault = latency(request)
      if (fault._tag === "Latency") added.set(request.seq, fault.millis)
      return fault
    }
  })
  process.on("message", () => {
    const log = proxy.log as Array<(typeof proxy.log)[number]>
    // requests still in flight stay for the next take
    const answered = log.filter((entry) => entry.answeredAt !== undefined)
    const serverMillis = answered
      .filter((entry) => entry.action !== "ReceiveMessage")
      .map((entry) => entry.answeredAt! - entry.receivedAt - (added.get(entry.seq) ?? 0))
      .sort((a, b) => a - b)
    for (const entry of answered) added.delete(entry.seq)
    const pending = log.filter((entry) => entry.answeredAt === undefined)
    log.length = 0
    log.push(...pending)
    process.send?.({ taken: { counts, serverMillis } })
    counts = {}
  })
  process.on("disconnect", () => void proxy.close().then(() => process.exit(0)))
  process.send({ endpoint: proxy.endpoint })
}
