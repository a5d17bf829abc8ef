/**
 * The pipelines that ship with the project, by name, each built when a runtime chooses it.
 */
import { type Config, Effect } from "effect"
import type { AnyPipeline } from "../domain/Pipeline.ts"
import { greetingPipeline } from "./greeting.ts"
import { thumbnailPipelineConfig } from "./thumbnails/index.ts"

export const builtinPipelines: Readonly<Record<string, Effect.Effect<AnyPipeline, Config.ConfigError>>> = {
  greeting: Effect.succeed(greetingPipeline),
  thumbnails: thumbnailPipelineConfig
}

export const defaultPipelineName = "thumbnails"
