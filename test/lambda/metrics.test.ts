import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { definePipeline, done, mutation } from "../../src/domain/Pipeline.ts"
import { makeHandler } from "../../src/lambda/runtime.ts"
import { emfLines, MetricsSink } from "../../src/lambda/metrics.ts"
import { CurrentPipeline } from "../../src/services/CurrentPipeline.ts"
import { EngineSettings } from "../../src/services/EngineSettings.ts"
import { MessageQueue } from "../../src/services/MessageQueue.ts"
import { ObjectStore } from "../../src/services/ObjectStore.ts"

// CloudWatch's units (the EMF specification refers to MetricDatum's Unit)
const UNITS = new Set([
  "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes", "Terabytes", "Bits", "Kilobits",
  "Megabits", "Gigabits", "Terabits", "Percent", "Count", "Bytes/Second", "Kilobytes/Second", "Megabytes/Second",
  "Gigabytes/Second", "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
  "Terabits/Second", "Count/Second", "None"
])

/**
 * The EMF specification's rules for one line: a JSON object whose `_aws` has a millisecond
 * `Timestamp` and `CloudWatchMetrics` directives (Namespace 1–255 characters, not only spaces;
 * `Dimensions` an array of dimension sets of at most 30 names, each a root member with a string
 * value; at most 100 `Metrics`, each a `Name` of 1–255 characters that is a root member holding a
 * number or an array of at most 100 numbers, and a valid `Unit` if any). Returns what breaks them.
 */
const emfProblems = (line: string): Array<string> => {
  const problems: Array<string> = []
  const doc = JSON.parse(line) as Record<string, unknown>
  const aws = doc["_aws"] as { Timestamp?: unknown; CloudWatchMetrics?: unknown } | undefined
  if (typeof aws !== "object" || aws === null) return ["no _aws object"]
  if (!Number.isInteger(aws.Timestamp) || (aws.Timestamp as number) < 1e12) problems.push("Timestamp is not epoch milliseconds")
  if (!Array.isArray(aws.CloudWatchMetrics) || aws.CloudWatchMetrics.length === 0) return [...problems, "no CloudWatchMetrics"]
  for (const directive of aws.CloudWatchMetrics as Array<Record<string, unknown>>) {
    const namespace = directive["Namespace"]
    if (typeof namespace !== "string" || namespace.length < 1 || namespace.length > 255 || !/\S/.test(namespace)) problems.push("bad Namespace")
    const dimensions = directive["Dimensions"]
    if (!Array.isArray(dimensions)) problems.push("Dimensions is not an array")
    for (const set of (dimensions ?? []) as Array<unknown>) {
      if (!Array.isArray(set) || set.length > 30) problems.push("a dimension set is not an array of at most 30")
      for (const name of set as Array<unknown>) if (typeof doc[name as string] !== "string") problems.push(`dimension ${String(name)} has no string value`)
    }
    const metrics = directive["Metrics"] as Array<{ Name?: unknown; Unit?: unknown }>
    if (!Array.isArray(metrics) || metrics.length > 100) problems.push("Metrics is not an array of at most 100")
    for (const metric of metrics ?? []) {
      const name = metric.Name
      if (typeof name !== "string" || name.length < 1 || name.length > 255) problems.push("bad metric Name")
      if (metric.Unit !== undefined && !UNITS.has(metric.Unit as string)) problems.push(`bad Unit ${String(metric.Unit)}`)
      const value = doc[name as string]
      const ok = typeof value === "number" || (Array.isArray(value) && value.length <= 100 && value.every((v) => typeof v === "number"))
      if (!ok) problems.push(`metric ${String(name)} has no number value`)
    }
  }
  return problems
}

const Job = Schema.Struct({ id: Schema.String, ran: Schema.optionalKey(Schema.Boolean) })
type Job = typeof Job.Type
const step = mutation<Job>("step", (job) => Effect.succeed({ ...job, ran: true }))
const jobs = definePipeline({
  name: "jobs",
  schema: Job,
  recordId: (job) => job.id,
  router: (job) => (job.ran === true ? done : step),
  initialRecord: (id) => ({ id }),
  layer: Layer.empty
})

const QUEUE = "https://sqs.test/000000000000/jobs"
const record = (messageId: string, body: string) => ({ messageId, receiptHandle: `rh-${messageId}`, body, attributes: { ApproximateReceiveCount: "1" } })

describe("EMF metrics", () => {
  it("a batch's lines follow the EMF specification", () => {
    const lines = emfLines("ns", 1_764_000_000_000, {
      pipeline: "jobs",
      records: 3,
      counts: { advanced: 1, done: 1, deadLettered: 1, retried: 0, duplicates: 0 },
      deadLetteredBy: new Map([["MalformedBody", 1]]),
      steps: new Map([["step", [1.25, 2.5]]]),
      batchMillis: 12.3456
    })
    assert.lengthOf(lines, 3)
    for (const line of lines) {
      assert.notInclude(line, "\n")
      assert.deepStrictEqual(emfProblems(line), [], line)
    }
    const step = JSON.parse(lines[1]!)
    assert.deepStrictEqual(step._aws.CloudWatchMetrics[0].Dimensions, [["Pipeline", "Step"]])
    assert.deepStrictEqual([step.Pipeline, step.Step, step.StepRecords, step.StepDuration], ["jobs", "step", 2, [1.25, 2.5]])
  })

  it("the handler writes the figures of each batch: records, outcomes, runs per step with their durations, dead letters by reason", async () => {
    const written: Array<string> = []
    const handler = makeHandler(
      CurrentPipeline.layerOf(jobs),
      Layer.mergeAll(
        MessageQueue.layerMemory({ [QUEUE]: { deadLetterQueueUrl: `${QUEUE}-dlq` } }),
        ObjectStore.layerMemory,
        EngineSettings.layerWith({ queueUrl: QUEUE }),
        Layer.succeed(MetricsSink, MetricsSink.of({ namespace: "test-ns", write: (lines) => void written.push(...lines) }))
      )
    )
    await handler({
      Records: [
        record("a", `{"id":"a"}`),
        record("b", `{"id":"b"}`),
        record("c", "not json"),
        record("d", `{"id":"d","ran":true}`)
      ]
    })
    const docs = written.map((line) => JSON.parse(line) as Record<string, unknown>)
    for (const line of written) assert.deepStrictEqual(emfProblems(line), [], line)
    const [batch, steps, reasons] = docs
    assert.strictEqual((batch!["_aws"] as { CloudWatchMetrics: Array<{ Namespace: string }> }).CloudWatchMetrics[0]!.Namespace, "test-ns")
    assert.deepInclude(batch, { Pipeline: "jobs", Records: 4, Advanced: 2, Done: 1, DeadLettered: 1, Retried: 0, DuplicatesSkipped: 0 })
    assert.isAbove(batch!["BatchDuration"] as number, 0)
    assert.deepInclude(steps, { Pipeline: "jobs", Step: "step", StepRecords: 2 })
    assert.lengthOf(steps!["StepDuration"] as Array<number>, 2)
    assert.deepInclude(reasons, { Pipeline: "jobs", Reason: "MalformedBody", DeadLettered: 1 })
    assert.lengthOf(docs, 3)
  })
})
