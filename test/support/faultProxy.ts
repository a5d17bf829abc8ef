/**
 * A fault-injecting HTTP proxy for AWS JSON-protocol services (SQS, DynamoDB) in front of moto.
 *
 * Point a client at it as its endpoint (`AWS_ENDPOINT_URL_SQS` / `AWS_ENDPOINT_URL_DYNAMODB`).
 * Each request is read whole, then `decide` picks what happens to it:
 * - `Error500`: an AWS JSON error (`InternalFailure`) is answered, nothing is forwarded;
 * - `DropBefore`: the connection is cut before anything is forwarded;
 * - `DropAfter`: forwarded, moto answers, the connection is cut: the server took the request,
 *   the client never hears of it;
 * - `Latency`: forwarded after a delay.
 *
 * The log holds every request with moto's answer and whether the client got it: an independent
 * record of what was sent, for tests that must not trust the project's own counters.
 */
import { Agent, createServer, type IncomingHttpHeaders, request as httpRequest } from "node:http"
import type { AddressInfo } from "node:net"

export type Fault =
  | { readonly _tag: "None" }
  | { readonly _tag: "Error500" }
  | { readonly _tag: "DropBefore" }
  | { readonly _tag: "DropAfter" }
  | { readonly _tag: "Latency"; readonly millis: number }

export interface ProxyRequest {
  /** The request's number, from 0, in arrival order. */
  readonly seq: number
  /** `AmazonSQS`, `DynamoDB_20120810`, ... (from `X-Amz-Target`); empty for other protocols. */
  readonly service: string
  /** `SendMessageBatch`, `PutItem`, ...; `METHOD /path` for requests without `X-Amz-Target`. */
  readonly action: string
  /** The body, parsed when it is JSON. */
  readonly body: unknown
}

export interface LogEntry extends ProxyRequest {
  readonly fault: Fault["_tag"]
  /** Sent on to moto. */
  forwarded: boolean
  /** moto's answer (or the injected error's), parsed when it is JSON. */
  status?: number
  response?: unknown
  /** The whole answer was handed to the client's connection. */
  delivered: boolean
  /** Wall-clock milliseconds: request read, answer handed over (or cut). */
  readonly receivedAt: number
  answeredAt?: number
}

export interface FaultProxy {
  /** `http://127.0.0.1:PORT` */
  readonly endpoint: string
  readonly log: ReadonlyArray<LogEntry>
  readonly close: () => Promise<void>
}

const parse = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const readAll = (stream: NodeJS.ReadableStream): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    stream.on("data", (chunk: Buffer) => chunks.push(chunk))
    stream.on("end", () => resolve(Buffer.concat(chunks)))
    stream.on("error", reject)
  })

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "content-length", "host"])

const forwardHeaders = (headers: IncomingHttpHeaders): Record<string, string | Array<string>> => {
  const out: Record<string, string | Array<string>> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value
  }
  return out
}

const INJECTED = JSON.stringify({ __type: "InternalFailure", message: "injected" })

export const startFaultProxy = async (options: {
  /** moto's endpoint, `http://host:port`. */
  readonly target: string
  readonly decide: (request: ProxyRequest) => Fault
  /** Listen on this port (default: any free one). */
  readonly port?: number
}): Promise<FaultProxy> => {
  const target = new URL(options.target)
  const agent = new Agent({ keepAlive: true, maxSockets: 64 })
  const log: Array<LogEntry> = []
  let seq = 0

  const forward = (method: string, path: string, headers: IncomingHttpHeaders, body: Buffer) =>
    new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const outgoing = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method,
          path,
          agent,
          headers: { ...forwardHeaders(headers), host: target.host, "content-length": String(body.length) }
        },
        (response) => readAll(response).then((data) => resolve({ status: response.statusCode ?? 502, headers: response.headers, body: data }), reject)
      )
      outgoing.on("error", reject)
      outgoing.end(body)
    })

  const server = createServer((req, res) => {
    void (async () => {
      const body = await readAll(req)
      const targetHeader = String(req.headers["x-amz-target"] ?? "")
      const dot = targetHeader.lastIndexOf(".")
      const request: ProxyRequest = {
        seq: seq++,
        service: dot > 0 ? targetHeader.slice(0, dot) : "",
        action: dot > 0 ? targetHeader.slice(dot + 1) : `${req.method} ${req.url}`,
        body: parse(body.toString("utf8"))
      }
      const fault = options.decide(request)
      const entry: LogEntry = { ...request, fault: fault._tag, forwarded: false, delivered: false, receivedAt: Date.now() }
      log.push(entry)
      const cut = () => {
        entry.answeredAt = Date.now()
        req.socket.destroy()
      }
      const answer = (status: number, headers: Record<string, string | Array<string>>, data: Buffer) => {
        res.on("finish", () => {
          entry.delivered = true
          entry.answeredAt = Date.now()
        })
        res.writeHead(status, { ...headers, "content-length": String(data.length) })
        res.end(data)
      }
      if (fault._tag === "DropBefore") return cut()
      if (fault._tag === "Error500") {
        entry.status = 500
        entry.response = JSON.parse(INJECTED)
        const contentType = String(req.headers["content-type"] ?? "application/x-amz-json-1.0")
        return answer(500, { "content-type": contentType, "x-amzn-requestid": `injected-${request.seq}` }, Buffer.from(INJECTED))
      }
      if (fault._tag === "Latency") await new Promise((resolve) => setTimeout(resolve, fault.millis))
      const upstream = await forward(req.method ?? "POST", req.url ?? "/", req.headers, body)
      entry.forwarded = true
      entry.status = upstream.status
      entry.response = parse(upstream.body.toString("utf8"))
      if (fault._tag === "DropAfter") return cut()
      answer(upstream.status, forwardHeaders(upstream.headers), upstream.body)
    })().catch(() => {
      // moto unreachable or the client gone: the client sees its connection cut
      req.socket.destroy()
    })
  })

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve())
  })
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    log,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
        agent.destroy()
      })
  }
}

/** A small seeded generator (mulberry32): the same seed gives the same sequence of numbers in [0, 1). */
export const seededRandom = (seed: number): (() => number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface FaultRates {
  readonly error500: number
  readonly dropBefore: number
  readonly dropAfter: number
  readonly latency: number
  /** Latency added, uniformly between these (ms). */
  readonly latencyMillis?: readonly [number, number]
  /** Only requests this accepts get faults (default: all). */
  readonly applies?: (request: ProxyRequest) => boolean
}

/** A `decide` that gives each request one fault kind with the given probabilities, from a seeded sequence. */
export const randomFaults = (seed: number, rates: FaultRates): ((request: ProxyRequest) => Fault) => {
  const random = seededRandom(seed)
  const [low, high] = rates.latencyMillis ?? [50, 500]
  return (request) => {
    const roll = random()
    const millis = low + Math.floor(random() * (high - low))
    if (rates.applies !== undefined && !rates.applies(request)) return { _tag: "None" }
    let edge = rates.error500
    if (roll < edge) return { _tag: "Error500" }
    if (roll < (edge += rates.dropBefore)) return { _tag: "DropBefore" }
    if (roll < (edge += rates.dropAfter)) return { _tag: "DropAfter" }
    if (roll < (edge += rates.latency)) return { _tag: "Latency", millis }
    return { _tag: "None" }
  }
}
