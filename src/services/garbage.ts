/**
 * Garbage collected on demand, where the process allows it (`--expose-gc`, which the stack sets on
 * the function): V8 counts Buffers outside its heap and frees a finished step's raw image only when
 * it gets round to it; until then it counts in RSS. Without the flag, nothing happens.
 */

/** A full collection if Buffers of `minBytes` or more are allocated, dead or alive. */
export const collectGarbageHoldingBuffers = (minBytes: number): void => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined && process.memoryUsage().arrayBuffers >= minBytes) gc()
}
