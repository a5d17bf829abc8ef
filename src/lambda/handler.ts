/**
 * The AWS Lambda entry point for the built-in pipelines (`dist/lambda/handler.handler`): the
 * pipeline `PIPELINE_NAME` names, else the default. The handler itself is `runtime.ts`'s.
 */
import { builtinPipelines, defaultPipelineName } from "../pipelines/index.ts"
import { CurrentPipeline } from "../services/CurrentPipeline.ts"
import { liveLayer, makeHandler } from "./runtime.ts"

export * from "./runtime.ts"

export const handler = makeHandler(CurrentPipeline.layerConfig(builtinPipelines, defaultPipelineName), liveLayer)

