/**
 * The `VaultError` a promise rejects with; fails the test on success or on any other error.
 *
 * @module
 */
import { VaultError } from "../../src/vault/error.ts";

/** Awaits `p` and returns its `VaultError`; throws when it resolves or rejects otherwise. */
export async function rejectsVault(p: Promise<unknown>): Promise<VaultError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof VaultError) return e;
    throw new Error(`Expected a VaultError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
  }
  throw new Error("Expected a VaultError, got success");
}
