/**
 * Loaded by stryker.config.mjs (Stryker's main process) and with `--import` into its TypeScript
 * checker process. Both read tsconfig.json and type-check mutants with the TypeScript compiler
 * API, which the project's TypeScript 7 (the native compiler) does not have, so Stryker's own
 * `import "typescript"` is pointed at the `typescript5` alias (typescript@5.9). Nothing else sees
 * it: `tsc` and the tests keep TypeScript 7.
 */
import { registerHooks } from "node:module"

registerHooks({
  resolve(specifier, context, nextResolve) {
    const fromStryker = context.parentURL?.includes("/node_modules/@stryker-mutator/") ?? false
    return nextResolve(fromStryker && specifier === "typescript" ? "typescript5" : specifier, context)
  }
})
