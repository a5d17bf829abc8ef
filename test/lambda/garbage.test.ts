/**
 * The garbage a batch leaves in Buffers (a raw image read or stored) is collected before the
 * handler answers, when the process has `--expose-gc`; and an S3 body read scavenges the chunks
 * it copied every few MB. Both through a stand-in for `gc`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Layer } from "effect"
import { afterEach, beforeEach } from "vitest"
import { collectBatchGarbage, makeHandler } from "../../src/lambda/handler.ts"
import { greetingPipeline } from "../../src/pipelines/greeting.ts"
import { scavenging, SCAVENGE_EVERY_BYTES } from "../../src/services/objectStore/s3.ts"
import { CurrentPipeline } from "../../src/services/CurrentPipeline.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"

const MB = 1024 * 1024
const global = globalThis as { gc?: unknown }
let calls: Array<unknown> = []
let exposed: unknown

beforeEach(() => {
  exposed = global.gc
  calls = []
  global.gc = (options?: unknown) => calls.push(options ?? "full")
})
afterEach(() => {
  if (exposed === undefined) delete global.gc
  else global.gc = exposed
})

describe("collectBatchGarbage", () => {
  it("collects when Buffers of the threshold or more are held, not below it", () => {
    const held = Buffer.alloc(2 * MB, 1)
    collectBatchGarbage(process.memoryUsage().arrayBuffers + 64 * MB)
    assert.deepStrictEqual(calls, [])
    collectBatchGarbage(held.byteLength)
    assert.deepStrictEqual(calls, ["full"])
  })

  it("does nothing without --expose-gc", () => {
    delete global.gc
    collectBatchGarbage(0)
    assert.deepStrictEqual(calls, [])
  })

  it("runs after each invocation of the handler", async () => {
    const queue = "https://sqs.test/000000000000/work"
    const handler = makeHandler(
      CurrentPipeline.layerOf(greetingPipeline),
      Layer.mergeAll(MessageQueue.layerMemory({ [queue]: {} }), ObjectStore.layerMemory, EngineSettings.layerWith({ queueUrl: queue }))
    )
    // a batch that leaves 9 MB of Buffers behind
    const held = Buffer.alloc(9 * MB, 1)
    await handler({ Records: [] })
    assert.deepStrictEqual(calls, ["full"])
    assert.strictEqual(held[0], 1)
    await handler.runtime.dispose()
  })
})

describe("scavenging", () => {
  const chunks = async function*(count: number, size: number) {
    for (let i = 0; i < count; i++) yield new Uint8Array(size).fill(i)
  }
  const read = async (body: AsyncIterable<Uint8Array>) => {
    const seen: Array<number> = []
    for await (const chunk of body) seen.push(chunk[0]!, chunk.byteLength)
    return seen
  }

  it("yields the same chunks, scavenging the young generation every few MB and after the last", async () => {
    const count = (2 * SCAVENGE_EVERY_BYTES) / MB + 1
    assert.deepStrictEqual(await read(scavenging(chunks(count, MB))), await read(chunks(count, MB)))
    assert.deepStrictEqual(calls, [{ type: "minor" }, { type: "minor" }, { type: "minor" }])
  })

  it("does not scavenge again after a last chunk that ended a stretch", async () => {
    const count = SCAVENGE_EVERY_BYTES / MB
    await read(scavenging(chunks(count, MB)))
    assert.deepStrictEqual(calls, [{ type: "minor" }])
  })

  it("yields the same chunks without --expose-gc", async () => {
    delete global.gc
    assert.deepStrictEqual(await read(scavenging(chunks(9, MB))), await read(chunks(9, MB)))
  })
})
