/**
 * The AWS Lambda entry point for the built-in pipelines (`dist/lambda/handler.handler`): the
 * pipeline `PIPELINE_NAME` names, else the default. The handler itself is `runtime.ts`'s.
 */
import { builtinPipelines, defaultPipelineName } from "../pipelines/index.ts"
import { CurrentPipeline } from "../services/CurrentPipeline.ts"
import { initialized, liveLayer, makeHandler } from "./runtime.ts"

export * from "./runtime.ts"

// under Lambda, a missing or invalid setting fails the INIT phase, naming the setting
export const handler = await initialized(makeHandler(CurrentPipeline.layerConfig(builtinPipelines, defaultPipelineName), liveLayer))

