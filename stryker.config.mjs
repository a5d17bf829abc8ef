// Mutation testing: `npm run test:mutation` (slow; not part of `npm test`).
// Score per folder: `node scripts/mutationScore.ts` after a run.
// Stryker reads tsconfig.json with TypeScript's compiler API, here and in its checker process;
// TypeScript 7 has none, so both get typescript@5.9 for that (see stryker/typescript5.mjs).
import "./stryker/typescript5.mjs"

const typescript5 = new URL("./stryker/typescript5.mjs", import.meta.url).href

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  mutate: ["src/domain/**/*.ts", "src/programs/**/*.ts", "src/services/Queue.ts"],
  testRunner: "vitest",
  vitest: { configFile: "vitest.mutation.config.ts", related: false },
  checkers: ["typescript"],
  tsconfigFile: "tsconfig.json",
  checkerNodeArgs: ["--import", typescript5],
  coverageAnalysis: "perTest",
  concurrency: 2,
  reporters: ["clear-text", "progress", "json"],
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  ignorePatterns: [".tools", ".pipeline", ".probe", "dist", "coverage", "reports", "bench", "infra"],
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always"
}
