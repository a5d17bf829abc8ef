/**
 * What an author writes: a record schema, a router and mutations.
 *
 * The router looks at a record and names the next mutation, says the record is `done`, or says
 * the state is unknown. A mutation returns the record in its new state, with typed errors.
 */
import type { Config, Effect, Layer, Schema } from "effect"
import { UnknownState, type StepFailure } from "./errors.ts"

export interface Mutation<Rec, E extends StepFailure = never, R = never> {
  readonly _tag: "Mutation"
  /** Shown in logs and in the dead-letter queue's `step.name` attribute. */
  readonly name: string
  readonly run: (record: Rec) => Effect.Effect<Rec, E, R>
  /** Its new state is always sent to the queue, even when the engine may run ahead (`PIPELINE_RUN_AHEAD`). */
  readonly checkpoint?: boolean | undefined
}

export interface MutationOptions {
  /**
   * After this step the state is always sent, never run ahead of: for a step whose result must be
   * durable before the next one starts (a payment, a call that must not be repeated).
   */
  readonly checkpoint?: boolean | undefined
}

/**
 * A named step. The record type comes from the parameter (annotate it: `(order: Order) => ...`),
 * the errors and services from what the function returns, so none need writing out.
 */
export const mutation = <Rec, E extends StepFailure = never, R = never>(
  name: string,
  run: (record: Rec) => Effect.Effect<NoInfer<Rec>, E, R>,
  options: MutationOptions = {}
): Mutation<Rec, E, R> => ({ _tag: "Mutation", name, run, ...(options.checkpoint === true ? { checkpoint: true } : {}) })

export interface Done {
  readonly _tag: "Done"
}

/** The router's answer for a record that has reached its final state. */
export const done: Done = { _tag: "Done" }

/** The router's answer for a record it cannot place: the message goes to the dead-letter queue. */
export const unknownState = (message: string): UnknownState => new UnknownState({ message })

export type Route<Rec, E extends StepFailure, R> = Mutation<Rec, E, R> | Done | UnknownState

/**
 * The services every runtime provides to a pipeline's own layer, by name. Empty here (the domain
 * knows no services): each such service adds itself, e.g. `services/ObjectStore.ts` with
 * `declare module "../domain/Pipeline.ts" { interface RuntimeProvided { objectStore: ObjectStore } }`.
 */
// oxlint-disable-next-line no-empty-interface -- filled by declaration merging
export interface RuntimeProvided {}

/** The services every runtime provides to a pipeline's own layer. */
export type RuntimeServices = RuntimeProvided[keyof RuntimeProvided]

/** A pipeline: `R` are the services its mutations use; `layer` builds those a runtime does not provide. */
export interface Pipeline<Rec, E extends StepFailure = never, R = never> {
  readonly name: string
  /** The state record as it travels in a message body (JSON). */
  readonly schema: Schema.Codec<Rec, unknown>
  /** Identifies the record across its whole chain (FIFO message group, transition id). */
  readonly recordId: (record: Rec) => string
  readonly router: (record: Rec) => Route<Rec, E, R>
  /** The initial record for a bare id given to the producer. */
  readonly initialRecord: (id: string) => unknown
  /** The services the mutations need beyond what every runtime provides, built from those. */
  readonly layer: Layer.Layer<Exclude<R, RuntimeServices>, Config.ConfigError, RuntimeServices>
}

/** The errors of every mutation a router can answer with. */
export type ErrorsOf<Answer> = Answer extends Mutation<infer _Rec, infer E, infer _R> ? E : never

/** The services of every mutation a router can answer with. */
export type ServicesOf<Answer> = Answer extends Mutation<infer _Rec, infer _E, infer R> ? R : never

/** What `definePipeline` takes: the router and the layer have their own types, inferred as written. */
export interface PipelineDefinition<Rec, Router, Provided> extends Omit<Pipeline<Rec>, "router" | "layer"> {
  readonly router: Router
  readonly layer: Layer.Layer<Provided, Config.ConfigError, RuntimeServices>
}

/**
 * `export default definePipeline({ ... })`: the record comes from the schema; the errors and
 * services are the unions of those of every mutation the router can answer with (inferred from
 * the router as a whole, so mutations failing differently combine with no explicit generics).
 * A mutation using a service that neither a runtime nor the pipeline's layer provides is a type
 * error at the router, naming the service.
 */
export const definePipeline = <
  Rec,
  Router extends (record: Rec) => Route<Rec, any, RuntimeServices | NoInfer<Provided>>,
  Provided = never
>(
  pipeline: PipelineDefinition<Rec, Router, Provided>
): Pipeline<Rec, ErrorsOf<ReturnType<Router>>, ServicesOf<ReturnType<Router>>> =>
  pipeline as Pipeline<Rec, ErrorsOf<ReturnType<Router>>, ServicesOf<ReturnType<Router>>>

/**
 * A pipeline whose record, errors and services are not known statically (a registry, a module
 * loaded by path). Its layer's output is erased: `never` accepts every layer.
 */
// oxlint-disable-next-line no-explicit-any -- existential: any record, any error, any services
export type AnyPipeline = Omit<Pipeline<any, any, any>, "layer"> & {
  readonly layer: Layer.Layer<never, Config.ConfigError, RuntimeServices>
}

/** Whether a module's export looks like a pipeline (a module loaded by path is not type-checked). */
export const isPipeline = (value: unknown): value is AnyPipeline =>
  typeof value === "object" && value !== null && "router" in value && "schema" in value && "layer" in value
