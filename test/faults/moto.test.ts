/**
 * Fault suite on moto's SQS (and DynamoDB for the ledger), through a fault-injecting proxy: a few
 * hundred three-step records produced over a faulty link, then agents (the real CLI, child
 * processes) killed with SIGKILL at random and restarted until every record is done.
 *
 * Everything asserted comes from independent records: the proxy's log of what SQS accepted and
 * whether the client heard the answer, and the lineage log the test pipeline writes
 * (test/support/pipelines/lineage.ts); see harness.ts for the definitions.
 *
 * Environment: `PIPELINE_LEDGER=off` runs without the transition ledger and only reports forks
 * and duplicate runs (the no-fork assertions need the ledger). `FAULT_RECORDS` (default 30: moto answers slowly on a busy 2-core machine, ~200 ms a PutItem, ~1 s a ReceiveMessage; 150 records took 3 minutes),
 * `FAULT_SEED` (default 11) and `FAULT_RATE` (each fault kind's probability, default 0.05)
 * change the run.
 */
import "../support/awsEnv.ts"
import { CreateTableCommand, DynamoDBClient } from "@aws-sdk/client-dynamodb"
import { GetQueueAttributesCommand, SQSClient } from "@aws-sdk/client-sqs"
import { assert, describe, it } from "@effect/vitest"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll } from "vitest"
import { createQueue, uniqueName } from "../support/aws.ts"
import { type FaultProxy, randomFaults, seededRandom, startFaultProxy } from "../support/faultProxy.ts"
import {
  analyseLineage,
  analyseSends,
  doneIds,
  ledgerOn,
  PIPELINE,
  readLineage,
  recordIds,
  runAgentsWithKills,
  sqsResends,
  sqsSends,
  startCli
} from "./harness.ts"

const RECORDS = Number(process.env["FAULT_RECORDS"] ?? 30)
const SEED = Number(process.env["FAULT_SEED"] ?? 11)
const RATE = Number(process.env["FAULT_RATE"] ?? 0.05)
/** Time for the agents to finish; the test's own timeout is this plus a minute's margin when raised. */
const AGENTS_MS = Number(process.env["FAULT_AGENTS_MS"] ?? 40_000)

const sqs = new SQSClient({ useQueueUrlAsEndpoint: false })
const dynamo = new DynamoDBClient({})
const dirs: Array<string> = []
const proxies: Array<FaultProxy> = []
afterAll(async () => {
  await Promise.all(proxies.map((proxy) => proxy.close()))
  sqs.destroy()
  dynamo.destroy()
  if (process.env["FAULT_KEEP"] === undefined) for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

/** The ledger's table as the DynamoDB layer expects it (src/services/DynamoLedger.ts). */
const createLedgerTable = async (): Promise<string> => {
  const name = uniqueName("ledger")
  await dynamo.send(
    new CreateTableCommand({
      TableName: name,
      BillingMode: "PAY_PER_REQUEST",
      AttributeDefinitions: [{ AttributeName: "traceId", AttributeType: "S" }, { AttributeName: "step", AttributeType: "N" }],
      KeySchema: [{ AttributeName: "traceId", KeyType: "HASH" }, { AttributeName: "step", KeyType: "RANGE" }]
    })
  )
  return name
}

/** Counts read from moto directly, not through the proxy. */
const messagesIn = async (queueUrl: string) => {
  const { Attributes = {} } = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["All"] }))
  return (["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"] as const)
    .reduce((sum, name) => sum + Number(Attributes[name] ?? 0), 0)
}

describe("fault suite on moto through a faulty proxy", () => {
  it(`${RECORDS} records, ${RATE * 100}% of each fault on SQS and DynamoDB calls, agents killed at random: 0 lost, 0 forked, nothing resent knowingly`, { timeout: Math.max(60_000, AGENTS_MS + 20_000) }, async () => {
    const queue = await createQueue({ maxReceiveCount: 50, visibilityTimeout: 4 })
    const table = ledgerOn ? await createLedgerTable() : undefined
    const proxy = await startFaultProxy({
      target: process.env["AWS_ENDPOINT_URL"]!,
      decide: randomFaults(SEED, { error500: RATE, dropBefore: RATE, dropAfter: RATE, latency: RATE, latencyMillis: [50, 400] })
    })
    proxies.push(proxy)
    const dir = mkdtempSync(join(tmpdir(), "faults-moto-"))
    dirs.push(dir)
    const lineageDir = join(dir, "lineage")
    mkdirSync(lineageDir)
    const env: Record<string, string> = {
      PIPELINE_QUEUE_URL: queue.queueUrl,
      PIPELINE_DATA_DIR: dir,
      AWS_ENDPOINT_URL_SQS: proxy.endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: proxy.endpoint,
      LINEAGE_LOG_DIR: lineageDir,
      ...(table === undefined ? { PIPELINE_LEDGER: "off" } : { PIPELINE_LEDGER_TABLE: table })
    }
    const ids = recordIds(RECORDS)

    const producing = Date.now()
    const produced = await startCli(["produce", ...PIPELINE, ...ids], env).exit
    const producedIn = Date.now() - producing
    assert.strictEqual(produced.code, 0, produced.stderr)
    assert.include(produced.stdout, `sent ${RECORDS} records`)

    // FAULT_KEEP=1 keeps the folder, with the proxy's log in it, for a look after the run
    const keepLog = () => process.env["FAULT_KEEP"] !== undefined && writeFileSync(join(dir, "proxy-log.json"), JSON.stringify(proxy.log))
    const chaos = await runAgentsWithKills({
      start: () => startCli(["agent", ...PIPELINE, "--concurrency", "10"], env),
      agents: 2,
      random: seededRandom(SEED + 1),
      sends: () => proxy.log.filter((entry) => entry.action === "SendMessageBatch" && entry.forwarded).length,
      killEvery: [2, 5],
      lineageDir,
      finished: async () => doneIds(readLineage(lineageDir)).size === RECORDS && (await messagesIn(queue.queueUrl)) === 0,
      timeoutMs: AGENTS_MS,
      status: async () => {
        keepLog()
        return `${dir}: ${doneIds(readLineage(lineageDir)).size} of ${RECORDS} done, ${readLineage(lineageDir).filter((line) => line.k === "run").length} runs, ${await messagesIn(queue.queueUrl)} messages in the queue, produced in ${producedIn} ms, ${proxy.log.length} requests: ${JSON.stringify(Object.fromEntries(Object.entries(Object.groupBy(proxy.log, (entry) => `${entry.action} ${entry.fault} ${entry.status}`)).map(([key, list]) => [key, list?.length])))}`
      }
    })
    await proxy.close()
    keepLog()

    const lineage = analyseLineage(readLineage(lineageDir), ids)
    const sent = sqsSends(proxy.log)
    const main = analyseSends(sent.filter((message) => message.queue === queue.queueUrl), ids)
    const deadLettered = sent.filter((message) => message.queue === queue.dlqUrl).length
    const resends = sqsResends(proxy.log)
    const faults = Object.groupBy(proxy.log, (entry) => entry.fault)
    console.log(`fault suite, moto, ledger ${ledgerOn ? "on" : "off"}: ${JSON.stringify({
      records: RECORDS,
      seed: SEED,
      ...chaos,
      crashes: chaos.crashes.length,
      requests: Object.fromEntries(Object.entries(Object.groupBy(proxy.log, (entry) => entry.service)).map(([service, list]) => [service, list?.length ?? 0])),
      // moto's answer time per action (ms, mean), where the client got it
      motoMillis: Object.fromEntries(Object.entries(Object.groupBy(proxy.log.filter((entry) => entry.delivered && entry.fault === "None"), (entry) => entry.action))
        .map(([action, list = []]) => [action, Math.round(list.reduce((sum, entry) => sum + (entry.answeredAt ?? entry.receivedAt) - entry.receivedAt, 0) / list.length)])),
      faults: Object.fromEntries(Object.entries(faults).map(([fault, list]) => [fault, list?.length ?? 0])),
      lost: lineage.notDone.length,
      deadLettered,
      forkedChains: lineage.forkedChains,
      forkedPlaces: lineage.forkedPlaces,
      mutationRuns: lineage.mutationRuns,
      duplicateRuns: lineage.duplicateRuns,
      accepted: main.accepted,
      copies: main.copies,
      resentAfterLostAnswer: resends.resentAfterLostAnswer,
      resentKnowingly: resends.resentKnowingly.length,
      producerResentKnowingly: resends.resentKnowingly.filter((resend) => JSON.parse(resend.body).path.length === 0).length
    })}`)

    assert.deepStrictEqual(lineage.notDone, [], "every record reached done")
    assert.strictEqual(deadLettered, 0, "nothing dead-lettered")
    assert.deepStrictEqual(main.neverProduced, [], "every record was produced")
    assert.strictEqual(main.recordsWithSeveralTraces, 0, "one chain per record: the producer ran once")
    assert.deepStrictEqual(resends.resentKnowingly.slice(0, 3), [], "no send repeated after its success reached the client")
    assert.isAbove(chaos.kills, 0)
    assert.deepStrictEqual(chaos.crashes, [], "no agent exited on its own")
    if (ledgerOn) {
      assert.isAbove(main.copies, 0, "the faults made copies, so the ledger was put to the test")
      assert.strictEqual(lineage.forkedChains, 0, "no chain forked: copies never advanced")
    }
  })
})
