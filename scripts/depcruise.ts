/**
 * dependency-cruiser's command line, able to read this project's TypeScript:
 *
 *   node scripts/depcruise.ts src --config .dependency-cruiser.cjs     (part of `npm test`)
 *
 * dependency-cruiser parses .ts with the `typescript` package's JS API, versions 2 to 6 only; without
 * one it skips every .ts file and reports "0 modules cruised", no error. The project's `typescript` is
 * 7 (native, no JS API), so dependency-cruiser's own imports of "typescript" are sent to `typescript5`,
 * the typescript@5 alias Stryker uses. This must happen before dependency-cruiser's modules load: its
 * config file is read too late for it. test/layering.test.ts fails if .ts files go unread.
 */
import { registerHooks } from "node:module"

registerHooks({
  resolve: (specifier, context, nextResolve) =>
    nextResolve(
      context.parentURL?.includes("/node_modules/dependency-cruiser/")
        ? specifier.replace(/^typescript(?=\/|$)/, "typescript5")
        : specifier,
      context
    )
})

// The package exports no bin; its main module is src/main/index.mjs, the CLI is bin/dependency-cruiser.mjs.
await import(new URL("../../bin/dependency-cruiser.mjs", import.meta.resolve("dependency-cruiser")).href)
