/**
 * The producer on a faulty link, fault by fault (moto through the fault proxy): a chunk whose
 * request fails, even past the SDK's own retries, is the only one sent again; a chunk whose answer
 * is lost may arrive twice (no client can tell), nothing else does. Judged from the proxy's log.
 */
import "../support/awsEnv.ts"
import { assert, describe, it } from "@effect/vitest"
import { createQueue } from "../support/aws.ts"
import { type Fault, type ProxyRequest, startFaultProxy } from "../support/faultProxy.ts"
import { analyseSends, PIPELINE, recordIds, sqsResends, sqsSends, startCli } from "./harness.ts"

const RECORDS = 50

/** The first `times` SendMessageBatch requests carrying `recordId` get `fault`; everything else goes through. */
const faultOnRecord = (recordId: string, fault: Fault, times: number) => {
  let left = times
  return (request: ProxyRequest): Fault => {
    if (request.action !== "SendMessageBatch" || left === 0) return { _tag: "None" }
    const entries = (request.body as { Entries?: ReadonlyArray<{ MessageBody: string }> }).Entries ?? []
    if (!entries.some((entry) => (JSON.parse(entry.MessageBody) as { id: string }).id === recordId)) return { _tag: "None" }
    left--
    return fault
  }
}

const produceThrough = async (decide: (request: ProxyRequest) => Fault) => {
  const queue = await createQueue()
  const proxy = await startFaultProxy({ target: process.env["AWS_ENDPOINT_URL"]!, decide })
  try {
    const result = await startCli(["produce", ...PIPELINE, ...recordIds(RECORDS)], {
      PIPELINE_QUEUE_URL: queue.queueUrl,
      AWS_ENDPOINT_URL_SQS: proxy.endpoint
    }).exit
    return { result, log: proxy.log, sends: analyseSends(sqsSends(proxy.log), recordIds(RECORDS)), resends: sqsResends(proxy.log) }
  } finally {
    await proxy.close()
  }
}

describe("producer on a faulty link", { timeout: 30_000 }, () => {
  it("one chunk fails past the SDK's retries (four 500s): only that chunk is sent again, each record accepted once", async () => {
    const { result, log, sends, resends } = await produceThrough(faultOnRecord("rec-25", { _tag: "Error500" }, 4))
    assert.strictEqual(result.code, 0, result.stderr)
    assert.include(result.stdout, `sent ${RECORDS} records`)
    assert.strictEqual(log.filter((entry) => entry.fault === "Error500").length, 4, "the fault happened")
    assert.deepStrictEqual(resends.resentKnowingly, [], "no chunk that went through was sent again")
    assert.strictEqual(sends.accepted, RECORDS, "each record accepted exactly once")
    assert.deepStrictEqual(sends.neverProduced, [])
  })

  it("one chunk's answer is lost after SQS took it: that chunk arrives twice, no other", async () => {
    const { result, sends, resends } = await produceThrough(faultOnRecord("rec-25", { _tag: "DropAfter" }, 1))
    assert.strictEqual(result.code, 0, result.stderr)
    assert.include(result.stdout, `sent ${RECORDS} records`)
    assert.deepStrictEqual(resends.resentKnowingly, [])
    assert.strictEqual(resends.resentAfterLostAnswer, 10, "the ten records of the chunk whose answer was lost")
    assert.strictEqual(sends.accepted, RECORDS + 10)
    assert.strictEqual(sends.recordsWithSeveralTraces, 0, "the copies are of the same chain")
  })
})
