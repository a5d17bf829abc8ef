/**
 * `--pipeline`: a built-in pipeline by name, or the path of an author's module whose default
 * export (or `pipeline` export) is a pipeline.
 */
import { Effect, Schema } from "effect"
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import type { AnyPipeline } from "../domain/Pipeline.ts"
import { builtinPipelines, defaultPipelineName } from "../pipelines/index.ts"

export class PipelineNotFound extends Schema.TaggedError<PipelineNotFound>()("PipelineNotFound", {
  message: Schema.String
}) {}

const isPipeline = (value: unknown): value is AnyPipeline =>
  typeof value === "object" && value !== null && "router" in value && "schema" in value && "layer" in value

export const loadPipeline = (nameOrPath: string = defaultPipelineName): Effect.Effect<AnyPipeline, PipelineNotFound> => {
  const builtin = builtinPipelines[nameOrPath]
  if (builtin !== undefined) return Effect.succeed(builtin)
  if (!/[/\\.]/.test(nameOrPath)) {
    return Effect.fail(new PipelineNotFound({
      message: `no built-in pipeline "${nameOrPath}" (built in: ${Object.keys(builtinPipelines).join(", ")}); give a module path to load your own`
    }))
  }
  return Effect.tryPromise({
    try: () => import(pathToFileURL(resolve(nameOrPath)).href) as Promise<Record<string, unknown>>,
    catch: (cause) => new PipelineNotFound({ message: `cannot load ${nameOrPath}: ${String(cause)}` })
  }).pipe(
    Effect.flatMap((module) => {
      const candidate = module.default ?? module.pipeline
      return isPipeline(candidate)
        ? Effect.succeed(candidate)
        : Effect.fail(new PipelineNotFound({ message: `${nameOrPath} exports no pipeline (expected a default or "pipeline" export)` }))
    })
  )
}
