// Mutation testing: `npm run test:mutation` (slow; not part of `npm test`).
// Score per folder: `node scripts/mutationScore.ts` after a run.
// Stryker reads tsconfig files with TypeScript's JavaScript API, here and in its checker process;
// TypeScript 7 has none, so both get typescript@5.9 for that, and the checker type-checks with
// TypeScript 7 itself (see stryker/typescript5.mjs). It checks src/ only (stryker/tsconfig.json):
// a mutant that compiles there is worth testing whatever the tests' types say.
import "./stryker/typescript5.mjs"

const typescript5 = new URL("./stryker/typescript5.mjs", import.meta.url).href

/** @type {import("@stryker-mutator/api/core").PartialStrykerOptions} */
export default {
  mutate: ["src/domain/**/*.ts", "src/programs/**/*.ts"],
  testRunner: "vitest",
  vitest: { configFile: "vitest.mutation.config.ts", related: false },
  checkers: ["typescript"],
  tsconfigFile: "stryker/tsconfig.json",
  typescriptChecker: { experimentalNativePreview: true },
  checkerNodeArgs: ["--import", typescript5],
  coverageAnalysis: "perTest",
  concurrency: 2,
  reporters: ["clear-text", "progress", "json"],
  jsonReporter: { fileName: "reports/mutation/mutation.json" },
  ignorePatterns: [".tools", ".pipeline", ".probe", "dist", "coverage", "reports", "bench", "infra"],
  tempDirName: ".stryker-tmp",
  cleanTempDir: "always"
}
