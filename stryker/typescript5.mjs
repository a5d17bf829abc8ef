/**
 * Loaded by stryker.config.mjs (Stryker's main process) and with `--import` into its TypeScript
 * checker process. Stryker parses tsconfig files with TypeScript's JavaScript API, which the
 * project's TypeScript 7 (the native compiler) does not have: its `import "typescript"` gets the
 * `typescript5` alias (typescript@5.9) for that. The type checking itself runs on the project's
 * own TypeScript 7 (the checker's native mode), which Stryker looks for as `@typescript/native`.
 * Nothing else sees these hooks: `tsc` and the tests are untouched.
 */
import { registerHooks } from "node:module"

registerHooks({
  resolve(specifier, context, nextResolve) {
    const fromStryker = context.parentURL?.includes("/node_modules/@stryker-mutator/") ?? false
    if (fromStryker && specifier === "typescript") return nextResolve("typescript5", context)
    // the native checker's compiler: the project's own TypeScript 7
    if (fromStryker && specifier === "@typescript/native/unstable/sync") return nextResolve("typescript/unstable/sync", context)
    return nextResolve(specifier, context)
  }
})
