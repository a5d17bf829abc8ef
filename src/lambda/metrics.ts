/**
 * Metrics per batch in CloudWatch's Embedded Metric Format: JSON lines on stdout that CloudWatch
 * Logs turns into metrics as it ingests them, with no API call from the function
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
 * Written to stdout itself rather than through `console`, so that Lambda's JSON log format does not
 * wrap them (a wrapped line is not EMF) and no application log level drops them.
 *
 * Per batch, under `PIPELINE_METRICS_NAMESPACE` (default `sqs-state-pipeline`), dimension `Pipeline`:
 * - `Records`, `Advanced`, `Done`, `DeadLettered`, `Retried`, `DuplicatesSkipped` (Count) and `BatchDuration` (Milliseconds);
 * - per step (dimensions `Pipeline`, `Step`): `StepRecords` (Count), `StepDuration` (Milliseconds, one value a run);
 * - per dead-letter reason (dimensions `Pipeline`, `Reason`): `DeadLettered` (Count).
 */
import { Config, Context, Effect, Layer, Option } from "effect"
import type { OutcomeCounts } from "../services/BatchRunner.ts"
import { setting } from "../services/settings.ts"

/** A batch's figures as its EMF lines say them. */
export interface BatchMetrics {
  readonly pipeline: string
  readonly records: number
  readonly counts: OutcomeCounts
  /** Dead letters of this batch by reason (the error's tag). */
  readonly deadLetteredBy: ReadonlyMap<string, number>
  readonly steps: ReadonlyMap<string, ReadonlyArray<number>>
  readonly batchMillis: number
}

/** EMF takes at most 100 values a metric; more runs of one step in a batch than that are cut. */
const MAX_VALUES = 100
const round = (millis: number) => Math.round(millis * 1000) / 1000

const document = (
  namespace: string,
  timestamp: number,
  dimensions: Record<string, string>,
  metrics: ReadonlyArray<readonly [name: string, unit: "Count" | "Milliseconds", value: number | ReadonlyArray<number>]>
): string =>
  JSON.stringify({
    _aws: {
      Timestamp: timestamp,
      CloudWatchMetrics: [{
        Namespace: namespace,
        Dimensions: [Object.keys(dimensions)],
        Metrics: metrics.map(([name, unit]) => ({ Name: name, Unit: unit }))
      }]
    },
    ...dimensions,
    ...Object.fromEntries(metrics.map(([name, , value]) => [name, value]))
  })

/** The batch's EMF lines: one for the batch, one per step run, one per dead-letter reason. */
export const emfLines = (namespace: string, timestamp: number, figures: BatchMetrics): Array<string> => {
  const { counts } = figures
  const pipeline = { Pipeline: figures.pipeline }
  return [
    document(namespace, timestamp, pipeline, [
      ["Records", "Count", figures.records],
      ["Advanced", "Count", counts.advanced],
      ["Done", "Count", counts.done],
      ["DeadLettered", "Count", counts.deadLettered],
      ["Retried", "Count", counts.retried],
      ["DuplicatesSkipped", "Count", counts.duplicates],
      ["BatchDuration", "Milliseconds", round(figures.batchMillis)]
    ]),
    ...Array.from(figures.steps, ([step, runs]) =>
      document(namespace, timestamp, { ...pipeline, Step: step }, [
        ["StepRecords", "Count", runs.length],
        ["StepDuration", "Milliseconds", runs.slice(0, MAX_VALUES).map(round)]
      ])),
    ...Array.from(figures.deadLetteredBy, ([reason, count]) =>
      document(namespace, timestamp, { ...pipeline, Reason: reason }, [["DeadLettered", "Count", count]]))
  ]
}

/** `PIPELINE_METRICS_NAMESPACE`: EMF's namespace, 1 to 255 characters, not only spaces. */
export const MetricsNamespaceConfig: Config.Config<string> = setting(
  "PIPELINE_METRICS_NAMESPACE",
  "a CloudWatch namespace of 1 to 255 characters",
  (text) => (text.length >= 1 && text.length <= 255 ? Option.some(text) : Option.none())
).pipe(Config.withDefault("sqs-state-pipeline"))

/** Where a handler writes its EMF lines; a handler without one writes none (tests, the agent). */
export class MetricsSink extends Context.Service<MetricsSink, {
  readonly namespace: string
  readonly write: (lines: ReadonlyArray<string>) => void
}>()("pipeline/lambda/MetricsSink") {
  /** stdout, one line each, under the namespace the environment names. */
  static readonly layerStdout: Layer.Layer<MetricsSink, Config.ConfigError> = Layer.effect(
    MetricsSink,
    Effect.map(MetricsNamespaceConfig, (namespace) =>
      MetricsSink.of({ namespace, write: (lines) => void process.stdout.write(lines.map((line) => `${line}\n`).join("")) }))
  )
}
