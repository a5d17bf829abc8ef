import { availableParallelism } from "node:os"
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/globalSetup.ts"],
    // Most files wait on child processes, moto and timers, not on the CPU: vitest's default
    // (cores - 1 workers) would run them one at a time on a 2-core machine.
    maxWorkers: Math.max(4, availableParallelism()),
    // one module graph per worker, not per file: each file otherwise pays ~0.7 s to load effect and the SDKs again
    isolate: false,
    testTimeout: 30_000,
    hookTimeout: 180_000
  }
})
