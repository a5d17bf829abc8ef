/**
 * The pipelines that ship with the project, by name.
 */
import type { AnyPipeline } from "../domain/Pipeline.ts"
import { greetingPipeline } from "./greeting.ts"
import { thumbnailPipeline } from "./thumbnails/index.ts"

export const builtinPipelines: Readonly<Record<string, AnyPipeline>> = {
  greeting: greetingPipeline,
  thumbnails: thumbnailPipeline
}

export const defaultPipelineName = "thumbnails"

export const builtinPipeline = (name: string): AnyPipeline => {
  const pipeline = builtinPipelines[name]
  if (pipeline === undefined) {
    throw new Error(`unknown pipeline "${name}"; built in: ${Object.keys(builtinPipelines).join(", ")}`)
  }
  return pipeline
}
