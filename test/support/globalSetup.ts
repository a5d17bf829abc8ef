/**
 * One moto server for the whole run; tests read its endpoint with `inject("motoEndpoint")`.
 * cfn-lint is installed here too, once, before any file starts.
 */
import type { TestProject } from "vitest/node"
import { ensureCfnLint } from "./cfnLint.ts"
import { startMoto } from "./moto.ts"

declare module "vitest" {
  export interface ProvidedContext {
    motoEndpoint: string
  }
}

export default async function setup(project: TestProject) {
  ensureCfnLint()
  const moto = await startMoto()
  project.provide("motoEndpoint", moto.endpoint)
  return () => moto.stop()
}
