/**
 * The tests Stryker runs against mutants (`npm run test:mutation`): fast unit tests on the memory
 * layers only, no moto server, no child processes (a mutant is only active in this process).
 */
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: [
      "test/domain/**/*.test.ts",
      "test/programs/**/*.test.ts",
      "test/services/chunks.property.test.ts",
      "test/lambda/handler.test.ts"
    ],
    // these need the moto server
    exclude: ["test/programs/fifo.chain.test.ts"],
    testTimeout: 30_000
  }
})
