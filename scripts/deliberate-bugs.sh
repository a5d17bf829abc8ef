#!/usr/bin/env bash
# Puts each of issue 8's six deliberate bugs into a throwaway copy of HEAD, one at a time, and runs
# the tests that should catch it. Prints CAUGHT/MISSED per bug.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
git -C "$src" archive HEAD | tar -x -C "$work"
ln -s "$src/node_modules" "$work/node_modules"
ln -s "$src/.tools" "$work/.tools"
cd "$work"
export PATH="$src/node_modules/.bin:$PATH"
try() { # name, file to break, python replacement (old, new), test files...
  local name=$1 file=$2 old=$3 new=$4; shift 4
  cp "$file" "$file.orig"
  python3 - "$file" "$old" "$new" <<'PY'
import sys
p, old, new = sys.argv[1:4]
s = open(p).read()
assert old in s, f"pattern not found in {p}: {old}"
open(p, "w").write(s.replace(old, new, 1))
PY
  if npx vitest run "$@" > "/tmp/bug-$name.log" 2>&1; then echo "MISSED $name ($*)"; else
    echo "CAUGHT $name: $(sed 's/\x1b\[[0-9;]*m//g' "/tmp/bug-$name.log" | grep -E '^ (FAIL|×)|✗| × ' | head -3 | tr '\n' ' ')"; fi
  mv "$file.orig" "$file"
}
try transition-id-ignores-state src/domain/transition.ts '.update("\u0000").update(canonicalJson(encodedState))' '' test/domain/ test/programs/fifo.chain.test.ts
try agent-stops-after-failed-batch src/programs/agent.ts 'Effect.logError(`batch of ${messages.length} failed as a whole: ${error.message}`).pipe(' 'Deferred.succeed(options.stop, undefined).pipe(Effect.andThen(Effect.logError(`batch of ${messages.length} failed as a whole: ${error.message}`)),' test/programs/agent.test.ts
try late-messages-not-handed-back src/programs/agent.ts '? release(messages).pipe(Effect.andThen(Semaphore.release(slots, messages.length)))' '? Semaphore.release(slots, messages.length)' test/programs/agent.test.ts
try collect-garbage-noop src/pipelines/thumbnails/steps.ts 'const collectGarbage = () => (globalThis as { gc?: () => void }).gc?.()' 'const collectGarbage = () => undefined' test/pipelines/gc.test.ts
try start-uses-env-backends src/cli/layers.ts 'export const localBackendsLayer = Layer.mergeAll(' 'export const localBackendsLayer = backendsLayer; const unused = Layer.mergeAll(' test/cli/start.test.ts
try no-receive-count-on-dead-letters src/programs/engine.ts '    "error.receive_count": String(message.receiveCount),' '' test/programs/
rm -rf "$work"
