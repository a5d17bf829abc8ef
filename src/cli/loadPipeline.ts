/**
 * `--pipeline`: a built-in pipeline by name, or the path of an author's module whose default
 * export (or `pipeline` export) is a pipeline, resolved against the folder the user stands in
 * (`npm run` moves to the project's folder but says where it started in `INIT_CWD`). Without
 * the flag, the pipeline `PIPELINE_NAME` names (the Lambda function's setting), or the default.
 */
import { resolve } from "node:path"
import { pathToFileURL } from "node:url"
import { Config, Effect, Option, Runtime, Schema } from "effect"
import { CliError } from "effect/cli"
import { builtinPipelines, defaultPipelineName } from "../pipelines/index.ts"
import { type AnyPipeline, isPipeline } from "../domain/Pipeline.ts"
import { PipelineNameConfig } from "../services/CurrentPipeline.ts"

export class PipelineNotFound extends Schema.TaggedError<PipelineNotFound>()("PipelineNotFound", {
  message: Schema.String
}) {
  override readonly [Runtime.errorExitCode] = 2
  override get [CliError.userMessage]() {
    return this.message
  }
}

/** Where the command was started: `INIT_CWD` under `npm run`, else the current directory. */
export const StartedIn = Config.String("INIT_CWD").pipe(Config.withDefault(process.cwd()))

const importPipeline = (path: string, startedIn: string) =>
  Effect.tryPromise({
    try: () => import(pathToFileURL(resolve(startedIn, path)).href) as Promise<Record<string, unknown>>,
    catch: (cause) => new PipelineNotFound({ message: `cannot load ${path}: ${String(cause)}` })
  }).pipe(
    Effect.flatMap((module) => {
      const candidate = module.default ?? module.pipeline
      return isPipeline(candidate)
        ? Effect.succeed(candidate)
        : Effect.fail(new PipelineNotFound({ message: `${path} exports no pipeline (expected a default or "pipeline" export)` }))
    })
  )

/**
 * The pipeline `flag` names, else `PIPELINE_NAME`'s. `PIPELINE_NAME` is checked even when the flag
 * is given: a wrong setting in the environment is an error, not something silently ignored.
 */
export const loadPipeline = (
  flag: Option.Option<string>
): Effect.Effect<AnyPipeline, PipelineNotFound | Config.ConfigError> =>
  Effect.gen(function*() {
    const configured = yield* PipelineNameConfig(builtinPipelines, defaultPipelineName)
    const nameOrPath = Option.getOrElse(flag, () => configured)
    const builtin = builtinPipelines[nameOrPath]
    if (builtin !== undefined) return yield* builtin
    if (!/[/\\.]/.test(nameOrPath)) {
      return yield* new PipelineNotFound({
        message: `no built-in pipeline "${nameOrPath}" (built in: ${Object.keys(builtinPipelines).join(", ")}); give a module path to load your own`
      })
    }
    return yield* importPipeline(nameOrPath, yield* StartedIn)
  })
