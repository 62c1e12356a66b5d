/**
 * Runs async work over items with at most `limit` in flight, keeping results in input order.
 *
 * @example
 * ```ts
 * const sizes = await mapConcurrent(["a", "b"], 8, async (p) => (await Deno.stat(p)).size);
 * ```
 */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  async function worker(): Promise<void> {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]);
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}
