// Calls made during one event-loop iteration, handed over together at its end (setImmediate):
// the callers of one iteration then share one transaction and one commit. Used for evidence
// appends (evidence-repository.ts) and replay nonces (nonce-repository.ts).

/** Returns `add`: the items added in one iteration reach `flush` once, in the order added. */
export function turnBatch<T>(flush: (items: T[]) => void): (item: T) => void {
  let pending: T[] = [];
  return (item) => {
    if (pending.length === 0) {
      setImmediate(() => {
        const items = pending;
        pending = [];
        flush(items);
      });
    }
    pending.push(item);
  };
}
