/**
 * Shared pieces of the thumbnail tests: the cached sample set, an HTTP server whose routes each
 * test scripts, a decompression bomb, config and engine helpers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { deflateSync } from "node:zlib"
import { ConfigProvider, Effect, type Scope } from "effect"
import type { AnyPipeline } from "../../src/domain/Pipeline.ts"
import { acknowledge, type Outcome, processBatch } from "../../src/programs/engine.ts"
import { makeSampleImages } from "../../src/pipelines/thumbnails/sampleImages.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"

export const QUEUE = "https://sqs.test/000000000000/thumbnails"
export const DLQ = "https://sqs.test/000000000000/thumbnails-dlq"

/** The sample set, made once per machine (cached by its manifest) in the temp folder. */
export const sampleSet = (count = 12) => makeSampleImages(join(tmpdir(), `pipeline-test-samples-${count}`), { count })

export const configLayer = (values: Record<string, string>) => ConfigProvider.layer(ConfigProvider.fromUnknown(values))

export type Handler = (request: IncomingMessage, response: ServerResponse) => void

export interface ScriptedServer {
  readonly port: number
  /** `http://127.0.0.1:<port>` */
  readonly baseUrl: string
  /** The same server under another host name: `http://localhost:<port>` */
  readonly otherHostUrl: string
  /** Sets what a path answers. */
  route(path: string, handler: Handler): void
  /** Requests received per path, with the Host header they came with. */
  readonly hits: Array<{ readonly path: string; readonly host: string }>
}

/** An HTTP server on 127.0.0.1 whose every path is scripted by the test (404 otherwise). */
export const scriptedServer: Effect.Effect<ScriptedServer, never, Scope.Scope> = Effect.acquireRelease(
  Effect.promise(() =>
    new Promise<{ server: Server; routes: Map<string, Handler>; hits: ScriptedServer["hits"] }>((resolve) => {
      const routes = new Map<string, Handler>()
      const hits: ScriptedServer["hits"] = []
      const server = createServer((request, response) => {
        const path = new URL(request.url ?? "/", "http://x").pathname
        hits.push({ path, host: request.headers.host ?? "" })
        const handler = routes.get(path)
        if (handler === undefined) response.writeHead(404).end("no route")
        else handler(request, response)
      })
      server.listen(0, "127.0.0.1", () => resolve({ server, routes, hits }))
    })
  ),
  ({ server }) =>
    Effect.callback<void>((resume) => {
      server.close(() => resume(Effect.void))
      server.closeAllConnections()
    })
).pipe(Effect.map(({ hits, routes, server }) => {
  const { port } = server.address() as AddressInfo
  return {
    port,
    baseUrl: `http://127.0.0.1:${port}`,
    otherHostUrl: `http://localhost:${port}`,
    route: (path, handler) => void routes.set(path, handler),
    hits
  }
}))

export const sendBytes = (bytes: Uint8Array, contentType = "image/jpeg"): Handler => (_request, response) => {
  response.writeHead(200, { "content-type": contentType, "content-length": bytes.byteLength }).end(bytes)
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
const crc32 = (bytes: Uint8Array) => {
  let crc = 0xffffffff
  for (const byte of bytes) crc = crcTable[(crc ^ byte) & 0xff]! ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}
const pngChunk = (type: string, data: Uint8Array) => {
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const body = Buffer.concat([Buffer.from(type, "latin1"), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([length, body, crc])
}

/**
 * A real, valid grayscale PNG of `size`x`size` black pixels: a few hundred kilobytes that decode
 * to `size²` bytes (10000 → 100 MP, 100 MB of pixels).
 */
export const decompressionBomb = (size = 10_000): Buffer => {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(size, 0)
  header.writeUInt32BE(size, 4)
  header[8] = 8 // bit depth
  header[9] = 0 // grayscale
  const rows = Buffer.alloc((size + 1) * size) // filter byte 0 and zeros, row after row
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk("IHDR", header),
    pngChunk("IDAT", deflateSync(rows, { level: 9 })),
    pngChunk("IEND", new Uint8Array(0))
  ])
}

/** Sends records as an agent's producer would, one message each. */
export const seed = (records: ReadonlyArray<unknown>) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    for (const [index, record] of records.entries()) {
      yield* queue.send(QUEUE, [{ id: `s${index}`, body: JSON.stringify(record) }])
    }
  })

/** Receive, process, acknowledge until the queue is empty; every outcome, in order. */
export const drain = (pipeline: AnyPipeline, maxPasses = 100) =>
  Effect.gen(function*() {
    const queue = yield* MessageQueue
    const process = processBatch(pipeline)
    const outcomes: Array<Outcome> = []
    for (let pass = 0; pass < maxPasses; pass++) {
      const messages = yield* queue.receive(QUEUE, { maxMessages: 10 })
      if (messages.length === 0) return outcomes
      const batch = yield* process(messages)
      yield* acknowledge(QUEUE, batch)
      outcomes.push(...batch)
    }
    return outcomes
  })
