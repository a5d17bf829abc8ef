/**
 * The pipeline a runtime runs, chosen when its layer is built (never at import): by value, or by
 * name from `PIPELINE_NAME` among the pipelines a runtime knows.
 */
import { Config, Context, Effect, Layer, Option, Schema } from "effect"
import type { AnyPipeline, RuntimeServices } from "../domain/Pipeline.ts"
// ObjectStore adds itself to the RuntimeServices a pipeline's layer may use (declaration merging)
import "./ObjectStore.ts"

export class CurrentPipeline extends Context.Service<CurrentPipeline, AnyPipeline>()("pipeline/services/CurrentPipeline") {
  /** This pipeline, with its own services. */
  static readonly layerOf = (pipeline: AnyPipeline): Layer.Layer<CurrentPipeline, Config.ConfigError, RuntimeServices> =>
    Layer.merge(Layer.succeed(CurrentPipeline, pipeline), pipeline.layer)

  /**
   * The pipeline `PIPELINE_NAME` names among `known` (default `fallback`), built from its own
   * settings; an unknown name fails naming the setting.
   */
  static readonly layerConfig = (
    known: Readonly<Record<string, Effect.Effect<AnyPipeline, Config.ConfigError>>>,
    fallback: string
  ): Layer.Layer<CurrentPipeline, Config.ConfigError, RuntimeServices> =>
    Layer.unwrap(Effect.gen(function*() {
      const name = yield* PipelineNameConfig(known, fallback)
      return CurrentPipeline.layerOf(yield* known[name]!)
    }))
}

/** `PIPELINE_NAME`, checked against `known`: a wrong name is a ConfigError that names the setting and the choices. */
export const PipelineNameConfig = (known: Readonly<Record<string, unknown>>, fallback: string): Config.Config<string> =>
  Config.schema(
    Schema.String.check(
      Schema.makeFilter((name) => Object.hasOwn(known, name) || `no pipeline "${name}" (known: ${Object.keys(known).join(", ")})`)
    ),
    "PIPELINE_NAME"
  ).pipe(Config.option, Config.map(Option.getOrElse(() => fallback)))
